//! Delivery marks beside our own messages: `·` until someone holds it, `✓` a relay (no known
//! member), `✓✓ N/M` members, `✓✓` all of them; never on others' messages or on history.

mod common;

use std::time::Instant;

use common::*;
use hark_node::Event;
use hark_tui::app::App;
use hark_tui::keys::Action;

const RELAY: &str = "12D3KooWrelayRRRRr001";

fn send_line(app: &mut App, base: Instant, text: &str, id: &str) {
    type_text(app, text, at(base, 2));
    app.on_action(Action::Submit, at(base, 2));
    app.on_event(
        Event::Sent {
            room: "lobby".into(),
            id: id.into(),
        },
        at(base, 2),
    );
}

fn delivered(app: &mut App, base: Instant, id: &str, peers: &[&str], n: usize, m: usize) {
    app.on_event(
        Event::Delivered {
            room: "lobby".into(),
            id: id.into(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            members: m,
            members_holding: n,
        },
        at(base, 3),
    );
}

fn row_with(app: &mut App, base: Instant, text: &str) -> String {
    let rows = screen(app, 80, 24, base);
    // The message pane's part of the row (between its borders), without the padding.
    rows.iter()
        .flat_map(|r| r.split('│'))
        .find(|part| part.contains(text))
        .unwrap_or_else(|| panic!("no row with {text:?}:\n{}", dump(&rows)))
        .trim_end()
        .to_owned()
}

#[test]
fn an_own_message_goes_from_nobody_to_a_relay_to_some_members_to_all() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::History {
            room: "lobby".into(),
            messages: vec![stored("h1", ME, "alice", T0, "from an earlier run")],
        },
        at(base, 1),
    );
    app.on_event(
        message("lobby", "b1", BOB, "bob", T0 + 500, "text", "bob speaks"),
        at(base, 1),
    );
    send_line(&mut app, base, "pump 4 is hot", "m1");
    assert!(
        row_with(&mut app, base, "pump 4 is hot").ends_with("pump 4 is hot ·"),
        "nobody holds it yet"
    );
    delivered(&mut app, base, "m1", &[RELAY], 0, 2);
    assert!(row_with(&mut app, base, "pump 4 is hot").ends_with("pump 4 is hot ✓"));
    delivered(&mut app, base, "m1", &[RELAY, BOB], 1, 2);
    assert!(row_with(&mut app, base, "pump 4 is hot").ends_with("pump 4 is hot ✓✓ 1/2"));
    delivered(&mut app, base, "m1", &[RELAY, BOB, CAROL], 2, 2);
    assert!(row_with(&mut app, base, "pump 4 is hot").ends_with("pump 4 is hot ✓✓"));
    // No mark on someone else's message, nor on ours from history (not followed).
    assert!(row_with(&mut app, base, "bob speaks").ends_with("bob speaks"));
    assert!(row_with(&mut app, base, "from an earlier run").ends_with("from an earlier run"));
    // An event for an id not shown changes nothing and breaks nothing.
    delivered(&mut app, base, "nope", &[BOB], 1, 2);
}

#[test]
fn a_mark_that_does_not_fit_goes_on_a_line_of_its_own() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    // Fills the message pane's last line exactly at 80 columns (sidebar and people list
    // take their share).
    let long = "word ".repeat(60);
    send_line(&mut app, base, long.trim(), "m2");
    delivered(&mut app, base, "m2", &[BOB], 1, 2);
    let rows = screen(&mut app, 80, 24, base);
    assert!(contains(&rows, "✓✓ 1/2"), "{}", dump(&rows));
}
