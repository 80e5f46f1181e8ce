//! Rendering tests: the app drawn into ratatui's TestBackend, asserting on the screen's text.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hark_node::Event;
use hark_tui::app::Effect;
use hark_tui::keys::Action;

fn busy_app(base: Instant) -> hark_tui::app::App {
    let mut app = ready_app(&["ops", "deck"], base);
    let now = at(base, 1);
    for (peer, name) in [(BOB, "bob"), (CAROL, "carol")] {
        app.on_event(
            Event::PeerConnected {
                peer_id: peer.into(),
            },
            now,
        );
        app.on_event(
            Event::Presence {
                room: "lobby".into(),
                from: peer.into(),
                name: name.into(),
            },
            now,
        );
    }
    app.on_event(
        message("lobby", "01", BOB, "bob", T0, "text", "morning all"),
        now,
    );
    app.on_event(
        message(
            "lobby",
            "02",
            CAROL,
            "carol",
            T0 + 60_000,
            "me",
            "heads down to sector 4",
        ),
        now,
    );
    // Two unread in ops, one of them naming us; an alert would go to deck.
    app.on_event(
        message(
            "ops",
            "03",
            BOB,
            "bob",
            T0 + 61_000,
            "text",
            "pump 4 is running hot",
        ),
        now,
    );
    app.on_event(
        message(
            "ops",
            "04",
            BOB,
            "bob",
            T0 + 62_000,
            "text",
            "alice: can you look?",
        ),
        now,
    );
    app.on_event(
        Event::Typing {
            room: "lobby".into(),
            from: BOB.into(),
            name: "bob".into(),
        },
        now,
    );
    app
}

#[test]
fn main_screen_shows_rooms_messages_people_and_status() {
    let base = Instant::now();
    let mut app = busy_app(base);
    let rows = screen(&mut app, 120, 30, base + Duration::from_secs(1));
    let text = dump(&rows);
    // Sidebar with counts: ops has 2 unread of which 1 mentions us.
    assert!(contains(&rows, "1 lobby"), "{text}");
    assert!(contains(&rows, "2 ops"), "{text}");
    assert!(
        contains(&rows, "@1"),
        "mention count in the sidebar:\n{text}"
    );
    assert!(contains(&rows, "3 deck"), "{text}");
    // Message pane: title, times, name#shortid, actions.
    assert!(contains(&rows, "#lobby · 2 peers · public"), "{text}");
    assert!(contains(&rows, "09:14 bob#a1c2 morning all"), "{text}");
    assert!(
        contains(&rows, "09:15 * carol#77e0 heads down to sector 4"),
        "{text}"
    );
    assert!(contains(&rows, "Tue 12 May 2026"), "day line:\n{text}");
    assert!(contains(&rows, "bob is typing…"), "{text}");
    // People: us, and both peers online, bob typing.
    assert!(contains(&rows, "● alice#3f9a"), "{text}");
    assert!(contains(&rows, "● bob#a1c2 ✎"), "{text}");
    assert!(contains(&rows, "● carol#77e0"), "{text}");
    // Status bar on the last row.
    let status = rows.last().unwrap();
    assert!(status.contains("alice#3f9a · 2 peers"), "{status}");
    assert!(status.contains("network key ✗"), "{status}");
    assert!(status.contains("voice n/a"), "{status}");
    assert!(status.contains("syncing…"), "{status}");
    assert!(status.trim_end().ends_with("F1 help"), "{status}");

    // Switching to ops clears its counts and shows its messages.
    app.on_action(Action::GoToRoom(1), at(base, 2));
    let rows = screen(&mut app, 120, 30, base + Duration::from_secs(2));
    assert!(
        contains(&rows, "bob#a1c2 alice: can you look?"),
        "{}",
        dump(&rows)
    );
    assert!(!contains(&rows, "@1"), "{}", dump(&rows));
    // Someone talking on PTT is marked in the people list.
    app.on_event(
        Event::VoiceStart {
            room: "ops".into(),
            from: BOB.into(),
            name: "bob".into(),
        },
        at(base, 2),
    );
    let rows = screen(&mut app, 120, 30, base + Duration::from_secs(2));
    assert!(contains(&rows, "◉ bob#a1c2 ▮"), "{}", dump(&rows));
    // Typing marks expire by themselves.
    app.on_action(Action::GoToRoom(0), at(base, 2));
    let rows = screen(&mut app, 120, 30, base + Duration::from_secs(10));
    assert!(!contains(&rows, "typing"), "{}", dump(&rows));
    assert!(!contains(&rows, "✎"), "{}", dump(&rows));
}

#[test]
fn help_overlay_lists_keys_and_commands() {
    let base = Instant::now();
    let mut app = busy_app(base);
    app.on_action(Action::Help, at(base, 1));
    let rows = screen(&mut app, 80, 24, base);
    let text = dump(&rows);
    assert!(contains(&rows, "keys and commands"), "{text}");
    for needle in [
        "/join ROOM|INVITE",
        "/create ROOM",
        "/search TEXT",
        "/members",
        "(/unverify)",
        "/quit",
        "F2",
        "Alt+1..9",
        "PgUp",
    ] {
        assert!(contains(&rows, needle), "{needle} missing:\n{text}");
    }
    app.on_action(Action::Escape, at(base, 1));
    let rows = screen(&mut app, 80, 24, base);
    assert!(!contains(&rows, "keys and commands"), "{}", dump(&rows));
}

#[test]
fn an_alert_flashes_a_banner_and_rings_the_bell() {
    let base = Instant::now();
    let mut app = busy_app(base);
    let effects = app.on_event(
        message(
            "deck",
            "05",
            CAROL,
            "carol",
            T0 + 63_000,
            "alert",
            "fire alarm on deck 2",
        ),
        at(base, 63),
    );
    assert_eq!(effects.iter().filter(|e| **e == Effect::Bell).count(), 1);
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(63));
    let text = dump(&rows);
    assert!(contains(&rows, "ALERT in #deck"), "{text}");
    assert!(
        contains(&rows, "carol#77e0: fire alarm on deck 2"),
        "{text}"
    );
    // Deck's sidebar entry counts it like a mention.
    assert!(contains(&rows, "3 deck    @1"), "{text}");
    // In the room itself the line is marked ALERT.
    app.on_action(Action::GoToRoom(2), at(base, 64));
    app.on_action(Action::Escape, at(base, 64));
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(64));
    assert!(
        contains(&rows, "ALERT carol#77e0 fire alarm on deck 2"),
        "{}",
        dump(&rows)
    );
    assert!(!contains(&rows, "Esc dismisses"), "{}", dump(&rows));
}

#[test]
fn eighty_by_twenty_four_keeps_every_part() {
    let base = Instant::now();
    let mut app = busy_app(base);
    type_text(&mut app, "reply to bob", at(base, 1));
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(1));
    let text = dump(&rows);
    assert_eq!(rows.len(), 24);
    assert!(rows[0].starts_with("┌ Rooms"), "{text}");
    assert!(rows[0].contains("People"), "{text}");
    assert!(contains(&rows, "bob#a1c2 morning all"), "{text}");
    assert!(
        rows[21].contains("> reply to bob"),
        "input on row 22:\n{text}"
    );
    assert!(
        rows[23].contains("alice#3f9a") && rows[23].contains("F1 help"),
        "{text}"
    );
    // Long lines wrap inside the pane instead of spilling into the people list.
    app.on_event(
        message(
            "lobby",
            "06",
            BOB,
            "bob",
            T0 + 70_000,
            "text",
            &"word ".repeat(30),
        ),
        at(base, 2),
    );
    let rows = screen(&mut app, 80, 24, base + Duration::from_secs(2));
    for row in &rows[..20] {
        assert!(
            row.chars().filter(|c| *c == '│').count() >= 4
                || row.contains('┌')
                || row.contains('└'),
            "{}",
            dump(&rows)
        );
    }
    // Narrower still: the people list goes first, then the sidebar; nothing panics.
    let rows = screen(&mut app, 60, 20, base);
    assert!(!contains(&rows, "People"), "{}", dump(&rows));
    assert!(contains(&rows, "Rooms"), "{}", dump(&rows));
    let rows = screen(&mut app, 40, 10, base);
    assert!(!contains(&rows, "Rooms"), "{}", dump(&rows));
    screen(&mut app, 10, 3, base);
}

#[test]
fn scrollback_stays_put_while_messages_arrive_above_and_below() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    for i in 0..60u64 {
        app.on_event(
            message(
                "lobby",
                &format!("m{i:03}"),
                BOB,
                "bob",
                T0 + i * 1000,
                "text",
                &format!("line {i}"),
            ),
            at(base, 1),
        );
    }
    let size = (80, 24);
    app.on_action(Action::PageUp, at(base, 2));
    let before = screen(&mut app, size.0, size.1, base);
    assert!(!contains(&before, "line 59"), "{}", dump(&before));
    // A live message at the end, and a synced old one far above the view.
    app.on_event(
        message(
            "lobby",
            "m999",
            BOB,
            "bob",
            T0 + 100_000,
            "text",
            "brand new",
        ),
        at(base, 3),
    );
    app.on_event(
        Event::History {
            room: "lobby".into(),
            messages: vec![stored("m000a", CAROL, "carol", T0 + 500, "synced late")],
        },
        at(base, 3),
    );
    let after = screen(&mut app, size.0, size.1, base);
    // The message pane's rows are identical; only the "newer" count at its bottom grew.
    let pane = |rows: &[String]| -> Vec<String> {
        rows[1..19]
            .iter()
            .map(|r| r.chars().skip(14).take(48).collect())
            .collect()
    };
    assert_eq!(
        pane(&before),
        pane(&after),
        "\nbefore:\n{}\nafter:\n{}",
        dump(&before),
        dump(&after)
    );
    assert!(contains(&before, "↓ 16 newer"), "{}", dump(&before));
    assert!(contains(&after, "↓ 17 newer"), "{}", dump(&after));
    app.on_action(Action::ScrollBottom, at(base, 4));
    let live = screen(&mut app, size.0, size.1, base);
    assert!(contains(&live, "brand new"), "{}", dump(&live));
    // Home goes to the oldest loaded line.
    app.on_action(Action::ScrollTop, at(base, 4));
    let top = screen(&mut app, size.0, size.1, base);
    assert!(contains(&top, "line 0"), "{}", dump(&top));
    assert!(contains(&top, "synced late"), "{}", dump(&top));
}

#[test]
fn history_shows_at_once_and_own_lines_appear_when_sent() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::History {
            room: "lobby".into(),
            messages: vec![
                stored("h1", BOB, "bob", T0, "stored before we started"),
                stored("h2", ME, "alice", T0 + 1000, "and my own reply"),
            ],
        },
        at(base, 1),
    );
    type_text(&mut app, "a new line", at(base, 2));
    let effects = app.on_action(Action::Submit, at(base, 2));
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Node(hark_node::Command::Send { text, .. }) if text == "a new line")
    ));
    app.on_event(
        Event::Sent {
            room: "lobby".into(),
            id: "h3".into(),
        },
        at(base, 2),
    );
    let rows = screen(&mut app, 80, 24, base);
    let text = dump(&rows);
    assert!(
        contains(&rows, "bob#a1c2 stored before we started"),
        "{text}"
    );
    assert!(contains(&rows, "alice#3f9a and my own reply"), "{text}");
    assert!(contains(&rows, "alice#3f9a a new line"), "{text}");
}

#[test]
fn an_invite_shows_whole_on_one_row_at_80x24() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    // As long as the invite of a room with a short name (≈ 61 characters).
    let invite = format!("hark:{}", "3xQv".repeat(14));
    app.on_event(
        Event::Created {
            room: "ops".into(),
            invite: invite.clone(),
        },
        at(base, 1),
    );
    let rows = screen(&mut app, 80, 24, base);
    assert!(
        rows.iter().any(|row| row.trim() == invite),
        "the invite alone on a row, to copy:\n{}",
        dump(&rows)
    );
    assert!(
        contains(&rows, "allows"),
        "no line cut off:\n{}",
        dump(&rows)
    );
}

/// Messages of the same millisecond keep the node's order (the clock's counter), whatever
/// their ids: a burst from one author reads as it was sent.
#[test]
fn messages_of_the_same_millisecond_keep_the_order_they_were_written_in() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    // Ids in the opposite order to the clock's counter.
    for (id, tick, text) in [("ff01", 0, "bulk 51"), ("0002", 1, "bulk 52")] {
        app.on_event(
            Event::Message {
                room: "lobby".into(),
                id: id.into(),
                from: BOB.into(),
                name: "bob".into(),
                ts: T0,
                tick,
                kind: "text".into(),
                text: text.into(),
            },
            at(base, 1),
        );
    }
    let rows = screen(&mut app, 80, 24, base);
    let first = rows.iter().position(|r| r.contains("bulk 51"));
    let second = rows.iter().position(|r| r.contains("bulk 52"));
    assert!(first.is_some() && first < second, "{}", dump(&rows));
}

/// Someone reached only through another node (a relay, the node serving a web user) is
/// present while their presence keeps coming, though we have no connection to them; absent
/// once it stops.
#[test]
fn a_peer_heard_through_a_relay_is_shown_present_while_heard() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    app.on_event(
        Event::Presence {
            room: "lobby".into(),
            from: CAROL.into(),
            name: "carol".into(),
        },
        at(base, 1),
    );
    // A web user sends no presence: a message written just now says they are here; one a
    // catch-up brings from an hour ago does not.
    const DAVE: &str = "12D3KooWdaveDDDDd0d0";
    for (from, name, ts, text) in [
        (BOB, "bob", T0 + 1_000, "just now"),
        (DAVE, "dave", T0 - 3_600_000, "an hour ago"),
    ] {
        app.on_event(
            message("lobby", text, from, name, ts, "text", text),
            at(base, 1),
        );
    }
    // The mark before the name in the People panel (the rightmost one).
    let marker = |rows: &[String], who: &str| {
        rows.iter()
            .filter_map(|r| r.rsplit("││").next())
            .find(|people| people.contains(who))
            .and_then(|people| people.chars().next())
    };
    let rows = screen(&mut app, 100, 24, base + Duration::from_secs(2));
    assert_eq!(marker(&rows, "carol#77e0"), Some('●'), "{}", dump(&rows));
    assert_eq!(marker(&rows, "bob#a1c2"), Some('●'), "{}", dump(&rows));
    assert_eq!(marker(&rows, "dave#d0d0"), Some('○'), "{}", dump(&rows));
    let rows = screen(&mut app, 100, 24, base + Duration::from_secs(300));
    assert_eq!(marker(&rows, "carol#77e0"), Some('○'), "{}", dump(&rows));
}
