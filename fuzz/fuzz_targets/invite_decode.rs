#![no_main]
//! Invite strings come from users and chat: any text is an error or a valid invite that
//! round-trips, never a panic.

use hark_proto::Invite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(invite) = Invite::decode(text) {
            assert_eq!(Invite::decode(&invite.encode()).expect("round trip"), invite);
        }
    }
});
