//! Commands a node cannot carry out, answered with an error that says why.

use super::tests::{engine, events, send, Clock};
use super::*;
use crate::api::{Command, Event};

/// Paging back needs an id the room holds: an unknown one is an error, not an empty page
/// (which means "the start of the room", and would stop a script paging back).
#[test]
fn history_before_an_id_the_room_does_not_hold_is_an_error() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    for text in ["one", "two"] {
        send(&mut a, &clock, text);
    }
    let mut page = |before: Option<String>| {
        let out = a.handle(
            Input::Command(Command::History {
                room: "lobby".into(),
                limit: None,
                before,
            }),
            clock.now(),
        );
        events(&out).into_iter().cloned().collect::<Vec<Event>>()
    };
    let all = page(None);
    let [Event::History { messages, .. }] = &all[..] else {
        panic!("{all:?}")
    };
    assert_eq!(messages.len(), 2);
    let second = messages[1].id.clone();
    assert!(matches!(&page(Some(second))[..],
        [Event::History { messages, .. }] if messages.len() == 1 && messages[0].text == "one"));
    let unknown = "00".repeat(16);
    assert!(
        matches!(&page(Some(unknown))[..],
            [Event::Error { code, .. }] if code == "unknown_message"),
        "an id no epoch holds"
    );
}

#[test]
fn members_of_a_public_room_says_it_is_public() {
    let clock = Clock::start();
    let mut a = engine(1, &clock);
    let out = a.handle(
        Input::Command(Command::Members {
            room: "lobby".into(),
        }),
        clock.now(),
    );
    assert!(
        matches!(&events(&out)[..], [Event::Error { code, detail }]
            if code == "no_members" && detail.contains("public room")),
        "{:?}",
        events(&out)
    );
}
