//! Helpers shared by the UI tests: an app that has met its node, events, and the screen as text.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hark_node::{Event, HistoryMessage};
use hark_tui::app::{App, Effect, Now};
use hark_tui::keys::Action;
use hark_tui::style::LocalTime;
use hark_tui::voice::{NoVoice, Ptt, PttMode, Voice};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

pub const ME: &str = "12D3KooWaliceAAAA3f9a";
pub const BOB: &str = "12D3KooWbobBBBBBa1c2";
pub const CAROL: &str = "12D3KooWcarolCCC77e0";
/// 2026-05-12 09:14:00 UTC.
pub const T0: u64 = 1_778_577_240_000;

/// A fixed present: the monotonic base plus `secs`, and wall time T0 + `secs`.
pub fn at(base: Instant, secs: u64) -> Now {
    Now {
        at: base + Duration::from_secs(secs),
        wall_ms: T0 + secs * 1000,
    }
}

/// An app (sidebar: lobby and `rooms`) that got `ready` as alice.
pub fn ready_app(rooms: &[&str], base: Instant) -> App {
    let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
    let mut app = App::new(
        &rooms,
        false,
        Ptt::new(PttMode::Toggle, NoVoice.available()),
        LocalTime::UTC,
    );
    app.on_event(
        Event::Ready {
            peer_id: ME.into(),
            name: "alice".into(),
            listen: vec![],
        },
        at(base, 0),
    );
    // Answer the start-up probes: each room's history (empty), and whether it is private.
    for room in std::iter::once("lobby".to_string()).chain(rooms.iter().cloned()) {
        app.on_event(
            Event::History {
                room: room.clone(),
                messages: vec![],
            },
            at(base, 0),
        );
        if room != "lobby" {
            app.on_event(
                Event::Invite {
                    room,
                    invite: "hark:x".into(),
                },
                at(base, 0),
            );
        }
    }
    app
}

pub fn message(
    room: &str,
    id: &str,
    from: &str,
    name: &str,
    ts: u64,
    kind: &str,
    text: &str,
) -> Event {
    Event::Message {
        room: room.into(),
        id: id.into(),
        from: from.into(),
        name: name.into(),
        ts,
        tick: 0,
        kind: kind.into(),
        text: text.into(),
    }
}

pub fn stored(id: &str, from: &str, name: &str, ts: u64, text: &str) -> HistoryMessage {
    HistoryMessage {
        id: id.into(),
        from: from.into(),
        name: name.into(),
        ts,
        tick: 0,
        kind: "text".into(),
        text: text.into(),
    }
}

pub fn type_text(app: &mut App, text: &str, now: Now) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in text.chars() {
        effects.extend(app.on_action(Action::Insert(c), now));
    }
    effects
}

/// Draw the app on a `width`×`height` test terminal and return its rows as text.
pub fn screen(app: &mut App, width: u16, height: u16, now: Instant) -> Vec<String> {
    app.size = Rect::new(0, 0, width, height);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| hark_tui::view::draw(frame, app, now))
        .expect("draw");
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < width {
                let cell = &buffer[(x, y)];
                row.push_str(cell.symbol());
                x += 1;
            }
            row
        })
        .collect()
}

pub fn contains(rows: &[String], text: &str) -> bool {
    rows.iter().any(|r| r.contains(text))
}

pub fn dump(rows: &[String]) -> String {
    rows.join("\n")
}
