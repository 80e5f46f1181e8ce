use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn peer(n: u8) -> Vec<u8> {
    vec![n; 38]
}

/// The DM key of two peers in these tests (any symmetric key both sides share).
fn pair(a: u8, b: u8) -> RoomKey {
    let (lo, hi) = (a.min(b), a.max(b));
    RoomKey::from_bytes([lo.wrapping_mul(31) ^ hi; 32])
}

fn room() -> Membership {
    Membership::new(Charter {
        owner: PeerBytes(peer(1)),
        ..Charter::default()
    })
}

fn entry(id: u8, hlc: u64, author: u8, epoch: EpochId, op: MemberOp) -> Entry {
    Entry {
        id: MessageId([id; 16]),
        hlc: Hlc(hlc),
        author: peer(author),
        epoch,
        op,
    }
}

/// A rekey by `author` in `epoch` removing `removed`, with a fresh key for `to`.
fn rekey(id: u8, hlc: u64, author: u8, epoch: EpochId, removed: &[u8], to: &[u8]) -> Entry {
    let mut rng = StdRng::seed_from_u64(u64::from(id));
    let key = RoomKey::from_bytes([id; 32]);
    let next = EpochId([id; 16]);
    let keys = to
        .iter()
        .map(|&p| SealedKey {
            peer: peer(p),
            sealed: seal_epoch_key(&pair(author, p), next, &peer(p), &key, &mut rng),
        })
        .collect();
    let removed = removed.iter().map(|&p| PeerBytes(peer(p))).collect();
    entry(id, hlc, author, epoch, MemberOp::Rekey { removed, keys })
}

fn set(peers: &[u8]) -> BTreeSet<Vec<u8>> {
    peers.iter().map(|&p| peer(p)).collect()
}

fn joined(m: &mut Membership, who: &[u8]) {
    for &p in who {
        m.insert(entry(
            100 + p,
            10 + u64::from(p),
            p,
            EpochId::GENESIS,
            MemberOp::Join,
        ));
    }
}

#[test]
fn a_kick_moves_the_room_to_a_key_only_the_others_can_open() {
    let mut m = room();
    joined(&mut m, &[2, 3]);
    assert_eq!(m.members(), set(&[1, 2, 3]));
    assert_eq!(m.may_kick(&peer(1), &peer(3)), Ok(()));
    let kick = rekey(7, 50, 1, EpochId::GENESIS, &[3], &[1, 2]);
    m.insert(kick.clone());
    assert_eq!(m.current(), (EpochId([7; 16]), 1));
    assert_eq!(m.members(), set(&[1, 2]));
    assert_eq!(m.removed(), set(&[3]));
    assert!(m.pending().is_empty());
    let MemberOp::Rekey { keys, .. } = &kick.op else {
        unreachable!()
    };
    let for_bob = keys.iter().find(|k| k.peer == peer(2)).unwrap();
    assert_eq!(
        open_epoch_key(&pair(1, 2), EpochId([7; 16]), &peer(2), &for_bob.sealed).unwrap(),
        RoomKey::from_bytes([7; 32])
    );
    // Carol's DM key with alice opens nothing: there is no key for her, and bob's is bob's.
    assert!(open_epoch_key(&pair(1, 3), EpochId([7; 16]), &peer(3), &for_bob.sealed).is_err());
    assert!(open_epoch_key(&pair(1, 2), EpochId([7; 16]), &peer(3), &for_bob.sealed).is_err());
    assert_eq!(m.may_kick(&peer(1), &peer(3)), Err("already kicked"));
}

#[test]
fn concurrent_kicks_by_two_admins_converge_on_one_epoch_without_either() {
    // alice (1) owns, bob (2) is admin; carol (3), dave (4), erin (5) are members.
    let promote = entry(
        9,
        5,
        1,
        EpochId::GENESIS,
        MemberOp::Promote { peer: peer(2) },
    );
    // At the same time alice kicks carol and bob kicks dave, both in the first epoch.
    let by_alice = rekey(20, 100, 1, EpochId::GENESIS, &[3], &[1, 2, 4, 5]);
    let by_bob = rekey(21, 100, 2, EpochId::GENESIS, &[4], &[1, 2, 3, 5]);
    let mut orders = Vec::new();
    for flip in [false, true] {
        let mut m = room();
        joined(&mut m, &[2, 3, 4, 5]);
        m.insert(promote.clone());
        let (first, second) = if flip {
            (&by_bob, &by_alice)
        } else {
            (&by_alice, &by_bob)
        };
        m.insert(first.clone());
        m.insert(second.clone());
        // (hlc, id) picks alice's; dave still holds that key, so his removal is pending.
        assert_eq!(m.current().0, EpochId([20; 16]));
        assert_eq!(m.pending(), set(&[4]));
        // bob (who kicked dave) and the owner rekey again; nobody else does.
        assert_eq!(m.should_rekey(&peer(2)), Some(vec![peer(4)]));
        assert_eq!(m.should_rekey(&peer(1)), Some(vec![peer(4)]));
        assert_eq!(m.should_rekey(&peer(5)), None);
        assert_eq!(m.should_rekey(&peer(3)), None);
        // Both do, concurrently, in the winning epoch: one wins, and it excludes both.
        let epoch = EpochId([20; 16]);
        m.insert(rekey(31, 200, 2, epoch, &[4], &[1, 2, 5]));
        m.insert(rekey(30, 200, 1, epoch, &[4], &[1, 2, 5]));
        assert_eq!(m.current(), (EpochId([30; 16]), 2));
        assert!(m.pending().is_empty());
        assert_eq!(m.members(), set(&[1, 2, 5]));
        assert_eq!(m.should_rekey(&peer(2)), None);
        orders.push(m.current());
    }
    assert_eq!(
        orders[0], orders[1],
        "the order ops arrive in does not matter"
    );
}

#[test]
fn an_old_epoch_message_arriving_late_is_shown_unless_its_author_was_removed_before() {
    let mut m = room();
    joined(&mut m, &[2, 3]);
    m.insert(rekey(7, 1_000, 1, EpochId::GENESIS, &[3], &[1, 2]));
    // bob wrote in the old epoch before he heard of the kick: shown whenever it arrives.
    assert!(m.shows(&peer(2), Hlc(5_000)));
    // carol's words from before her removal are shown; what she wrote after is not.
    assert!(m.shows(&peer(3), Hlc(999)));
    assert!(!m.shows(&peer(3), Hlc(1_001)));
}

#[test]
fn a_kick_by_a_member_who_is_not_an_admin_does_not_count() {
    let mut m = room();
    joined(&mut m, &[2, 3]);
    assert!(m.may_kick(&peer(3), &peer(2)).is_err());
    m.insert(rekey(7, 50, 3, EpochId::GENESIS, &[2], &[1, 3]));
    assert_eq!(m.current(), (EpochId::GENESIS, 0));
    assert!(m.removed().is_empty());
    assert_eq!(m.members(), set(&[1, 2, 3]));
    assert_eq!(m.should_rekey(&peer(3)), None);
}

#[test]
fn forged_and_overreaching_ops_are_refused() {
    let mut m = room();
    joined(&mut m, &[2, 3, 4]);
    // Only the owner promotes: carol naming herself admin changes nothing.
    m.insert(entry(
        8,
        20,
        3,
        EpochId::GENESIS,
        MemberOp::Promote { peer: peer(3) },
    ));
    assert!(!m.is_admin(&peer(3)));
    m.insert(entry(
        9,
        21,
        1,
        EpochId::GENESIS,
        MemberOp::Promote { peer: peer(2) },
    ));
    m.insert(entry(
        10,
        22,
        1,
        EpochId::GENESIS,
        MemberOp::Promote { peer: peer(4) },
    ));
    assert!(m.is_admin(&peer(2)));
    // An admin cannot remove the owner, nor another admin.
    assert_eq!(
        m.may_kick(&peer(2), &peer(1)),
        Err("nobody can kick the room's owner")
    );
    assert_eq!(
        m.may_kick(&peer(2), &peer(4)),
        Err("only the owner can kick an admin")
    );
    m.insert(rekey(11, 30, 2, EpochId::GENESIS, &[1], &[2, 3, 4]));
    m.insert(rekey(12, 31, 2, EpochId::GENESIS, &[4], &[1, 2, 3]));
    assert_eq!(m.current().0, EpochId::GENESIS);
    // The owner can remove an admin, whose later kicks then do not count.
    m.insert(rekey(13, 40, 1, EpochId::GENESIS, &[4], &[1, 2, 3]));
    m.insert(rekey(14, 41, 4, EpochId([13; 16]), &[2], &[1, 3, 4]));
    assert_eq!(m.current().0, EpochId([13; 16]));
    assert!(!m.is_admin(&peer(4)));
    // A tampered key, or one opened for another epoch, does not open.
    let MemberOp::Rekey { keys, .. } = &rekey(15, 50, 1, EpochId::GENESIS, &[], &[2]).op else {
        unreachable!()
    };
    let mut bad = keys[0].sealed.clone();
    bad[30] ^= 1;
    assert!(open_epoch_key(&pair(1, 2), EpochId([15; 16]), &peer(2), &bad).is_err());
    assert!(open_epoch_key(&pair(1, 2), EpochId([16; 16]), &peer(2), &keys[0].sealed).is_err());
    // A rekey that hands its key to a peer it removes is malformed.
    let op = MemberOp::Rekey {
        removed: vec![PeerBytes(peer(2))],
        keys: keys.clone(),
    };
    assert!(op.to_text().is_err());
}

#[test]
fn ops_round_trip_as_record_text() {
    let kick = rekey(7, 50, 1, EpochId::GENESIS, &[3], &[1, 2]);
    for op in [MemberOp::Join, MemberOp::Promote { peer: peer(2) }, kick.op] {
        assert_eq!(MemberOp::from_text(&op.to_text().unwrap()).unwrap(), op);
    }
    assert_eq!(MemberOp::from_text("hello"), Err(MemberError::NotAnOp));
    assert!(MemberOp::from_text("hark-member/1 zz").is_err());
    assert!(MemberOp::from_text("hark-member/1 00ff").is_err());
}

proptest! {
    #[test]
    fn any_text_is_an_error_not_a_panic(text in "hark-member/1 [0-9a-f]{0,300}") {
        let _ = MemberOp::from_text(&text);
    }
}
