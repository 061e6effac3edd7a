//! The signed envelope that carries every hub↔agent message, its frame
//! encoding and its verification.
//!
//! # Frame layout (version 1)
//!
//! A frame is one WebSocket binary message. All integers are big-endian.
//!
//! | bytes        | field                                                  |
//! |--------------|--------------------------------------------------------|
//! | 4            | magic `SND1`                                           |
//! | 16           | message id (random)                                    |
//! | 8            | sequence number (per connection, per direction, u64)   |
//! | 8            | timestamp, Unix milliseconds (i64)                     |
//! | 1 + n        | kind length, kind (ASCII, e.g. `probe.request`)        |
//! | 1 + n        | sender length, sender id (1..=128 bytes `[A-Za-z0-9._:-]`) |
//! | 4 + n        | payload length, payload (canonical JSON object)        |
//! | 64           | Ed25519 signature                                      |
//!
//! The signature covers `b"sonde/envelope/v1\0"` followed by every frame byte
//! before the signature — or, once a connection is bound to its session
//! ([`SessionBinding`]), `b"sonde/envelope/v1/session\0"`, the 32-byte
//! session binding, then the frame bytes. The binding is never sent: both
//! ends derive it from the hub's challenge and the agent's nonce, so a frame
//! signed for one connection does not verify on any other, before or after a
//! restart of either side. Because the payload must be in canonical JSON form
//! (see [`crate::canonical`]) and every other field has exactly one encoding,
//! a logical message has exactly one frame and one signed byte string: field
//! order or whitespace cannot change them, and a decoder rejects any frame that
//! is not in that form. Changing any bit of a frame therefore either breaks its
//! structure (malformed) or changes the signed bytes (bad signature).

use std::collections::{HashMap, VecDeque};
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::canonical;

/// The 4 bytes every version-1 frame starts with.
pub const MAGIC: [u8; 4] = *b"SND1";
const SIGNING_CONTEXT: &[u8] = b"sonde/envelope/v1\0";
const SESSION_CONTEXT: &[u8] = b"sonde/envelope/v1/session\0";
const SIGNATURE_LEN: usize = 64;
const HEADER_LEN: usize = 4 + 16 + 8 + 8;
/// Longest sender id.
pub const MAX_SENDER_LEN: usize = 128;
/// Default maximum frame size: 4 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Default allowed clock skew between sender and receiver: ±60 s.
pub const DEFAULT_MAX_SKEW_MS: i64 = 60_000;

/// A 128-bit random message id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh random id. Panics only if the OS random source is broken,
    /// which leaves nothing safe to do.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        crate::keys::random_bytes(&mut bytes).expect("the OS random source failed");
        MessageId(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

macro_rules! kinds {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// What an envelope carries. Unknown kinds are malformed frames.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $(#[doc = $doc] $variant,)*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The wire name, e.g. `probe.request`.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }

            /// Parses a wire name.
            pub fn parse(name: &str) -> Option<Kind> {
                match name { $($name => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    HubChallenge => "hub.challenge", "Hub → agent, first message of a connection (the only unbound one): a fresh nonce the hello must answer.";
    AgentHello => "agent.hello", "Agent → hub, answers the challenge: identity and attestation (bound to the session from here on).";
    HubAck => "hub.ack", "Hub → agent: the hello was accepted (with grants, quarantine state).";
    HubReject => "hub.reject", "Hub → agent: the connection is refused, with the reason; the hub closes it.";
    Heartbeat => "heartbeat", "Either way: liveness, and the agent's audit head.";
    ProbeRequest => "probe.request", "Hub → agent: run one probe descriptor.";
    ProbeResponse => "probe.response", "Agent → hub: the scrubbed result of a probe.";
    ProbeError => "probe.error", "Agent → hub: a probe was refused or failed.";
    ProbeCancel => "probe.cancel", "Hub → agent: the caller gave up on a probe request; stop it (its process group is killed).";
    GrantsUpdate => "grants.update", "Hub → agent: the signed pack approvals/revocations for this agent.";
    AgentStatus => "agent.status", "Agent → hub: pack states changed (e.g. after a grant).";
    EnvelopeRejected => "envelope.rejected", "Either way: a received frame failed verification (reported, then dropped).";
    HubClosing => "hub.closing", "Hub → agent: the hub is shutting down; reconnect later.";
    CertRenew => "cert.renew", "Agent → hub: a signing request for a fresh client certificate.";
    CertIssued => "cert.issued", "Hub → agent: the renewed client certificate.";
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One logical message. Signing turns it into a frame ([`Envelope::sign`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: MessageId,
    pub kind: Kind,
    pub sender: String,
    pub seq: u64,
    pub timestamp_ms: i64,
    /// Always a JSON object (see [`crate::messages`] for the typed forms).
    pub payload: Value,
}

impl Envelope {
    /// A new envelope with a random id, stamped now.
    pub fn new<P: Serialize>(
        kind: Kind,
        sender: &str,
        seq: u64,
        payload: &P,
    ) -> Result<Self, EncodeError> {
        let payload =
            serde_json::to_value(payload).map_err(|e| EncodeError::Payload(e.to_string()))?;
        Ok(Envelope {
            id: MessageId::random(),
            kind,
            sender: sender.to_owned(),
            seq,
            timestamp_ms: crate::time::now_ms(),
            payload,
        })
    }

    /// Encodes and signs: the result is the frame to send.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, EncodeError> {
        self.sign_in(key, None)
    }

    /// Encodes and signs for one session (or unbound, with `None`).
    pub fn sign_in(
        &self,
        key: &SigningKey,
        session: Option<&SessionBinding>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut frame = self.unsigned_bytes()?;
        let signature = key.sign(&signing_input(&frame, session));
        frame.extend_from_slice(&signature.to_bytes());
        Ok(frame)
    }

    /// The typed payload.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, VerifyError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            VerifyError::Malformed(format!(
                "{} payload does not match its schema: {e}",
                self.kind
            ))
        })
    }

    fn unsigned_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        validate_sender(&self.sender).map_err(EncodeError::Sender)?;
        if !self.payload.is_object() {
            return Err(EncodeError::Payload("payload must be a JSON object".into()));
        }
        let payload = canonical::to_vec(&self.payload);
        let payload_len = u32::try_from(payload.len())
            .map_err(|_| EncodeError::Payload("payload over 4 GiB".into()))?;
        let kind = self.kind.as_str().as_bytes();
        let mut out = Vec::with_capacity(
            HEADER_LEN + 2 + kind.len() + self.sender.len() + 4 + payload.len() + SIGNATURE_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.push(kind.len() as u8);
        out.extend_from_slice(kind);
        out.push(self.sender.len() as u8);
        out.extend_from_slice(self.sender.as_bytes());
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }
}

fn signing_input(unsigned: &[u8], session: Option<&SessionBinding>) -> Vec<u8> {
    let mut input = Vec::with_capacity(SESSION_CONTEXT.len() + 32 + unsigned.len());
    match session {
        None => input.extend_from_slice(SIGNING_CONTEXT),
        Some(b) => {
            input.extend_from_slice(SESSION_CONTEXT);
            input.extend_from_slice(&b.0);
        }
    }
    input.extend_from_slice(unsigned);
    input
}

/// What binds every frame of one connection to it: SHA-256 over
/// `"sonde/session/v1\0"`, the hub's challenge nonce and the agent's
/// nonce. Both are fresh random 32 bytes per connection, so no frame from
/// any other connection — an earlier one, or one before a restart — ever
/// verifies on this one, in either direction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionBinding(pub [u8; 32]);

impl SessionBinding {
    pub fn new(hub_nonce: &Nonce, agent_nonce: &Nonce) -> Self {
        let mut input = b"sonde/session/v1\0".to_vec();
        input.extend_from_slice(&hub_nonce.0);
        input.extend_from_slice(&agent_nonce.0);
        SessionBinding(crate::Digest::of(&input).0)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionBinding({})", &self.to_hex()[..16])
    }
}

/// 32 fresh random bytes, sent as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; 32]);

impl Nonce {
    /// A fresh nonce. Panics only if the OS random source is broken, which
    /// leaves nothing safe to do.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        crate::keys::random_bytes(&mut bytes).expect("the OS random source failed");
        Nonce(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Some(Nonce(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_hex())
    }
}

/// Checks a sender id: 1..=128 bytes of `[A-Za-z0-9._:-]`.
pub fn validate_sender(sender: &str) -> Result<(), String> {
    if sender.is_empty() || sender.len() > MAX_SENDER_LEN {
        return Err(format!(
            "sender id must be 1..={MAX_SENDER_LEN} bytes, got {}",
            sender.len()
        ));
    }
    if let Some(c) = sender
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "sender id may only hold [A-Za-z0-9._:-], found {c:?}"
        ));
    }
    Ok(())
}

/// Why an envelope could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid sender: {0}")]
    Sender(String),
    #[error("invalid payload: {0}")]
    Payload(String),
}

/// A frame whose structure is valid but whose signature has not been checked.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    pub envelope: Envelope,
    signature: Signature,
    signed_len: usize,
}

impl DecodedFrame {
    /// Checks the signature against `key`, using the original frame bytes.
    pub fn verify_signature(&self, frame: &[u8], key: &VerifyingKey) -> Result<(), VerifyError> {
        self.verify_signature_in(frame, key, None)
    }

    /// Checks the signature as made for `session` (or unbound).
    pub fn verify_signature_in(
        &self,
        frame: &[u8],
        key: &VerifyingKey,
        session: Option<&SessionBinding>,
    ) -> Result<(), VerifyError> {
        let unsigned = frame.get(..self.signed_len).ok_or_else(|| {
            VerifyError::Malformed("frame shorter than when it was decoded".into())
        })?;
        key.verify(&signing_input(unsigned, session), &self.signature)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Parses a frame's structure. Never panics, whatever the bytes.
pub fn decode(frame: &[u8], max_frame_bytes: usize) -> Result<DecodedFrame, VerifyError> {
    if frame.len() > max_frame_bytes {
        return Err(VerifyError::Oversize {
            size: frame.len(),
            limit: max_frame_bytes,
        });
    }
    let mut r = Reader {
        bytes: frame,
        pos: 0,
    };
    if r.take(4)? != MAGIC {
        return Err(VerifyError::Malformed(
            "not a Sonde v1 frame (bad magic)".into(),
        ));
    }
    let id = MessageId(r.array()?);
    let seq = u64::from_be_bytes(r.array()?);
    let timestamp_ms = i64::from_be_bytes(r.array()?);
    let kind_len = usize::from(r.array::<1>()?[0]);
    let kind_name = std::str::from_utf8(r.take(kind_len)?)
        .map_err(|_| VerifyError::Malformed("kind is not UTF-8".into()))?;
    let kind = Kind::parse(kind_name)
        .ok_or_else(|| VerifyError::Malformed(format!("unknown message kind {kind_name:?}")))?;
    let sender_len = usize::from(r.array::<1>()?[0]);
    let sender = std::str::from_utf8(r.take(sender_len)?)
        .map_err(|_| VerifyError::Malformed("sender is not UTF-8".into()))?
        .to_owned();
    validate_sender(&sender).map_err(VerifyError::Malformed)?;
    let payload_len = u32::from_be_bytes(r.array()?) as usize;
    let payload_bytes = r.take(payload_len)?;
    let signed_len = r.pos;
    let signature = Signature::from_bytes(&r.array::<SIGNATURE_LEN>()?);
    if r.pos != frame.len() {
        return Err(VerifyError::Malformed(format!(
            "{} trailing bytes after the signature",
            frame.len() - r.pos
        )));
    }
    let payload: Value = serde_json::from_slice(payload_bytes)
        .map_err(|e| VerifyError::Malformed(format!("payload is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(VerifyError::Malformed(
            "payload is not a JSON object".into(),
        ));
    }
    if canonical::to_vec(&payload) != payload_bytes {
        return Err(VerifyError::Malformed(
            "payload is not in canonical JSON form".into(),
        ));
    }
    Ok(DecodedFrame {
        envelope: Envelope {
            id,
            kind,
            sender,
            seq,
            timestamp_ms,
            payload,
        },
        signature,
        signed_len,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VerifyError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                VerifyError::Malformed(format!(
                    "frame truncated: needed {n} bytes at offset {}, {} left",
                    self.pos,
                    self.bytes.len() - self.pos
                ))
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], VerifyError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

/// Why a received frame was refused. Each case has a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    Oversize { size: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("message from unknown sender {sender:?} (expected {expected:?})")]
    UnknownSender { sender: String, expected: String },
    #[error("signature does not verify with the sender's key")]
    BadSignature,
    #[error("timestamp is {skew_ms} ms away from local time (allowed ±{allowed_ms} ms)")]
    StaleTimestamp { skew_ms: i64, allowed_ms: i64 },
    #[error("sequence number {got} is not greater than the previous {last}")]
    SequenceNotIncreasing { got: u64, last: u64 },
    #[error("message id {id} was already received (replay)")]
    Replayed { id: MessageId },
}

impl VerifyError {
    /// Stable short code, for audit entries and `envelope.rejected` reports.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Oversize { .. } => "oversize",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::UnknownSender { .. } => "unknown_sender",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::StaleTimestamp { .. } => "stale_timestamp",
            VerifyError::SequenceNotIncreasing { .. } => "sequence",
            VerifyError::Replayed { .. } => "replay",
        }
    }
}

/// Verification settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyPolicy {
    pub max_frame_bytes: usize,
    pub max_skew_ms: i64,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
        }
    }
}

/// Verifies every frame from one peer: size, structure, sender, signature,
/// timestamp window, strictly increasing sequence and replayed ids.
///
/// One `PeerVerifier` lives as long as the peer is known (across its
/// connections): the replay cache must outlive a reconnect, or a message
/// captured on one connection could be replayed on the next. Call
/// [`new_connection`](Self::new_connection) when the peer reconnects, which
/// restarts the sequence but keeps the cache.
#[derive(Debug, Clone)]
pub struct PeerVerifier {
    sender: String,
    key: VerifyingKey,
    policy: VerifyPolicy,
    last_seq: Option<u64>,
    seen: HashMap<MessageId, i64>,
    seen_order: VecDeque<(MessageId, i64)>,
}

/// Most ids remembered; past it the oldest are forgotten first (the timestamp
/// window still refuses anything older than the skew).
const MAX_REMEMBERED_IDS: usize = 1 << 17;

impl PeerVerifier {
    pub fn new(sender: &str, key: VerifyingKey, policy: VerifyPolicy) -> Self {
        PeerVerifier {
            sender: sender.to_owned(),
            key,
            policy,
            last_seq: None,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// The peer reconnected: its sequence numbers start again.
    pub fn new_connection(&mut self) {
        self.last_seq = None;
    }

    /// The expected sender id.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Verifies one unbound frame received at `now_ms`. State (sequence,
    /// replay cache) changes only when the frame is accepted.
    pub fn verify(&mut self, frame: &[u8], now_ms: i64) -> Result<Envelope, VerifyError> {
        self.verify_in(frame, now_ms, None)
    }

    /// Verifies one frame of `session` (a frame signed for any other
    /// session, or unbound, is a bad signature).
    pub fn verify_in(
        &mut self,
        frame: &[u8],
        now_ms: i64,
        session: Option<&SessionBinding>,
    ) -> Result<Envelope, VerifyError> {
        let decoded = decode(frame, self.policy.max_frame_bytes)?;
        let env = &decoded.envelope;
        if env.sender != self.sender {
            return Err(VerifyError::UnknownSender {
                sender: env.sender.clone(),
                expected: self.sender.clone(),
            });
        }
        decoded.verify_signature_in(frame, &self.key, session)?;
        let skew_ms = env.timestamp_ms.saturating_sub(now_ms);
        if skew_ms.saturating_abs() > self.policy.max_skew_ms {
            return Err(VerifyError::StaleTimestamp {
                skew_ms,
                allowed_ms: self.policy.max_skew_ms,
            });
        }
        self.forget_before(now_ms.saturating_sub(self.policy.max_skew_ms.saturating_mul(2)));
        if self.seen.contains_key(&env.id) {
            return Err(VerifyError::Replayed { id: env.id });
        }
        if let Some(last) = self.last_seq
            && env.seq <= last
        {
            return Err(VerifyError::SequenceNotIncreasing { got: env.seq, last });
        }
        self.last_seq = Some(env.seq);
        self.remember(env.id, env.timestamp_ms);
        Ok(decoded.envelope)
    }

    fn remember(&mut self, id: MessageId, ts: i64) {
        if self.seen_order.len() >= MAX_REMEMBERED_IDS
            && let Some((old, _)) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id, ts);
        self.seen_order.push_back((id, ts));
    }

    fn forget_before(&mut self, cutoff_ms: i64) {
        while let Some((id, ts)) = self.seen_order.front().copied() {
            if ts >= cutoff_ms {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
    }
}

/// Numbers outgoing envelopes for one connection and signs them.
#[derive(Debug)]
pub struct EnvelopeSigner {
    sender: String,
    key: SigningKey,
    next_seq: u64,
    session: Option<SessionBinding>,
}

impl EnvelopeSigner {
    pub fn new(sender: &str, key: SigningKey) -> Result<Self, EncodeError> {
        validate_sender(sender).map_err(EncodeError::Sender)?;
        Ok(EnvelopeSigner {
            sender: sender.to_owned(),
            key,
            next_seq: 1,
            session: None,
        })
    }

    /// From now on, every frame is signed for `session`.
    pub fn bind(&mut self, session: SessionBinding) {
        self.session = Some(session);
    }

    /// Builds, numbers and signs one message; returns its id and frame.
    pub fn seal<P: Serialize>(
        &mut self,
        kind: Kind,
        payload: &P,
    ) -> Result<(MessageId, Vec<u8>), EncodeError> {
        let env = Envelope::new(kind, &self.sender, self.next_seq, payload)?;
        let frame = env.sign_in(&self.key, self.session.as_ref())?;
        self.next_seq += 1;
        Ok((env.id, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_signing_key;
    use proptest::prelude::*;
    use serde_json::json;

    fn env(seq: u64, payload: Value) -> Envelope {
        Envelope {
            id: MessageId([7; 16]),
            kind: Kind::ProbeRequest,
            sender: "hub".into(),
            seq,
            timestamp_ms: 1_700_000_000_000,
            payload,
        }
    }

    fn verifier(key: &SigningKey) -> PeerVerifier {
        PeerVerifier::new("hub", key.verifying_key(), VerifyPolicy::default())
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = generate_signing_key().unwrap();
        let e = env(1, json!({"probe": "system.uptime", "params": {}}));
        let frame = e.sign(&key).unwrap();
        let got = verifier(&key).verify(&frame, e.timestamp_ms).unwrap();
        assert_eq!(got, e);
    }

    #[test]
    fn field_order_and_whitespace_do_not_change_signed_bytes() {
        let key = generate_signing_key().unwrap();
        let a: Value = serde_json::from_str(r#"{"b": [1, 2], "a": {"y": 1, "x": "z"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"z","y":1},"b":[1,2]}"#).unwrap();
        assert_eq!(env(1, a).sign(&key).unwrap(), env(1, b).sign(&key).unwrap());
    }

    #[test]
    fn a_frame_verifies_only_in_its_own_session() {
        let key = generate_signing_key().unwrap();
        let (h1, a1, a2) = (Nonce::random(), Nonce::random(), Nonce::random());
        let s1 = SessionBinding::new(&h1, &a1);
        let s2 = SessionBinding::new(&h1, &a2);
        assert_ne!(s1, s2);
        let e = env(1, json!({}));
        let bound = e.sign_in(&key, Some(&s1)).unwrap();
        let unbound = e.sign(&key).unwrap();
        let now = e.timestamp_ms;
        assert_eq!(
            verifier(&key).verify_in(&bound, now, Some(&s1)),
            Ok(e.clone())
        );
        for (frame, session) in [(&bound, Some(&s2)), (&bound, None), (&unbound, Some(&s1))] {
            assert_eq!(
                verifier(&key).verify_in(frame, now, session),
                Err(VerifyError::BadSignature),
                "{session:?}"
            );
        }
        assert_eq!(Nonce::from_hex(&h1.to_hex()), Some(h1));
        assert_eq!(Nonce::from_hex("abcd"), None);
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let key = generate_signing_key().unwrap();
        let other = generate_signing_key().unwrap();
        let frame = env(1, json!({})).sign(&other).unwrap();
        assert_eq!(
            verifier(&key).verify(&frame, 1_700_000_000_000),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn unknown_sender_is_refused_before_signature() {
        let key = generate_signing_key().unwrap();
        let mut e = env(1, json!({}));
        e.sender = "agent-x".into();
        let frame = e.sign(&key).unwrap();
        assert!(matches!(
            verifier(&key).verify(&frame, e.timestamp_ms),
            Err(VerifyError::UnknownSender { .. })
        ));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let key = generate_signing_key().unwrap();
        let e = env(1, json!({}));
        let frame = e.sign(&key).unwrap();
        let mut v = verifier(&key);
        assert!(matches!(
            v.verify(&frame, e.timestamp_ms + 60_001),
            Err(VerifyError::StaleTimestamp {
                skew_ms: -60_001,
                ..
            })
        ));
        assert!(matches!(
            v.verify(&frame, e.timestamp_ms - 60_001),
            Err(VerifyError::StaleTimestamp {
                skew_ms: 60_001,
                ..
            })
        ));
        // The window is configurable.
        let mut tight = PeerVerifier::new(
            "hub",
            key.verifying_key(),
            VerifyPolicy {
                max_skew_ms: 10,
                ..VerifyPolicy::default()
            },
        );
        assert!(tight.verify(&frame, e.timestamp_ms + 11).is_err());
        assert!(tight.verify(&frame, e.timestamp_ms + 10).is_ok());
    }

    #[test]
    fn replay_and_sequence_are_refused() {
        let key = generate_signing_key().unwrap();
        let now = 1_700_000_000_000;
        let mut v = verifier(&key);
        let first = env(5, json!({})).sign(&key).unwrap();
        v.verify(&first, now).unwrap();
        // Same frame again: same id.
        assert!(matches!(
            v.verify(&first, now),
            Err(VerifyError::Replayed { .. })
        ));
        // New id but old sequence number.
        let mut older = env(5, json!({}));
        older.id = MessageId([8; 16]);
        assert_eq!(
            v.verify(&older.sign(&key).unwrap(), now),
            Err(VerifyError::SequenceNotIncreasing { got: 5, last: 5 })
        );
        // After a reconnect the sequence restarts, but the id is still remembered.
        v.new_connection();
        assert!(matches!(
            v.verify(&first, now),
            Err(VerifyError::Replayed { .. })
        ));
        older.seq = 1;
        assert!(v.verify(&older.sign(&key).unwrap(), now).is_ok());
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let key = generate_signing_key().unwrap();
        let frame = env(1, json!({"blob": "x".repeat(2000)}))
            .sign(&key)
            .unwrap();
        let mut v = PeerVerifier::new(
            "hub",
            key.verifying_key(),
            VerifyPolicy {
                max_frame_bytes: 1024,
                ..VerifyPolicy::default()
            },
        );
        assert_eq!(
            v.verify(&frame, 1_700_000_000_000),
            Err(VerifyError::Oversize {
                size: frame.len(),
                limit: 1024
            })
        );
    }

    #[test]
    fn non_canonical_payload_is_malformed() {
        let key = generate_signing_key().unwrap();
        let e = env(1, json!({"a": 1, "b": 2}));
        let frame = e.sign(&key).unwrap();
        // Re-encode the payload with a space, fix the length, re-sign.
        let canonical_payload = br#"{"a":1,"b":2}"#;
        let spaced = br#"{"a":1, "b":2}"#;
        let start = frame
            .windows(canonical_payload.len())
            .position(|w| w == canonical_payload)
            .unwrap();
        let mut unsigned = frame[..start - 4].to_vec();
        unsigned.extend_from_slice(&(spaced.len() as u32).to_be_bytes());
        unsigned.extend_from_slice(spaced);
        let sig = key.sign(&signing_input(&unsigned, None));
        unsigned.extend_from_slice(&sig.to_bytes());
        assert!(matches!(
            verifier(&key).verify(&unsigned, e.timestamp_ms),
            Err(VerifyError::Malformed(m)) if m.contains("canonical")
        ));
    }

    #[test]
    fn trailing_bytes_and_unknown_kind_are_malformed() {
        let key = generate_signing_key().unwrap();
        let e = env(1, json!({}));
        let mut frame = e.sign(&key).unwrap();
        frame.push(0);
        assert!(matches!(
            decode(&frame, usize::MAX),
            Err(VerifyError::Malformed(_))
        ));
        let good = e.sign(&key).unwrap();
        let mut bad_kind = good.clone();
        bad_kind[HEADER_LEN + 1] = b'X';
        assert!(
            matches!(decode(&bad_kind, usize::MAX), Err(VerifyError::Malformed(m)) if m.contains("kind"))
        );
    }

    #[test]
    fn signer_numbers_messages_from_one() {
        let key = generate_signing_key().unwrap();
        let mut signer = EnvelopeSigner::new("hub", key.clone()).unwrap();
        let mut v = verifier(&key);
        for expected in 1..=3 {
            let (_, frame) = signer.seal(Kind::Heartbeat, &json!({})).unwrap();
            let env = v.verify(&frame, crate::time::now_ms()).unwrap();
            assert_eq!(env.seq, expected);
        }
    }

    #[test]
    fn every_kind_round_trips_its_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(Kind::parse("probe.REQUEST"), None);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        (
            any::<[u8; 16]>(),
            prop::sample::select(Kind::ALL.to_vec()),
            "[A-Za-z0-9._:-]{1,40}",
            any::<u64>(),
            any::<i64>(),
            prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..5),
        )
            .prop_map(|(id, kind, sender, seq, ts, payload)| Envelope {
                id: MessageId(id),
                kind,
                sender,
                seq,
                timestamp_ms: ts,
                payload: Value::Object(payload.into_iter().collect()),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_sign_verify_round_trip(e in arb_envelope()) {
            let key = SigningKey::from_bytes(&[42; 32]);
            let frame = e.sign(&key).unwrap();
            let mut v = PeerVerifier::new(&e.sender, key.verifying_key(), VerifyPolicy {
                max_frame_bytes: usize::MAX, max_skew_ms: 0,
            });
            prop_assert_eq!(v.verify(&frame, e.timestamp_ms).unwrap(), e);
        }

        #[test]
        fn prop_any_single_bit_flip_is_refused(e in arb_envelope(), bit in any::<prop::sample::Index>()) {
            let key = SigningKey::from_bytes(&[42; 32]);
            let mut frame = e.sign(&key).unwrap();
            let i = bit.index(frame.len() * 8);
            frame[i / 8] ^= 1 << (i % 8);
            let mut v = PeerVerifier::new(&e.sender, key.verifying_key(), VerifyPolicy {
                max_frame_bytes: usize::MAX, max_skew_ms: i64::MAX,
            });
            prop_assert!(v.verify(&frame, e.timestamp_ms).is_err());
        }

        #[test]
        fn prop_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, DEFAULT_MAX_FRAME_BYTES);
        }

        #[test]
        fn prop_decoder_never_panics_on_mutated_frames(
            e in arb_envelope(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let key = SigningKey::from_bytes(&[1; 32]);
            let mut frame = e.sign(&key).unwrap();
            for (at, byte) in edits {
                let i = at.index(frame.len());
                frame[i] = byte;
            }
            frame.truncate(cut.index(frame.len() + 1));
            let _ = decode(&frame, DEFAULT_MAX_FRAME_BYTES);
        }
    }
}
