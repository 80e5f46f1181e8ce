//! A client that fell behind: the node's `lagged` event reloads every room's history, and what
//! was missed shows up once, next to what was already shown.

mod common;

use std::time::Instant;

use common::*;
use hark_node::{Command, Event};
use hark_tui::app::{App, Effect, HISTORY_PAGE};
use hark_tui::timeline::EntryBody;

/// The history requests among `effects`, as (room, limit).
fn history_requests(effects: &[Effect]) -> Vec<(String, usize)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Node(Command::History { room, limit, .. }) => {
                Some((room.clone(), limit.unwrap_or(0)))
            }
            _ => None,
        })
        .collect()
}

/// How many times a message with `id` is in `room`'s timeline.
fn copies(app: &App, room: &str, id: &str) -> usize {
    let room = app.rooms.iter().find(|r| r.name == room).expect("room");
    room.timeline
        .entries()
        .iter()
        .filter(|e| e.key.id == id && matches!(e.body, EntryBody::Message(_)))
        .count()
}

#[test]
fn lagged_reloads_every_room_and_shows_missed_messages_once() {
    let base = Instant::now();
    let mut app = ready_app(&["ops", "deck"], base);
    let now = at(base, 1);
    app.on_event(
        message("lobby", "l1", BOB, "bob", T0, "text", "seen live"),
        now,
    );
    app.on_event(
        message("ops", "o1", BOB, "bob", T0 + 1000, "text", "ops seen"),
        now,
    );
    // Our own line, stamped here before the node's stamp comes back in history.
    type_text(&mut app, "my own line", now);
    app.on_action(hark_tui::keys::Action::Submit, now);
    app.on_event(
        Event::Sent {
            room: "lobby".into(),
            id: "me1".into(),
        },
        now,
    );

    let effects = app.on_event(Event::Lagged { missed: 3 }, at(base, 2));
    let mut asked = history_requests(&effects);
    asked.sort();
    assert_eq!(
        asked,
        [
            ("deck".to_string(), HISTORY_PAGE),
            ("lobby".to_string(), HISTORY_PAGE),
            ("ops".to_string(), HISTORY_PAGE),
        ],
        "{effects:?}"
    );
    let rows = screen(&mut app, 80, 24, base);
    let notices = rows.iter().filter(|r| r.contains("fell behind")).count();
    assert_eq!(notices, 1, "{}", dump(&rows));

    // The answers: what was shown, and what the lag swallowed.
    for (room, messages) in [
        (
            "lobby",
            vec![
                stored("l1", BOB, "bob", T0, "seen live"),
                stored("l2", CAROL, "carol", T0 + 2000, "missed in the lobby"),
                stored("me1", ME, "alice", T0 + 1500, "my own line"),
            ],
        ),
        (
            "ops",
            vec![
                stored("o1", BOB, "bob", T0 + 1000, "ops seen"),
                stored("o2", BOB, "bob", T0 + 3000, "missed in ops"),
            ],
        ),
        ("deck", vec![]),
    ] {
        app.on_event(
            Event::History {
                room: room.into(),
                messages,
            },
            at(base, 3),
        );
    }
    for (room, id) in [
        ("lobby", "l1"),
        ("lobby", "l2"),
        ("lobby", "me1"),
        ("ops", "o1"),
        ("ops", "o2"),
    ] {
        assert_eq!(copies(&app, room, id), 1, "{room} {id}");
    }
    assert!(app.hint.is_none(), "{:?}", app.hint);
    let rows = screen(&mut app, 80, 24, base);
    for text in ["seen live", "missed in the lobby", "my own line"] {
        let shown = rows.iter().filter(|r| r.contains(text)).count();
        assert_eq!(shown, 1, "{text}:\n{}", dump(&rows));
    }
}

#[test]
fn a_long_lag_asks_for_enough_history_to_reach_past_what_is_shown() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    for i in 0..10u64 {
        app.on_event(
            message("lobby", &format!("m{i}"), BOB, "bob", T0 + i, "text", "x"),
            at(base, 1),
        );
    }
    let shown = app.rooms[0].timeline.len();
    let effects = app.on_event(Event::Lagged { missed: 2_000 }, at(base, 2));
    assert_eq!(
        history_requests(&effects),
        [("lobby".to_string(), shown + 2_000)]
    );
    // Never past the node's limit.
    let effects = app.on_event(Event::Lagged { missed: u64::MAX }, at(base, 3));
    assert_eq!(history_requests(&effects), [("lobby".to_string(), 10_000)]);
}

#[test]
fn a_room_still_waiting_for_its_first_history_is_not_asked_twice() {
    let base = Instant::now();
    let mut app = App::new(
        &["ops".to_string()],
        false,
        hark_tui::voice::Ptt::new(hark_tui::voice::PttMode::Toggle, Ok(())),
        hark_tui::style::LocalTime::UTC,
    );
    app.on_event(
        Event::Ready {
            peer_id: ME.into(),
            name: "alice".into(),
            listen: vec![],
        },
        at(base, 0),
    );
    app.on_event(
        Event::History {
            room: "lobby".into(),
            messages: vec![],
        },
        at(base, 0),
    );
    // ops's start-up answer is still on its way, and will hold what the lag swallowed.
    let effects = app.on_event(Event::Lagged { missed: 5 }, at(base, 1));
    assert_eq!(
        history_requests(&effects),
        [("lobby".to_string(), HISTORY_PAGE)]
    );
}
