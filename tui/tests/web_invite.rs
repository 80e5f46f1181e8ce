//! `/web-invite [NAME]`: a join link for the browser client in a box with its QR code when
//! `hark` serves `--web`, one clear line when it does not.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hark_node::control::safety::qr_lines;
use hark_tui::app::{App, Effect, Overlay, NO_WEB};
use hark_tui::keys::Action;

const URL: &str =
    "https://10.0.0.5:8443/#join=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn submit(app: &mut App, line: &str, secs: u64, base: Instant) -> Vec<Effect> {
    let mut effects = type_text(app, line, at(base, secs));
    effects.extend(app.on_action(Action::Submit, at(base, secs)));
    effects
}

#[test]
fn web_invite_shows_the_link_and_its_qr_code() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.serves_web = true;

    // The reducer asks the event loop for a link, with the proposed name; nothing for the
    // node's command stream.
    let effects = submit(&mut app, "/web-invite carol", 1, base);
    assert_eq!(
        effects,
        vec![Effect::WebInvite {
            name: Some("carol".into())
        }]
    );
    let effects = app.on_web_invite(Some("carol".into()), Ok(URL.into()), at(base, 1));
    assert_eq!(effects, vec![Effect::Copy(URL.into())]);
    assert!(matches!(app.overlay, Some(Overlay::WebInvite { .. })));

    let rows = screen(&mut app, 100, 40, base + Duration::from_secs(1));
    let text = dump(&rows);
    assert!(contains(&rows, "join link for carol"), "{text}");
    // The whole link on one line, nothing else on it, so selecting the line copies it.
    assert!(
        rows.iter().any(|r| r.trim() == URL),
        "the link alone on a line:\n{text}"
    );
    // The QR code drawn is the link's (the same rendering as /verify's).
    let qr = qr_lines(URL);
    assert!(qr.len() > 10);
    for line in &qr {
        assert!(contains(&rows, line), "QR line {line:?} missing:\n{text}");
    }
    assert!(contains(&rows, "certificate"), "{text}");
    app.on_action(Action::Escape, at(base, 2));
    assert!(app.overlay.is_none());

    // At 80×24 the code does not fit whole: the link alone, and a word about the code.
    submit(&mut app, "/web-invite", 3, base);
    app.on_web_invite(None, Ok(URL.into()), at(base, 3));
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(3));
    let text = dump(&rows);
    assert!(
        contains(&rows, "0123456789abcdef0123456789abcdef"),
        "{text}"
    );
    assert!(
        contains(&rows, "a taller terminal shows it as a QR code"),
        "{text}"
    );
    assert!(!contains(&rows, &qr[3]), "no cut QR code:\n{text}");
    app.on_action(Action::Escape, at(base, 4));

    // A refusal (a bad name) is one line, and no box.
    app.on_web_invite(
        Some("a#b".into()),
        Err("the name \"a#b\": nick may not hold spaces, control characters, '#' or '@'".into()),
        at(base, 5),
    );
    assert!(app.overlay.is_none());
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(5));
    assert!(contains(&rows, "no join link: the name"), "{}", dump(&rows));
}

#[test]
fn web_invite_without_web_says_how_to_start_it() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    let effects = submit(&mut app, "/web-invite", 1, base);
    assert!(effects.is_empty(), "{effects:?}");
    assert!(app.overlay.is_none());
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(1));
    assert!(contains(&rows, NO_WEB), "{}", dump(&rows));
}

#[test]
fn web_invite_parses_and_is_in_the_help() {
    use hark_tui::commands::{complete, parse, Submitted, UiCommand};
    let command = |line: &str| match parse(line) {
        Ok(Some(Submitted::Command(c))) => c,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(command("/web-invite"), UiCommand::WebInvite(None));
    assert_eq!(
        command("/web-invite alice"),
        UiCommand::WebInvite(Some("alice".into()))
    );
    assert!(parse("/web-invite alice bob").is_err());
    assert_eq!(complete("web"), vec!["/web-invite".to_owned()]);

    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_action(Action::Help, at(base, 1));
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(1));
    assert!(contains(&rows, "/web-invite [NAME]"), "{}", dump(&rows));
    assert!(
        contains(&rows, "/quit"),
        "all commands fit 80×24:\n{}",
        dump(&rows)
    );
}
