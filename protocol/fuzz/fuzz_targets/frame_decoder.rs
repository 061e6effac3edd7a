//! The frame decoder and verifier on arbitrary bytes: they must never
//! panic, and any change to a correctly signed frame must be refused.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use sonde_protocol::envelope::{Envelope, Kind, MessageId, PeerVerifier, VerifyPolicy, decode};
use std::sync::OnceLock;

const NOW: i64 = 1_800_000_000_000;

fn signed() -> &'static (Vec<u8>, SigningKey) {
    static FRAME: OnceLock<(Vec<u8>, SigningKey)> = OnceLock::new();
    FRAME.get_or_init(|| {
        let key = SigningKey::from_bytes(&[3; 32]);
        let env = Envelope {
            id: MessageId::random(),
            kind: Kind::ProbeResponse,
            sender: "agent-fuzz".into(),
            seq: 1,
            timestamp_ms: NOW,
            payload: serde_json::json!({"request_id": "r-1", "data": {"text": "hello"}}),
        };
        (env.sign(&key).expect("sign"), key)
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. Arbitrary bytes: decode and verify return errors, never panic.
    let _ = decode(data, 1 << 20);
    let (frame, key) = signed();
    let mut verifier =
        PeerVerifier::new("agent-fuzz", key.verifying_key(), VerifyPolicy::default());
    let _ = verifier.verify(data, NOW);

    // 2. The signed frame with the fuzzer's bytes XORed in: accepted only
    //    when nothing changed.
    let mut mutated = frame.clone();
    for (i, b) in data.iter().enumerate() {
        if let Some(x) = mutated.get_mut(i) {
            *x ^= b;
        }
    }
    let mut verifier =
        PeerVerifier::new("agent-fuzz", key.verifying_key(), VerifyPolicy::default());
    let accepted = verifier.verify(&mutated, NOW).is_ok();
    assert_eq!(accepted, mutated == *frame, "a changed frame was accepted");
});
