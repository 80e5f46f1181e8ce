//! Input tests: editing, history, Tab completion, commands (bad ones included), typing
//! notices, mentions.

mod common;

use std::time::Instant;

use common::*;
use hark_node::{Command, Event};
use hark_tui::app::{Effect, Overlay};
use hark_tui::commands::{parse, Submitted, UiCommand};
use hark_tui::input::InputLine;
use hark_tui::keys::Action;

fn typed(text: &str) -> InputLine {
    let mut line = InputLine::default();
    for c in text.chars() {
        line.insert_char(c);
    }
    line
}

#[test]
fn editing_moves_and_deletes_by_character_and_word() {
    let mut line = typed("pump 4 is hot");
    line.word_left();
    line.insert_char('v');
    line.insert_char('e');
    line.insert_char('r');
    line.insert_char('y');
    line.insert_char(' ');
    assert_eq!(line.text(), "pump 4 is very hot");
    line.delete_to_space_left();
    assert_eq!(line.text(), "pump 4 is hot");
    line.end();
    line.delete_word_left();
    assert_eq!(line.text(), "pump 4 is ");
    line.home();
    line.delete_word_right();
    assert_eq!(line.text(), " 4 is ");
    line.delete();
    line.right();
    line.backspace();
    assert_eq!(line.text(), " is ");
    line.delete_to_end();
    assert_eq!(line.text(), "");
    // Multi-byte characters are edited whole.
    let mut line = typed("héllo wörld");
    line.backspace();
    line.word_left();
    line.backspace();
    assert_eq!(line.text(), "héllowörl");
    line.left();
    line.left();
    line.delete_to_start();
    assert_eq!((line.text(), line.cursor()), ("lowörl", 0));
}

#[test]
fn paste_keeps_lines_and_drops_control_characters() {
    let mut line = typed("a");
    line.insert_str("b\r\nc\x1b[31md\tz\n");
    assert_eq!(line.text(), "ab\nc[31md z");
    assert_eq!(line.visible(40).0, "ab↵c[31md z");
}

#[test]
fn history_brings_back_sent_lines_and_the_draft() {
    let mut line = typed("first");
    line.submit();
    let mut line2 = line;
    for c in "second".chars() {
        line2.insert_char(c);
    }
    line2.submit();
    for c in "draft".chars() {
        line2.insert_char(c);
    }
    line2.history_back();
    assert_eq!(line2.text(), "second");
    line2.history_back();
    assert_eq!(line2.text(), "first");
    line2.history_back();
    assert_eq!(line2.text(), "first", "stops at the oldest");
    line2.history_forward();
    assert_eq!(line2.text(), "second");
    line2.history_forward();
    assert_eq!(line2.text(), "draft");
    line2.history_forward();
    assert_eq!(line2.text(), "draft");
}

#[test]
fn commands_parse_and_bad_ones_get_one_line_hints() {
    assert_eq!(parse("hello"), Ok(Some(Submitted::Say("hello".into()))));
    assert_eq!(parse("   "), Ok(None));
    assert_eq!(
        parse("//etc/hosts"),
        Ok(Some(Submitted::Say("/etc/hosts".into())))
    );
    assert_eq!(
        parse("/join ops"),
        Ok(Some(Submitted::Command(UiCommand::Join("ops".into()))))
    );
    assert_eq!(
        parse("/JOIN hark:abc"),
        Ok(Some(Submitted::Command(UiCommand::Join("hark:abc".into()))))
    );
    assert_eq!(
        parse("/me  waves  hello"),
        Ok(Some(Submitted::Command(UiCommand::Me(
            "waves  hello".into()
        ))))
    );
    assert_eq!(
        parse("/leave"),
        Ok(Some(Submitted::Command(UiCommand::Leave(None))))
    );
    assert_eq!(
        parse("/quit"),
        Ok(Some(Submitted::Command(UiCommand::Quit)))
    );
    for bad in [
        "/",
        "/join",
        "/join a b",
        "/nick",
        "/nick two words",
        "/me",
        "/alert",
        "/search",
        "/create",
        "/leave a b",
        "/frobnicate now",
        "/msg bob",
        "/\u{1b}[2J",
        &format!("/{}", "x".repeat(10_000)),
    ] {
        let hint = parse(bad).expect_err(bad);
        assert!(!hint.contains('\n'), "one line: {hint:?}");
        assert!(hint.len() < 120, "short: {hint:?}");
    }
    assert!(parse("/jion ops")
        .unwrap_err()
        .contains("unknown command /jion"));
    assert!(parse("/jo ops").unwrap_err().contains("did you mean /join"));
}

#[test]
fn a_bad_command_keeps_the_line_and_shows_a_hint() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    type_text(&mut app, "/frobnicate", at(base, 1));
    let effects = app.on_action(Action::Submit, at(base, 1));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(app.input.text(), "/frobnicate");
    let rows = screen(&mut app, 80, 24, base);
    assert!(
        contains(&rows, "unknown command /frobnicate"),
        "{}",
        dump(&rows)
    );
}

#[test]
fn node_errors_become_hints_and_a_failed_line_comes_back() {
    let base = Instant::now();
    let mut app = ready_app(&["ops"], base);
    type_text(&mut app, "/join NOT A ROOM!", at(base, 1));
    app.on_action(Action::Submit, at(base, 1));
    // Bad input never reaches the node: the hint comes from the parser.
    assert!(app.hint.is_some());
    app.input.set("", 0);
    type_text(&mut app, "/join bad!name", at(base, 1));
    let effects = app.on_action(Action::Submit, at(base, 1));
    assert!(matches!(&effects[..], [Effect::Node(Command::Join { .. })]));
    app.on_event(
        Event::Error {
            code: "bad_room".into(),
            detail: "room names are a-z 0-9 - _ .".into(),
        },
        at(base, 1),
    );
    assert_eq!(
        app.hint.as_ref().unwrap().text,
        "room names are a-z 0-9 - _ ."
    );
    // Whatever command the node refuses comes back as typed, to be fixed (a long invite with
    // one typo must not need pasting again).
    assert_eq!(app.input.text(), "/join bad!name");
    app.input.set("", 0);
    type_text(&mut app, "/me waves too much", at(base, 1));
    app.on_action(Action::Submit, at(base, 1));
    app.on_event(
        Event::Error {
            code: "too_long".into(),
            detail: "text is over the 16 KiB limit".into(),
        },
        at(base, 1),
    );
    assert_eq!(app.input.text(), "/me waves too much");
    app.input.set("", 0);
    // A line the node refuses comes back into the input.
    type_text(&mut app, "too long, say", at(base, 2));
    app.on_action(Action::Submit, at(base, 2));
    assert_eq!(app.input.text(), "");
    app.on_event(
        Event::Error {
            code: "too_long".into(),
            detail: "text is over the 16 KiB limit".into(),
        },
        at(base, 2),
    );
    assert_eq!(app.input.text(), "too long, say");
    assert!(app.hint.as_ref().unwrap().text.starts_with("not sent"));
}

#[test]
fn tab_completes_nicks_and_commands_and_cycles() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    for (peer, name) in [(BOB, "bob"), (CAROL, "bobby")] {
        app.on_event(
            Event::Presence {
                room: "lobby".into(),
                from: peer.into(),
                name: name.into(),
            },
            at(base, 1),
        );
    }
    // bobby spoke last, so comes first.
    app.on_event(
        message("lobby", "x1", CAROL, "bobby", T0 + 5, "text", "hi"),
        at(base, 1),
    );
    type_text(&mut app, "bo", at(base, 2));
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "bobby: ");
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "bob: ");
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "bobby: ");
    type_text(&mut app, "ask @B", at(base, 2));
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "bobby: ask @bobby ");
    // Our own name is not offered; nothing matches: nothing changes.
    type_text(&mut app, "ali", at(base, 2));
    app.on_action(Action::Complete, at(base, 2));
    assert!(app.input.text().ends_with(" ali"));
    app.input.set("", 0);
    type_text(&mut app, "/cr", at(base, 2));
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "/create ");
    // Commands that take a room complete the rooms in the sidebar.
    app.input.set("", 0);
    type_text(&mut app, "/leave #lo", at(base, 2));
    app.on_action(Action::Complete, at(base, 2));
    assert_eq!(app.input.text(), "/leave lobby");
}

#[test]
fn typing_notices_are_rate_limited_and_not_sent_for_commands() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    let typing = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Node(Command::Typing { .. })))
            .count()
    };
    assert_eq!(typing(&type_text(&mut app, "hello there", at(base, 1))), 1);
    assert_eq!(typing(&type_text(&mut app, " more", at(base, 2))), 0);
    assert_eq!(typing(&type_text(&mut app, " later", at(base, 4))), 1);
    app.input.set("", 0);
    assert_eq!(typing(&type_text(&mut app, "/nick bob", at(base, 10))), 0);
}

#[test]
fn mentions_are_counted_and_ring_once_each_when_out_of_view() {
    let base = Instant::now();
    let mut app = ready_app(&["ops"], base);
    let bells = |effects: &[Effect]| effects.iter().filter(|e| **e == Effect::Bell).count();
    // In view: highlighted, no bell.
    let e = app.on_event(
        message("lobby", "a", BOB, "bob", T0, "text", "alice, look"),
        at(base, 1),
    );
    assert_eq!(bells(&e), 0);
    // Out of view: counted, one bell per mention; other lines only count as unread.
    let e = app.on_event(
        message("ops", "b", BOB, "bob", T0, "text", "@Alice pump 4"),
        at(base, 1),
    );
    assert_eq!(bells(&e), 1);
    let e = app.on_event(
        message("ops", "c", BOB, "bob", T0, "text", "ALICE?"),
        at(base, 1),
    );
    assert_eq!(bells(&e), 1);
    let e = app.on_event(
        message("ops", "d", BOB, "bob", T0, "text", "malice"),
        at(base, 1),
    );
    assert_eq!(bells(&e), 0);
    // The same id again (sync after gossip) changes nothing.
    let e = app.on_event(
        message("ops", "c", BOB, "bob", T0, "text", "ALICE?"),
        at(base, 1),
    );
    assert_eq!(bells(&e), 0);
    let ops = &app.rooms[1];
    assert_eq!((ops.unread, ops.mentions), (3, 2));
}

#[test]
fn create_shows_the_invite_and_join_switches_rooms() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    type_text(&mut app, "/create ops", at(base, 1));
    let effects = app.on_action(Action::Submit, at(base, 1));
    assert_eq!(
        effects,
        vec![Effect::Node(Command::Create { room: "ops".into() })]
    );
    let effects = app.on_event(
        Event::Created {
            room: "ops".into(),
            invite: "hark:Invite123".into(),
        },
        at(base, 1),
    );
    assert!(effects.contains(&Effect::Copy("hark:Invite123".into())));
    assert!(matches!(app.overlay, Some(Overlay::Invite { .. })));
    let effects = app.on_event(Event::Joined { room: "ops".into() }, at(base, 1));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::SaveRooms(r) if r == &["lobby", "ops"])));
    assert_eq!(app.current_room().unwrap().name, "ops");
    let rows = screen(&mut app, 80, 24, base);
    assert!(contains(&rows, "hark:Invite123"), "{}", dump(&rows));
    // Ctrl+N / Ctrl+P cycle rooms.
    app.on_action(Action::NextRoom, at(base, 2));
    assert_eq!(app.current_room().unwrap().name, "lobby");
    app.on_action(Action::PrevRoom, at(base, 2));
    assert_eq!(app.current_room().unwrap().name, "ops");
}

#[test]
fn ptt_without_voice_says_so() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    let effects = app.on_action(Action::PttPress, at(base, 1));
    assert!(effects.is_empty());
    let rows = screen(&mut app, 80, 24, base);
    assert!(contains(&rows, "voice not available"), "{}", dump(&rows));
    assert!(rows[23].contains("voice n/a"), "{}", dump(&rows));
}

#[test]
fn a_remembered_room_the_node_is_no_longer_in_leaves_the_sidebar_quietly() {
    let base = Instant::now();
    let mut app = hark_tui::app::App::new(
        &["gone".to_string(), "ops".to_string()],
        false,
        hark_tui::voice::Ptt::new(hark_tui::voice::PttMode::Toggle, Ok(())),
        hark_tui::style::LocalTime::UTC,
    );
    let effects = app.on_event(
        Event::Ready {
            peer_id: ME.into(),
            name: "alice".into(),
            listen: vec![],
        },
        at(base, 0),
    );
    // History for each room, whether the non-lobby ones are private, and the verified peers.
    assert_eq!(effects.len(), 6, "{effects:?}");
    let not_joined = || Event::Error {
        code: "not_joined".into(),
        detail: "not in a room named \"gone\"".into(),
    };
    let history = |room: &str| Event::History {
        room: room.into(),
        messages: vec![stored("s1", BOB, "bob", T0, "kept")],
    };
    app.on_event(history("lobby"), at(base, 0));
    app.on_event(not_joined(), at(base, 0));
    app.on_event(not_joined(), at(base, 0));
    app.on_event(history("ops"), at(base, 0));
    app.on_event(
        Event::Error {
            code: "public_room".into(),
            detail: "ops is public".into(),
        },
        at(base, 0),
    );
    let names: Vec<&str> = app.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["lobby", "ops"]);
    assert_eq!(app.rooms[1].private, Some(false));
    assert_eq!(app.rooms[1].timeline.len(), 1);
    assert!(app.hint.is_none(), "start-up probes raise no hints");
}

#[test]
fn mute_finds_the_person_by_name_or_name_and_id() {
    let base = Instant::now();
    let mut app = ready_app(&[], base);
    let bob2 = "12D3KooWbobDDDDDd00d";
    app.on_event(
        message("lobby", "m1", BOB, "bob", T0, "text", "hi"),
        at(base, 1),
    );
    app.on_event(
        message("lobby", "m2", CAROL, "carol", T0, "text", "yo"),
        at(base, 1),
    );
    let submit = |app: &mut hark_tui::app::App, line: &str| {
        type_text(app, line, at(base, 2));
        app.on_action(Action::Submit, at(base, 2))
    };
    assert_eq!(
        submit(&mut app, "/mute Carol"),
        vec![Effect::Mute {
            peer_id: CAROL.into(),
            muted: true
        }]
    );
    assert!(contains(
        &screen(&mut app, 100, 24, base),
        "muted carol#77e0"
    ));
    assert_eq!(submit(&mut app, "/mute dave"), vec![]);
    assert!(app
        .hint
        .as_ref()
        .is_some_and(|h| h.text.contains("no one called dave")));
    assert_eq!(app.input.text(), "/mute dave", "kept to be fixed");
    app.input.set("", 0);
    app.on_event(
        message("lobby", "m3", bob2, "bob", T0, "text", "me too"),
        at(base, 1),
    );
    assert_eq!(submit(&mut app, "/unmute bob"), vec![]);
    assert_eq!(
        app.input.text(),
        "/unmute bob",
        "ambiguous: kept to be fixed"
    );
    app.input.set("", 0);
    assert_eq!(
        submit(&mut app, "/unmute bob#a1c2"),
        vec![Effect::Mute {
            peer_id: BOB.into(),
            muted: false
        }]
    );
    assert_eq!(
        parse("/mute"),
        Err("/mute needs a name: /mute bob (or bob#3f9a) (see /help)".into())
    );
}
