//! A private room's membership on screen: `/members` answered with a notice naming the owner,
//! admins, members and key epoch, and a later error still answering the request it belongs to.

mod common;

use common::*;
use hark_node::{Command, Event};
use hark_tui::app::{App, Effect};
use hark_tui::keys::Action;

fn submit(app: &mut App, line: &str, secs: u64, base: std::time::Instant) -> Vec<Effect> {
    let mut effects = type_text(app, line, at(base, secs));
    effects.extend(app.on_action(Action::Submit, at(base, secs)));
    effects
}

fn members_event() -> Event {
    Event::Members {
        room: "ops".into(),
        owner: ME.into(),
        admins: vec![ME.into()],
        members: vec![ME.into(), BOB.into()],
        epoch: 1,
        kicked: vec![CAROL.into()],
    }
}

#[test]
fn members_is_answered_with_a_notice_and_leaves_no_request_waiting() {
    let base = std::time::Instant::now();
    let mut app = ready_app(&["ops"], base);
    app.on_action(Action::NextRoom, at(base, 1));
    let effects = submit(&mut app, "/members", 1, base);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Node(Command::Members { room }) if room == "ops")));
    app.on_event(members_event(), at(base, 1));
    let rows = screen(&mut app, 120, 30, base);
    assert!(
        contains(&rows, "ops: owner you; admins none; members (2)"),
        "{}",
        dump(&rows)
    );
    assert!(contains(&rows, "kicked #77e0"), "{}", dump(&rows));

    // The answer took the request off the queue: a refused send later is that send's error,
    // and the line typed for it comes back to the input.
    submit(&mut app, "hello", 2, base);
    app.on_event(
        Event::Error {
            code: "store_failed".into(),
            detail: "disk full".into(),
        },
        at(base, 2),
    );
    assert_eq!(app.input.text(), "hello");
}
