//! Our sent messages between their commit and their fsync (`unsynced.rs`): engines whose
//! store hands out fsync tickets, as the node's does, fed `Input::Synced` by hand.

use hark_proto::RoomName;

use super::tests::{connect, engine, engine_on, events, lobby, published, send, settle, Clock};
use super::*;
use crate::api::{Command, Event};
use crate::rooms::Room;

/// An engine whose store fsyncs off the event loop, as the node's does: each send waits for
/// [`Input::Synced`].
fn engine_with_fsync_thread(seed: u8, clock: &Clock) -> Engine<MemoryStore> {
    let mut store = MemoryStore::default();
    store.tickets = true;
    engine_on(seed, clock, store)
}

/// Connect `a`, whose send waits for its fsync, to `b`: whichever side starts the session,
/// nothing of a's goes out by sync (its request, or its answer, as reply 7, to b's).
fn connect_while_a_send_waits(
    a: &mut Engine<MemoryStore>,
    b: &mut Engine<MemoryStore>,
    clock: &Clock,
) {
    let first = connect(a, b, clock);
    assert!(
        !first
            .iter()
            .any(|(from_a, o)| *from_a && is_sync_traffic(o)),
        "{first:?}"
    );
    for (from_a, output) in first {
        if let (false, Output::SyncRequest { request, .. }) = (from_a, output) {
            let answer = a.handle(
                Input::SyncRequest {
                    peer: b.peer_id(),
                    reply: 7,
                    request,
                },
                clock.now(),
            );
            assert!(!answer.iter().any(is_sync_traffic), "{answer:?}");
        }
    }
}

/// The store's fsync thread says `ticket` is done.
fn fsynced(engine: &mut Engine<MemoryStore>, ticket: u64, clock: &Clock) -> Vec<Output> {
    engine.handle(
        Input::Synced {
            ticket,
            result: Ok(()),
        },
        clock.now(),
    )
}

fn awaited(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::AwaitSync { ticket } => Some(*ticket),
            _ => None,
        })
        .collect()
}

fn is_sync_traffic(output: &Output) -> bool {
    matches!(
        output,
        Output::SyncRequest { .. } | Output::SyncResponse { .. }
    )
}

#[test]
fn a_sent_message_is_stored_at_once_and_told_of_and_published_only_after_its_fsync() {
    let clock = Clock::start();
    let mut a = engine_with_fsync_thread(1, &clock);
    let one = send(&mut a, &clock, "one");
    let two = send(&mut a, &clock, "two");
    assert_eq!((awaited(&one), awaited(&two)), (vec![1], vec![2]));
    for out in [&one, &two] {
        assert!(published(out).is_empty(), "nothing leaves before the fsync");
        assert!(
            events(out).is_empty(),
            "no `sent` before the fsync: {out:?}"
        );
    }
    assert_eq!(
        a.store().message_count(&lobby().chat_topic),
        2,
        "both committed, readable by `history`"
    );

    // One fsync can cover both (the store's thread answers a burst at once); they go out in
    // the order they were sent, each `sent` before its publish.
    let out = fsynced(&mut a, 2, &clock);
    let order: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Sent { .. }) => Some("sent"),
            Output::Publish { .. } => Some("publish"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["sent", "publish", "sent", "publish"]);
    let texts: Vec<&str> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["one", "two"],
        "for the node's other clients, in order"
    );

    // A late or repeated answer finds nothing left to do.
    let again = fsynced(&mut a, 1, &clock);
    assert!(published(&again).is_empty() && events(&again).is_empty());
}

#[test]
fn sync_traffic_waits_while_a_sent_message_waits_for_its_fsync() {
    let clock = Clock::start();
    let mut a = engine_with_fsync_thread(1, &clock);
    let mut b = engine(2, &clock);
    assert_eq!(awaited(&send(&mut a, &clock, "not yet durable")), vec![1]);

    // Whichever side starts the session, nothing of a's goes out by sync: its request, or its
    // answer to b's, could carry the message from the room's document.
    connect_while_a_send_waits(&mut a, &mut b, &clock);
    // If b's session asked a (reply 7), the answer is held, and the driver must keep the reply
    // channel for it until it comes out.
    let held_7 = a.holds_reply(7);
    assert!(!a.holds_reply(8));

    // Another send before the first fsync is done: it does not hold up what waited for the
    // first (a steady stream of sends must not starve sync).
    assert_eq!(awaited(&send(&mut a, &clock, "also waiting")), vec![2]);

    // The first fsync is done: its message is published, then the held sync traffic goes out.
    let out = fsynced(&mut a, 1, &clock);
    let publish = out
        .iter()
        .position(|o| matches!(o, Output::Publish { .. }))
        .expect("published");
    let sync = out
        .iter()
        .position(is_sync_traffic)
        .expect("the held sync traffic");
    assert!(publish < sync, "{out:?}");
    // A session that b started is answered through the driver's reply id: check it is the
    // one held, then let a session a starts now run to the end.
    if let Some(Output::SyncResponse { reply, .. }) = out.iter().find(|o| is_sync_traffic(o)) {
        assert_eq!(*reply, 7);
    }
    assert_eq!(
        held_7,
        out.iter()
            .any(|o| matches!(o, Output::SyncResponse { reply: 7, .. })),
        "holds_reply told the driver what came out"
    );
    assert!(!a.holds_reply(7), "out now");
    assert_eq!(
        published(&out).len(),
        1,
        "the second waits for its own fsync"
    );
    let mut rest: Vec<(bool, Output)> = out
        .into_iter()
        .filter(|o| matches!(o, Output::SyncRequest { .. }))
        .map(|o| (true, o))
        .collect();
    rest.extend(
        fsynced(&mut a, 2, &clock)
            .into_iter()
            .filter(|o| matches!(o, Output::SyncRequest { .. }))
            .map(|o| (true, o)),
    );
    settle(&mut a, &mut b, &clock, rest);
}

#[test]
fn after_a_failed_fsync_nothing_that_could_carry_the_message_leaves() {
    let clock = Clock::start();
    let mut a = engine_with_fsync_thread(1, &clock);
    let mut b = engine(2, &clock);
    assert_eq!(awaited(&send(&mut a, &clock, "lost?")), vec![1]);
    // Sync traffic made meanwhile is held back for the send...
    connect_while_a_send_waits(&mut a, &mut b, &clock);
    // ...and the fsync fails: the message is committed but may not be on the disk.
    let out = a.handle(
        Input::Synced {
            ticket: 1,
            result: Err("cannot fsync hark.db-wal: Input/output error".into()),
        },
        clock.now(),
    );
    assert!(published(&out).is_empty());
    assert!(
        !out.iter().any(is_sync_traffic),
        "what was held back is dropped: {out:?}"
    );
    assert!(
        matches!(&events(&out)[..], [Event::Error { code, detail }]
            if code == "store_failed" && detail.contains("Input/output error")),
        "{out:?}"
    );
    // From then on no send goes out and no sync traffic either, until a restart.
    let out = send(&mut a, &clock, "next");
    assert!(awaited(&out).is_empty() && published(&out).is_empty());
    assert!(
        matches!(&events(&out)[..], [Event::Error { code, detail }]
            if code == "store_failed" && detail.contains("restart the node")),
        "{out:?}"
    );
    let topic = lobby().chat_topic.as_str().to_owned();
    let out = a.handle(
        Input::Subscribed {
            peer: b.peer_id(),
            topic,
        },
        clock.now(),
    );
    assert!(!out.iter().any(is_sync_traffic), "{out:?}");
}

#[test]
fn a_send_whose_room_is_left_before_its_fsync_still_names_the_room_in_sent() {
    let clock = Clock::start();
    let mut a = engine_with_fsync_thread(1, &clock);
    let ops = Room::public(RoomName::parse("ops").unwrap());
    let join = a.handle(
        Input::Command(Command::Join {
            room: Some("ops".into()),
            invite: None,
        }),
        clock.now(),
    );
    assert!(events(&join)
        .iter()
        .any(|e| matches!(e, Event::Joined { room } if room == ops.name.as_str())));
    let out = a.handle(
        Input::Command(Command::Send {
            room: "ops".into(),
            text: "last words".into(),
        }),
        clock.now(),
    );
    assert_eq!(awaited(&out), vec![1]);
    a.handle(
        Input::Command(Command::Leave { room: "ops".into() }),
        clock.now(),
    );
    let out = fsynced(&mut a, 1, &clock);
    assert!(
        matches!(&events(&out)[..], [Event::Sent { room, .. }, ..] if room == "ops"),
        "{out:?}"
    );
    assert!(
        published(&out).is_empty(),
        "a room left is not published to"
    );
}

#[test]
fn a_send_that_finds_the_fsync_thread_gone_while_others_wait_fails_and_names_none_of_theirs() {
    let clock = Clock::start();
    let mut a = engine_with_fsync_thread(1, &clock);
    assert_eq!(awaited(&send(&mut a, &clock, "first")), vec![1]);
    // The fsync thread stops: the store fsyncs the next send itself. The first send's `sent`
    // belongs to the client that made it, so it is not told in this command's answer.
    a.store.tickets = false;
    let out = send(&mut a, &clock, "second");
    assert!(published(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&events(&out)[..], [Event::Error { code, detail }]
            if code == "store_failed" && detail.contains("fsync thread")),
        "{out:?}"
    );
    // The driver then fails the waiting one (the thread will never answer it).
    let out = a.handle(
        Input::Synced {
            ticket: u64::MAX,
            result: Err("the store's fsync thread has stopped".into()),
        },
        clock.now(),
    );
    assert!(published(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&events(&out)[..], [Event::Error { code, .. }] if code == "store_failed"),
        "{out:?}"
    );
}
