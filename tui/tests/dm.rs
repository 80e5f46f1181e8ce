//! `/msg NICK TEXT` and direct-message rooms in the sidebar: opened by us (and shown at once),
//! or by the other side (counted like a mention, without moving our view).

mod common;

use std::time::{Duration, Instant};

use common::*;
use hark_node::{Command, Event};
use hark_tui::app::{App, Effect};
use hark_tui::keys::Action;

fn submit(app: &mut App, line: &str, secs: u64, base: Instant) -> Vec<Effect> {
    let mut effects = type_text(app, line, at(base, secs));
    effects.extend(app.on_action(Action::Submit, at(base, secs)));
    effects
}

#[test]
fn msg_opens_the_direct_room_and_shows_the_line_once_sent() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::PeerConnected {
            peer_id: BOB.into(),
        },
        at(base, 1),
    );
    app.on_event(
        message("lobby", "m1", BOB, "bob", T0, "text", "hi all"),
        at(base, 1),
    );

    let effects = submit(&mut app, "/msg bob the spare key is under pump 4", 2, base);
    assert!(
        effects.contains(&Effect::Node(Command::Dm {
            to: BOB.into(),
            text: "the spare key is under pump 4".into()
        })),
        "{effects:?}"
    );
    let dm_room = format!("@{BOB}");
    assert_eq!(app.current_room().unwrap().name, dm_room);
    // The node opens the room and stores the line.
    app.on_event(
        Event::Joined {
            room: dm_room.clone(),
        },
        at(base, 2),
    );
    app.on_event(
        Event::Sent {
            room: dm_room.clone(),
            id: "d1".into(),
        },
        at(base, 2),
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(2));
    let text = dump(&rows);
    assert!(contains(&rows, "┌ @bob#a1c2 · "), "title:\n{text}");
    assert!(contains(&rows, " · direct ─"), "title:\n{text}");
    assert!(
        contains(&rows, "alice#3f9a the spare key is under pump 4"),
        "{text}"
    );
    assert!(contains(&rows, "2 @bob#a1c2"), "sidebar:\n{text}");
    assert_eq!(
        app.current_room().unwrap().timeline.len(),
        1,
        "one line, no notice twice"
    );

    // bob answers: it lands in the same room.
    app.on_event(
        message(&dm_room, "d2", BOB, "bob", T0 + 5_000, "text", "thanks"),
        at(base, 3),
    );
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(3));
    assert!(contains(&rows, "bob#a1c2 thanks"), "{}", dump(&rows));
}

#[test]
fn a_direct_message_from_someone_counts_like_a_mention_and_leaves_the_view_alone() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::PeerConnected {
            peer_id: CAROL.into(),
        },
        at(base, 1),
    );
    app.on_event(
        message("lobby", "m1", CAROL, "carol", T0, "text", "hello"),
        at(base, 1),
    );
    let dm_room = format!("@{CAROL}");
    app.on_event(
        Event::Joined {
            room: dm_room.clone(),
        },
        at(base, 2),
    );
    assert_eq!(app.current_room().unwrap().name, "lobby", "the view stays");
    let effects = app.on_event(
        message(
            &dm_room,
            "d1",
            CAROL,
            "carol",
            T0 + 1_000,
            "text",
            "are you there?",
        ),
        at(base, 2),
    );
    assert!(effects.contains(&Effect::Bell), "{effects:?}");
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(2));
    let text = dump(&rows);
    // The sidebar is narrow at 100 columns: the label is cut, the count is not.
    assert!(
        contains(&rows, "2 @carol… @1"),
        "sidebar counts it:\n{text}"
    );
    // Alt+2 opens it and clears the count.
    app.on_action(Action::GoToRoom(1), at(base, 3));
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(3));
    let text = dump(&rows);
    assert!(contains(&rows, "carol#77e0 are you there?"), "{text}");
    assert!(!contains(&rows, "@1"), "{text}");
}

#[test]
fn msg_needs_a_name_and_text() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    let effects = submit(&mut app, "/msg bob", 1, base);
    assert!(effects.is_empty());
    let rows = screen(&mut app, 100, 30, base + Duration::from_secs(1));
    assert!(
        contains(&rows, "/msg needs a name and some text"),
        "{}",
        dump(&rows)
    );
}
