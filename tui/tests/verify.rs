//! `/verify`: the safety number on screen, verified marks in the people list and beside
//! messages, and a name that a second key uses flagged wherever it is shown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hark_node::{Command, Event};
use hark_tui::app::{App, Effect, Overlay};
use hark_tui::keys::Action;

const FAKE: &str = "12D3KooWfakeFFFFd00d";
const NUMBER: &str = "11111 22222 33333 44444 55555 66666 77777 88888 99999 00000 12345 67890";

fn submit(app: &mut App, line: &str, secs: u64, base: Instant) -> Vec<Effect> {
    let mut effects = type_text(app, line, at(base, secs));
    effects.extend(app.on_action(Action::Submit, at(base, secs)));
    effects
}

fn verify_commands(effects: &[Effect]) -> Vec<(String, Option<bool>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Node(Command::Verify { peer, confirm }) => Some((peer.clone(), *confirm)),
            _ => None,
        })
        .collect()
}

fn safety(peer: &str, verified: bool, same_name: &[&str]) -> Event {
    Event::SafetyNumber {
        peer: peer.into(),
        name: "bob".into(),
        number: NUMBER.into(),
        verified,
        same_name: same_name.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn verify_shows_the_number_and_ok_marks_the_peer_verified() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::PeerConnected {
            peer_id: BOB.into(),
        },
        at(base, 1),
    );
    app.on_event(
        message("lobby", "m1", BOB, "bob", T0, "text", "hi"),
        at(base, 1),
    );

    // `/verify bob` asks the node for bob's key's number, by peer id.
    let effects = submit(&mut app, "/verify bob", 2, base);
    assert_eq!(verify_commands(&effects), vec![(BOB.to_owned(), None)]);
    app.on_event(safety(BOB, false, &[]), at(base, 2));
    assert!(matches!(app.overlay, Some(Overlay::Safety { .. })));
    let rows = screen(&mut app, 100, 40, base + Duration::from_secs(2));
    let text = dump(&rows);
    assert!(
        contains(&rows, "11111 22222 33333 44444 55555 66666"),
        "{text}"
    );
    assert!(
        contains(&rows, "77777 88888 99999 00000 12345 67890"),
        "{text}"
    );
    assert!(contains(&rows, "/verify bob#a1c2 ok"), "{text}");
    // The QR code is drawn (half blocks), at 100×40 it fits.
    assert!(
        rows.iter().any(|r| r.contains('▀') || r.contains('▄')),
        "{text}"
    );
    app.on_action(Action::Escape, at(base, 3));
    assert!(app.overlay.is_none());

    // `/verify bob ok`: the node marks it; the people list and bob's lines show ✓.
    let effects = submit(&mut app, "/verify bob ok", 4, base);
    assert_eq!(
        verify_commands(&effects),
        vec![(BOB.to_owned(), Some(true))]
    );
    app.on_event(safety(BOB, true, &[]), at(base, 4));
    assert!(
        app.overlay.is_none(),
        "a confirmation is a notice, not the box again"
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(4));
    let text = dump(&rows);
    assert!(contains(&rows, "● bob#a1c2 ✓"), "people list:\n{text}");
    assert!(contains(&rows, "bob#a1c2 ✓ hi"), "message:\n{text}");
    assert!(contains(&rows, "bob#a1c2 is marked verified ✓"), "{text}");

    // `/unverify bob` takes it back.
    let effects = submit(&mut app, "/unverify bob", 5, base);
    assert_eq!(
        verify_commands(&effects),
        vec![(BOB.to_owned(), Some(false))]
    );
    app.on_event(safety(BOB, false, &[]), at(base, 5));
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(5));
    assert!(!contains(&rows, "bob#a1c2 ✓"), "{}", dump(&rows));
}

#[test]
fn a_second_key_using_a_name_is_flagged_and_verify_needs_the_id() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::PeerConnected {
            peer_id: BOB.into(),
        },
        at(base, 1),
    );
    app.on_event(
        Event::PeerConnected {
            peer_id: FAKE.into(),
        },
        at(base, 1),
    );
    app.on_event(
        message("lobby", "m1", BOB, "bob", T0, "text", "real"),
        at(base, 1),
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(1));
    assert!(
        !contains(&rows, "⚠"),
        "one key per name: no flag\n{}",
        dump(&rows)
    );

    // An impostor takes the name: both are flagged, in messages and the people list, even
    // the line bob wrote before the impostor showed up.
    app.on_event(
        message(
            "lobby",
            "m2",
            FAKE,
            "bob",
            T0 + 1000,
            "text",
            "send me the invite",
        ),
        at(base, 2),
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(2));
    let text = dump(&rows);
    assert!(contains(&rows, "bob#a1c2 ⚠ real"), "{text}");
    assert!(contains(&rows, "bob#d00d ⚠ send me the invite"), "{text}");
    assert!(contains(&rows, "● bob#a1c2 ⚠"), "{text}");
    assert!(contains(&rows, "● bob#d00d ⚠"), "{text}");

    // A bare name that two keys use is refused with both ids; with its #id it goes.
    let effects = submit(&mut app, "/verify bob", 3, base);
    assert!(verify_commands(&effects).is_empty());
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(3));
    assert!(
        contains(&rows, "several keys use the name bob"),
        "{}",
        dump(&rows)
    );
    // The refused line stays in the input to be fixed: add the id.
    let effects = submit(&mut app, "#a1c2", 4, base);
    assert_eq!(verify_commands(&effects), vec![(BOB.to_owned(), None)]);
    app.on_event(safety(BOB, false, &[FAKE]), at(base, 4));
    let rows = screen(&mut app, 100, 40, base + Duration::from_secs(4));
    assert!(
        contains(&rows, "the name bob is also used by bob#d00d"),
        "{}",
        dump(&rows)
    );
    app.on_action(Action::Escape, at(base, 5));

    // Once the real bob is verified, only the impostor keeps the flag.
    app.on_event(
        Event::VerifiedPeers {
            peers: vec![hark_node::api::VerifiedPeer {
                peer_id: BOB.into(),
                name: "bob".into(),
            }],
        },
        at(base, 5),
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(5));
    let text = dump(&rows);
    assert!(contains(&rows, "bob#a1c2 ✓ real"), "{text}");
    assert!(contains(&rows, "bob#d00d ⚠ send me the invite"), "{text}");
}

#[test]
fn verify_commands_parse() {
    use hark_tui::commands::{parse, Submitted, UiCommand, VerifyStep};
    let command = |line: &str| match parse(line) {
        Ok(Some(Submitted::Command(c))) => c,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        command("/verify bob"),
        UiCommand::Verify("bob".into(), VerifyStep::Show)
    );
    assert_eq!(
        command("/verify bob#a1c2 OK"),
        UiCommand::Verify("bob#a1c2".into(), VerifyStep::Confirm)
    );
    assert_eq!(
        command("/unverify bob"),
        UiCommand::Verify("bob".into(), VerifyStep::Revoke)
    );
    assert!(parse("/verify").is_err());
    assert!(parse("/verify bob maybe").is_err());
}
