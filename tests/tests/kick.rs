//! Membership that can be taken back (docs/protocol.md, "Members, kicks and key epochs"): a
//! kicked member's node, still running, connected and subscribed to everything it has, reads no
//! message and hears no voice written after the kick, and keeps what it had; the others carry
//! on in the new epoch. Two admins kicking at once end with every remaining member on one
//! epoch that neither kicked member holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hark_node::Event;
use hark_tests::process::DELIVERY;
use hark_tests::NodeProcess;
use serde_json::json;

/// A voice spurt is paced in real time, plus buffering, on a loaded machine.
const SPURT: Duration = Duration::from_secs(30);
/// How long a kicked node is watched for anything it should not get, after the others have it.
const QUIET: Duration = Duration::from_secs(3);

/// One second of a 440 Hz tone, 48 kHz mono 16-bit PCM.
fn tone(dir: &Path) -> PathBuf {
    let rate = 48_000u32;
    let samples: Vec<i16> = (0..rate)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / rate as f64).sin() * 8_000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    let path = dir.join("tone.wav");
    std::fs::write(&path, bytes).expect("write the WAV");
    path
}

fn create(node: &mut NodeProcess, room: &str) -> String {
    node.send(json!({"cmd": "create", "room": room}));
    match node.expect("created", DELIVERY, |e| matches!(e, Event::Created { .. })) {
        Event::Created { invite, .. } => invite,
        _ => unreachable!(),
    }
}

fn join(node: &mut NodeProcess, invite: &str, room: &str) {
    node.send(json!({"cmd": "join", "invite": invite}));
    node.expect(
        "joined",
        DELIVERY,
        |e| matches!(e, Event::Joined { room: r } if r == room),
    );
}

/// The node's `members` answer: (owner, admins, members, epoch, kicked).
type Members = (String, Vec<String>, Vec<String>, u32, Vec<String>);

fn members(node: &mut NodeProcess, room: &str) -> Members {
    node.send(json!({"cmd": "members", "room": room}));
    match node.expect(
        "members",
        DELIVERY,
        |e| matches!(e, Event::Members { room: r, .. } if r == room),
    ) {
        Event::Members {
            owner,
            admins,
            members,
            epoch,
            kicked,
            ..
        } => (owner, admins, members, epoch, kicked),
        _ => unreachable!(),
    }
}

/// Ask `members` until `pred` holds, within `timeout`.
fn wait_members(
    node: &mut NodeProcess,
    room: &str,
    timeout: Duration,
    mut pred: impl FnMut(&Members) -> bool,
) -> Members {
    let deadline = Instant::now() + timeout;
    loop {
        let got = members(node, room);
        if pred(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{}: members never as expected; last {got:?}\nstderr:\n{}",
            node.name,
            node.stderr()
        );
        // Let the node work before asking again (bounded by the deadline above).
        node.wait_for(Duration::from_millis(300), |_| false);
    }
}

/// `hark-node ctl --data-dir DIR ARGS…`, bounded in time.
fn ctl(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(hark_tests::process::hark_node_bin())
        .arg("ctl")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hark-node runs");
    let deadline = Instant::now() + DELIVERY;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("ctl's output")
}

fn sorted(mut peers: Vec<String>) -> Vec<String> {
    peers.sort();
    peers
}

/// An event seen already, or one that comes within [`DELIVERY`].
fn saw(node: &mut NodeProcess, what: &str, pred: impl Fn(&Event) -> bool) {
    node.drain();
    if node.seen.iter().any(&pred) {
        return;
    }
    node.expect(what, DELIVERY, pred);
}

fn expect_text(node: &mut NodeProcess, text: &str) {
    node.drain();
    if !node.messages_with_text(text).is_empty() {
        return;
    }
    node.expect(
        &format!("message {text:?}"),
        DELIVERY,
        |e| matches!(e, Event::Message { text: t, .. } if t == text),
    );
}

/// Nothing readable after the kick reached `node`: none of `texts`, no voice from `talker`
/// after the event at index `since` of what it saw.
fn assert_reads_nothing_after(node: &mut NodeProcess, since: usize, texts: &[&str], talker: &str) {
    node.wait_for(QUIET, |_| false);
    node.drain();
    for text in texts {
        assert!(
            node.messages_with_text(text).is_empty(),
            "{} read {text:?}, written after it was kicked",
            node.name
        );
    }
    let heard = node.seen[since..]
        .iter()
        .any(|e| matches!(e, Event::VoiceStart { from, .. } if from == talker));
    assert!(!heard, "{} heard voice after it was kicked", node.name);
}

#[test]
fn a_kicked_member_reads_and_hears_nothing_after_the_kick_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path());
    let mut a = NodeProcess::start("alice", &[]);
    let listen = "/ip4/127.0.0.1/tcp/0";
    let (b_dir, d_dir) = (dir.path().join("bob"), dir.path().join("dave"));
    let mut b = NodeProcess::start_with_dir("bob", b_dir.clone(), listen, &["--peer", &a.addr()]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let d = NodeProcess::start_with_dir("dave", d_dir.clone(), listen, &["--peer", &a.addr()]);
    let (pa, pb, pc, pd) = (
        a.peer_id.clone(),
        b.peer_id.clone(),
        c.peer_id.clone(),
        d.peer_id.clone(),
    );

    let invite = create(&mut a, "ops");
    join(&mut b, &invite, "ops");
    join(&mut c, &invite, "ops");
    let mut d = d;
    join(&mut d, &invite, "ops");
    // Alice knows all joined (their `join` operations reached her).
    let (owner, admins, _, epoch, _) = wait_members(&mut a, "ops", DELIVERY, |m| m.2.len() == 4);
    assert_eq!((owner, admins, epoch), (pa.clone(), vec![pa.clone()], 0));

    a.send(json!({"cmd": "send", "room": "ops", "text": "before the kick"}));
    expect_text(&mut b, "before the kick");
    expect_text(&mut c, "before the kick");
    expect_text(&mut d, "before the kick");
    // Dave goes offline before the kick: he learns of it when he is back.
    assert!(d.quit().success());

    // A member who is not an admin cannot kick (here through `hark-node ctl`: exit 1, the
    // node's reason on stderr), and `ctl members` prints the room's membership.
    let refused = ctl(&b.data_dir(), &["kick", "ops", &pc]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not_allowed"));
    let listed = ctl(&a.data_dir(), &["members", "ops"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        (listed["event"].as_str(), listed["owner"].as_str()),
        (Some("members"), Some(pa.as_str()))
    );

    c.drain();
    let carol_since = c.seen.len();
    // The kick comes through `hark-node ctl`; alice's own client hears of it too.
    let by_ctl = ctl(&a.data_dir(), &["kick", "ops", &pc]);
    assert!(by_ctl.status.success(), "{by_ctl:?}");
    let answer: serde_json::Value = serde_json::from_slice(&by_ctl.stdout).unwrap();
    assert_eq!(answer["event"], "kicked", "{answer}");
    let kicked =
        |e: &Event| matches!(e, Event::Kicked { peer, by, .. } if *peer == pc && *by == pa);
    let epoch_1 = |e: &Event| matches!(e, Event::Epoch { room, epoch: 1 } if room == "ops");
    saw(&mut a, "kicked", kicked);
    saw(&mut a, "epoch 1", epoch_1);
    saw(&mut b, "kicked", kicked);
    saw(&mut b, "epoch 1", epoch_1);
    saw(&mut c, "told it was kicked", kicked);

    // Alice and Bob carry on, text and voice.
    a.send(json!({"cmd": "send", "room": "ops", "text": "after the kick, alice"}));
    b.send(json!({"cmd": "send", "room": "ops", "text": "after the kick, bob"}));
    expect_text(&mut b, "after the kick, alice");
    expect_text(&mut a, "after the kick, bob");
    // Carol, still running, writes into the epoch she has: nobody shows it.
    c.send(json!({"cmd": "send", "room": "ops", "text": "carol after her kick"}));
    a.send(json!({"cmd": "voice", "room": "ops", "wav": wav}));
    b.expect(
        "alice's voice",
        SPURT,
        |e| matches!(e, Event::VoiceStart { from, room, .. } if *from == pa && room == "ops"),
    );
    a.expect("voice_sent", SPURT, |e| {
        matches!(e, Event::VoiceSent { .. })
    });
    a.send(json!({"cmd": "send", "room": "ops", "text": "last word"}));
    expect_text(&mut b, "last word");

    assert_reads_nothing_after(
        &mut c,
        carol_since,
        &["after the kick, alice", "after the kick, bob", "last word"],
        &pa,
    );
    for node in [&mut a, &mut b] {
        assert!(
            node.messages_with_text("carol after her kick").is_empty(),
            "{} showed what carol wrote after her kick",
            node.name
        );
    }

    // Carol keeps the history she had; Bob's spans both epochs.
    let texts = |h: Vec<hark_node::api::HistoryMessage>| -> Vec<String> {
        h.into_iter().map(|m| m.text).collect()
    };
    let carol = texts(c.history("ops", 100));
    assert!(carol.contains(&"before the kick".to_owned()), "{carol:?}");
    assert!(!carol.iter().any(|t| t.starts_with("after the kick")));
    let bob_page = b.history("ops", 100);
    // Paging back from a message of the new epoch reaches into the old one.
    let after = bob_page
        .iter()
        .find(|m| m.text == "after the kick, alice")
        .map(|m| m.id.clone())
        .expect("alice's message in bob's history");
    b.send(json!({"cmd": "history", "room": "ops", "limit": 100, "before": after}));
    let Event::History { messages, .. } = b.expect(
        "a page back",
        DELIVERY,
        |e| matches!(e, Event::History { room, .. } if room == "ops"),
    ) else {
        unreachable!()
    };
    let older = texts(messages);
    assert!(older.contains(&"before the kick".to_owned()), "{older:?}");
    assert!(!older.contains(&"last word".to_owned()), "{older:?}");
    let bob = texts(bob_page);
    for text in [
        "before the kick",
        "after the kick, alice",
        "after the kick, bob",
        "last word",
    ] {
        assert!(
            bob.contains(&text.to_owned()),
            "bob's history lacks {text:?}: {bob:?}"
        );
    }
    assert!(!bob.contains(&"carol after her kick".to_owned()));
    // Membership operations travel as history records but are never shown as messages.
    assert!(
        !bob.iter().any(|t| t.starts_with("hark-member/")),
        "{bob:?}"
    );
    for node in [&mut a, &mut b, &mut c] {
        node.drain();
        assert!(!node
            .seen
            .iter()
            .any(|e| matches!(e, Event::Message { text, .. } if text.starts_with("hark-member/"))));
    }

    let (_, _, left, epoch, kicked) = members(&mut b, "ops");
    assert_eq!(
        sorted(left),
        sorted(vec![pa.clone(), pb.clone(), pd.clone()])
    );
    assert_eq!((epoch, kicked), (1, vec![pc.clone()]));

    // Dave comes back: syncing the old epoch brings the rekey with his key in it, and the
    // new epoch's sync what was said meanwhile.
    let mut d = NodeProcess::start_with_dir("dave", d_dir, listen, &["--peer", &a.addr()]);
    saw(&mut d, "epoch 1", epoch_1);
    expect_text(&mut d, "after the kick, alice");
    expect_text(&mut d, "last word");

    // Bob restarts: still on the new epoch (kept in his store), and still hears alice.
    assert!(b.quit().success());
    let mut b = NodeProcess::start_with_dir("bob", b_dir, listen, &["--peer", &a.addr()]);
    assert_eq!(members(&mut b, "ops").3, 1);
    b.wait_presence("ops", &[&pa], DELIVERY);
    a.send(json!({"cmd": "send", "room": "ops", "text": "after bob's restart"}));
    expect_text(&mut b, "after bob's restart");
    expect_text(&mut d, "after bob's restart");
    assert!(c.messages_with_text("after bob's restart").is_empty());
}

#[test]
fn two_admins_kicking_at_once_converge_on_one_epoch_without_either() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let mut d = NodeProcess::start("dave", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let mut e = NodeProcess::start("erin", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let (pa, pb, pc, pd, pe) = (
        a.peer_id.clone(),
        b.peer_id.clone(),
        c.peer_id.clone(),
        d.peer_id.clone(),
        e.peer_id.clone(),
    );

    let invite = create(&mut a, "ops");
    for node in [&mut b, &mut c, &mut d, &mut e] {
        join(node, &invite, "ops");
    }
    wait_members(&mut a, "ops", DELIVERY, |m| m.2.len() == 5);
    a.send(json!({"cmd": "promote", "room": "ops", "peer": pb}));
    a.expect(
        "members",
        DELIVERY,
        |e| matches!(e, Event::Members { admins, .. } if admins.contains(&pb)),
    );
    wait_members(&mut b, "ops", DELIVERY, |m| {
        m.1.contains(&pb) && m.2.len() == 5
    });

    c.drain();
    d.drain();
    let (c_since, d_since) = (c.seen.len(), d.seen.len());
    // Both kicks at once: each admin's node decides before it hears of the other's.
    a.send(json!({"cmd": "kick", "room": "ops", "peer": pc}));
    b.send(json!({"cmd": "kick", "room": "ops", "peer": pd}));

    let remaining = sorted(vec![pa.clone(), pb.clone(), pe.clone()]);
    let converged = |m: &Members| sorted(m.2.clone()) == remaining && m.4.len() == 2;
    // The membership lists can agree before the epochs do: when the kicks crossed, the loser's
    // kick is made again in a second rekey, which reaches each node a moment later. Ask all
    // three until they hold one epoch.
    let deadline = Instant::now() + DELIVERY * 2;
    let epoch = loop {
        let epochs: Vec<u32> = [&mut a, &mut b, &mut e]
            .into_iter()
            .map(|node| wait_members(node, "ops", DELIVERY * 2, converged).3)
            .collect();
        if epochs.iter().all(|&epoch| epoch == epochs[0]) {
            break epochs[0];
        }
        assert!(
            Instant::now() < deadline,
            "alice, bob and erin never on one epoch: {epochs:?}"
        );
        a.wait_for(Duration::from_millis(300), |_| false);
    };
    assert!(epoch >= 1);
    // One more look after a quiet spell: the epoch they share no longer moves.
    a.wait_for(QUIET, |_| false);
    let again_epochs = [&mut a, &mut b, &mut e].map(|node| members(node, "ops").3);
    // Whether the kicks crossed (a second rekey made the loser's kick stick) or came one
    // after the other depends on timing; both must converge. Say which happened.
    let again = |n: &NodeProcess| n.stderr().contains("not reflected in the current key");
    eprintln!(
        "epoch {epoch}; a kick was made again after crossing: {}",
        again(&a) || again(&b)
    );
    assert_eq!(again_epochs, [epoch; 3]);

    a.send(json!({"cmd": "send", "room": "ops", "text": "after both kicks"}));
    e.send(json!({"cmd": "send", "room": "ops", "text": "erin after both kicks"}));
    expect_text(&mut b, "after both kicks");
    expect_text(&mut e, "after both kicks");
    expect_text(&mut a, "erin after both kicks");
    expect_text(&mut b, "erin after both kicks");
    for (node, since) in [(&mut c, c_since), (&mut d, d_since)] {
        assert_reads_nothing_after(
            node,
            since,
            &["after both kicks", "erin after both kicks"],
            &pa,
        );
    }
}

#[test]
fn an_invite_from_before_the_kick_opens_only_the_old_epoch_and_a_new_one_lets_a_newcomer_in() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr()]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let (pa, pc) = (a.peer_id.clone(), c.peer_id.clone());
    let old_invite = create(&mut a, "ops");
    join(&mut b, &old_invite, "ops");
    join(&mut c, &old_invite, "ops");
    wait_members(&mut a, "ops", DELIVERY, |m| m.2.len() == 3);
    a.send(json!({"cmd": "kick", "room": "ops", "peer": pc}));
    saw(&mut b, "epoch 1", |e| {
        matches!(e, Event::Epoch { epoch: 1, .. })
    });

    // Eve got the old invite (from carol, say): she lands in the old epoch, learns of the
    // kick, and reads nothing said after it.
    let mut e = NodeProcess::start("eve", &["--peer", &a.addr(), "--peer", &b.addr()]);
    let pe = e.peer_id.clone();
    join(&mut e, &old_invite, "ops");
    saw(
        &mut e,
        "the kick",
        |ev| matches!(ev, Event::Kicked { peer, .. } if *peer == pc),
    );
    a.send(json!({"cmd": "send", "room": "ops", "text": "after the kick"}));
    expect_text(&mut b, "after the kick");
    assert_eq!(members(&mut e, "ops").3, 0, "eve holds only the old key");
    e.wait_for(QUIET, |_| false);
    assert!(e.messages_with_text("after the kick").is_empty());
    assert!(!members(&mut a, "ops").2.contains(&pe));

    // A new invite carries the new key: with it eve is in, and alice counts her.
    a.send(json!({"cmd": "invite", "room": "ops"}));
    let Event::Invite { invite, .. } =
        a.expect("invite", DELIVERY, |ev| matches!(ev, Event::Invite { .. }))
    else {
        unreachable!()
    };
    assert_ne!(invite, old_invite);
    e.send(json!({"cmd": "leave", "room": "ops"}));
    e.expect("left", DELIVERY, |ev| matches!(ev, Event::Left { .. }));
    join(&mut e, &invite, "ops");
    wait_members(&mut a, "ops", DELIVERY, |m| m.2.contains(&pe));
    a.send(json!({"cmd": "send", "room": "ops", "text": "welcome eve"}));
    expect_text(&mut e, "welcome eve");
    let (owner, _, _, epoch, _) = members(&mut e, "ops");
    assert_eq!((owner, epoch), (pa, 1));
    c.wait_for(QUIET, |_| false);
    assert!(c.messages_with_text("welcome eve").is_empty());
}

/// A member who joined with `--join INVITE` on the command line (a relay, a headless box) is a
/// member like one who sent `join`: it counts, and a kick of someone else carries it into the
/// new epoch.
#[test]
fn a_member_joined_from_the_command_line_is_carried_into_the_new_epoch() {
    let mut a = NodeProcess::start("alice", &[]);
    let mut c = NodeProcess::start("carol", &["--peer", &a.addr()]);
    let invite = create(&mut a, "ops");
    join(&mut c, &invite, "ops");
    let mut b = NodeProcess::start("bob", &["--peer", &a.addr(), "--join", &invite]);
    let (pb, pc) = (b.peer_id.clone(), c.peer_id.clone());
    wait_members(&mut a, "ops", DELIVERY, |m| {
        m.2.contains(&pb) && m.2.len() == 3
    });

    a.send(json!({"cmd": "kick", "room": "ops", "peer": pc}));
    saw(&mut b, "epoch 1", |e| {
        matches!(e, Event::Epoch { epoch: 1, .. })
    });
    a.send(json!({"cmd": "send", "room": "ops", "text": "bob stays"}));
    expect_text(&mut b, "bob stays");
    c.wait_for(QUIET, |_| false);
    assert!(c.messages_with_text("bob stays").is_empty());
}
