#![no_main]
//! What a node does with every gossip payload: open it under the lobby key, then decode.
//! Random bytes must never open (that would be a forgery) and nothing may panic.

use hark_proto::{seal, Envelope, RoomKey, RoomName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = RoomName::parse("lobby").expect("valid name");
    let key = RoomKey::public(&name);
    if let Ok(plain) = seal::open(&key, &key.chat_topic(), data) {
        let _ = Envelope::decode(&plain);
    }
});
