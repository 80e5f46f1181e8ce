#![no_main]
//! Any bytes that opened under a room key: decoding never panics, and whatever decodes
//! re-encodes to the same bytes (the codec has one encoding per envelope).

use hark_proto::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let again = envelope.encode().expect("a decoded envelope is within limits");
        assert_eq!(Envelope::decode(&again).expect("re-encoded envelope decodes"), envelope);
    }
});
