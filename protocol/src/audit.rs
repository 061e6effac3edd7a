//! The tamper-evident audit chain kept by the hub and by every agent.
//!
//! Each [`AuditEntry`] records one event and the hash of the entry before it.
//! `hash = SHA-256("sonde/audit/v1\0" ‖ canonical JSON of every field but
//! `hash`)`. The first entry has `seq = 1` and links to [`genesis_hash`],
//! SHA-256 of `"sonde/audit/genesis/v1"`.
//!
//! A bare hash chain shows edits, deletions, reordering and insertions in
//! the middle, but not a cut-off tail: the shorter chain is still a valid
//! chain. So the writer also signs [`Checkpoint`]s (seq, head hash, time) with
//! its Ed25519 key. A checkpoint that names a seq past the end of the chain,
//! or a different hash at that seq, proves the chain was cut or rewritten.
//!
//! [`verify_chain`] walks the entries in stored order and reports the first
//! break: its seq and what kind of break it is.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

use crate::Digest;
pub use crate::audit_action::AuditAction;
use crate::canonical;

const ENTRY_CONTEXT: &[u8] = b"sonde/audit/v1\0";
const CHECKPOINT_CONTEXT: &[u8] = b"sonde/audit/checkpoint/v1\0";

/// The hash the first entry links to.
pub fn genesis_hash() -> Digest {
    Digest::of(b"sonde/audit/genesis/v1")
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    pub timestamp_ms: i64,
    /// Who caused it: `api-key:<prefix>`, `operator:<name>`, `agent:<id>`,
    /// `hub`, `local:<user>`, `token:<id>`, …
    pub actor: String,
    /// The agent concerned, if any.
    pub agent: Option<String>,
    /// What happened: `probe`, `enrollment.approved`, `connection.refused`, …
    pub action: String,
    pub probe: Option<String>,
    pub params_digest: Option<Digest>,
    /// `ok`, `denied`, `refused`, `error`, …
    pub outcome: String,
    pub result_digest: Option<Digest>,
    /// Free-form details (a JSON object): reasons, counts, cross-checked heads.
    pub detail: Map<String, Value>,
    pub prev_hash: Digest,
    pub hash: Digest,
}

/// The fields of an entry chosen by the writer; the chain adds the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub actor: String,
    pub agent: Option<String>,
    /// Typed: no entry is written under a name that is not in the list.
    pub action: AuditAction,
    pub probe: Option<String>,
    pub params_digest: Option<Digest>,
    pub outcome: String,
    pub result_digest: Option<Digest>,
    pub detail: Map<String, Value>,
}

impl NewEntry {
    pub fn new(actor: impl Into<String>, action: AuditAction, outcome: impl Into<String>) -> Self {
        NewEntry {
            actor: actor.into(),
            agent: None,
            action,
            probe: None,
            params_digest: None,
            outcome: outcome.into(),
            result_digest: None,
            detail: Map::new(),
        }
    }

    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    pub fn probe(mut self, probe: impl Into<String>) -> Self {
        self.probe = Some(probe.into());
        self
    }

    pub fn params_digest(mut self, d: Digest) -> Self {
        self.params_digest = Some(d);
        self
    }

    pub fn result_digest(mut self, d: Digest) -> Self {
        self.result_digest = Some(d);
        self
    }

    /// Adds one detail field.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

impl AuditEntry {
    /// The hash this entry should have, from its content.
    pub fn compute_hash(&self) -> Digest {
        let mut body = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("an AuditEntry always serializes to an object"),
        };
        body.remove("hash");
        let mut input = ENTRY_CONTEXT.to_vec();
        canonical::write(&Value::Object(body), &mut input);
        Digest::of(&input)
    }

    /// True if the stored hash matches the content.
    pub fn hash_is_valid(&self) -> bool {
        self.compute_hash() == self.hash
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// The last entry of a chain: its seq and hash (seq 0 and the genesis hash
/// for an empty chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Digest,
}

impl ChainHead {
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: genesis_hash(),
        }
    }

    /// Builds the next entry after this head and advances the head.
    pub fn append(&mut self, entry: NewEntry, timestamp_ms: i64) -> AuditEntry {
        let mut e = AuditEntry {
            seq: self.seq + 1,
            timestamp_ms,
            actor: entry.actor,
            agent: entry.agent,
            action: entry.action.as_str().to_owned(),
            probe: entry.probe,
            params_digest: entry.params_digest,
            outcome: entry.outcome,
            result_digest: entry.result_digest,
            detail: entry.detail,
            prev_hash: self.hash,
            hash: Digest([0; 32]),
        };
        e.hash = e.compute_hash();
        *self = e.head();
        e
    }
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.seq, self.hash.short())
    }
}

/// A signed statement by the chain's writer: "at `timestamp_ms` my chain had
/// entry `seq` with hash `hash`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: Digest,
    pub timestamp_ms: i64,
    /// Ed25519 signature, hex.
    pub signature: String,
}

impl Checkpoint {
    fn signed_bytes(seq: u64, hash: &Digest, timestamp_ms: i64) -> Vec<u8> {
        let mut b = CHECKPOINT_CONTEXT.to_vec();
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&hash.0);
        b.extend_from_slice(&timestamp_ms.to_be_bytes());
        b
    }

    pub fn sign(head: ChainHead, timestamp_ms: i64, key: &SigningKey) -> Self {
        let sig = key.sign(&Self::signed_bytes(head.seq, &head.hash, timestamp_ms));
        Checkpoint {
            seq: head.seq,
            hash: head.hash,
            timestamp_ms,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(array) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        key.verify(
            &Self::signed_bytes(self.seq, &self.hash, self.timestamp_ms),
            &Signature::from_bytes(&array),
        )
        .is_ok()
    }
}

/// The first place a chain is broken, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq} was modified: its content no longer matches its hash")]
    Modified { seq: u64 },
    #[error("entry {seq} is missing (the next entry present is {next_found})")]
    Missing { seq: u64, next_found: u64 },
    #[error("entries are out of order: entry {found} appears where entry {seq} belongs")]
    Reordered { seq: u64, found: u64 },
    #[error("entry {seq} appears more than once: an entry was inserted")]
    Inserted { seq: u64 },
    #[error(
        "entry {seq} does not link to entry {prev}: entry {prev} was rewritten (with a recomputed hash) or entry {seq} was inserted",
        prev = seq.saturating_sub(1)
    )]
    BrokenLink { seq: u64 },
    #[error(
        "entry {seq} differs from the signed checkpoint for it: the chain was rewritten up to there"
    )]
    CheckpointMismatch { seq: u64 },
    #[error(
        "the chain ends at entry {last_seq} but a signed checkpoint vouches for entry {checkpoint_seq}: the tail was cut off"
    )]
    Truncated { last_seq: u64, checkpoint_seq: u64 },
    #[error("the checkpoint for entry {seq} has an invalid signature")]
    BadCheckpointSignature { seq: u64 },
}

impl ChainBreak {
    /// The seq where the chain first breaks.
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::Modified { seq }
            | ChainBreak::Missing { seq, .. }
            | ChainBreak::Reordered { seq, .. }
            | ChainBreak::Inserted { seq }
            | ChainBreak::BrokenLink { seq }
            | ChainBreak::CheckpointMismatch { seq }
            | ChainBreak::BadCheckpointSignature { seq } => *seq,
            ChainBreak::Truncated { last_seq, .. } => last_seq + 1,
        }
    }

    /// Stable short name of the kind of break.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainBreak::Modified { .. } => "modified",
            ChainBreak::Missing { .. } => "missing",
            ChainBreak::Reordered { .. } => "reordered",
            ChainBreak::Inserted { .. } => "inserted",
            ChainBreak::BrokenLink { .. } => "broken_link",
            ChainBreak::CheckpointMismatch { .. } => "checkpoint_mismatch",
            ChainBreak::Truncated { .. } => "truncated",
            ChainBreak::BadCheckpointSignature { .. } => "bad_checkpoint_signature",
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    pub entries: u64,
    pub head: ChainHead,
    pub checkpoints_verified: usize,
    pub last_checkpoint: Option<Checkpoint>,
}

/// Walks `entries` in stored order and checks every link, every hash and
/// every checkpoint. Reports the first break.
///
/// Classification: an entry whose content does not match its own hash is
/// *modified*; a jump forward in seq is a *missing* entry, unless the skipped
/// seq shows up right after (then entries are *reordered*); a seq seen twice
/// is an *inserted* entry; an entry that hashes fine but does not link to its
/// predecessor is a *broken link* (the predecessor was rewritten with a
/// recomputed hash, or this entry was inserted). Checkpoints catch rewrites
/// with recomputed hashes and cut-off tails.
pub fn verify_chain<I>(
    entries: I,
    checkpoints: &[Checkpoint],
    writer: &VerifyingKey,
) -> Result<ChainReport, ChainBreak>
where
    I: IntoIterator<Item = AuditEntry>,
{
    let mut pending: BTreeMap<u64, &Checkpoint> = BTreeMap::new();
    for cp in checkpoints {
        if !cp.verify(writer) {
            return Err(ChainBreak::BadCheckpointSignature { seq: cp.seq });
        }
        pending.insert(cp.seq, cp);
    }
    let mut last_checkpoint = None;
    let mut verified = 0;
    let mut head = ChainHead::genesis();
    let mut iter = entries.into_iter().peekable();
    while let Some(entry) = iter.next() {
        let expected = head.seq + 1;
        if entry.seq > expected {
            let reordered = iter.peek().is_some_and(|next| next.seq < entry.seq);
            return Err(if reordered {
                ChainBreak::Reordered {
                    seq: expected,
                    found: entry.seq,
                }
            } else {
                ChainBreak::Missing {
                    seq: expected,
                    next_found: entry.seq,
                }
            });
        }
        if entry.seq < expected {
            return Err(if entry.seq == head.seq {
                ChainBreak::Inserted { seq: entry.seq }
            } else {
                ChainBreak::Reordered {
                    seq: expected,
                    found: entry.seq,
                }
            });
        }
        if !entry.hash_is_valid() {
            return Err(ChainBreak::Modified { seq: entry.seq });
        }
        if entry.prev_hash != head.hash {
            return Err(ChainBreak::BrokenLink { seq: entry.seq });
        }
        head = entry.head();
        if let Some(cp) = pending.remove(&head.seq) {
            if cp.hash != head.hash {
                return Err(ChainBreak::CheckpointMismatch { seq: head.seq });
            }
            verified += 1;
            last_checkpoint = Some(cp.clone());
        }
    }
    if let Some((&seq, _)) = pending.iter().next_back() {
        // Checkpoints below the head were matched and removed above, so what
        // remains vouches for entries the chain no longer has.
        return Err(ChainBreak::Truncated {
            last_seq: head.seq,
            checkpoint_seq: seq,
        });
    }
    Ok(ChainReport {
        entries: head.seq,
        head,
        checkpoints_verified: verified,
        last_checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut head = ChainHead::genesis();
        (0..n)
            .map(|i| {
                head.append(
                    NewEntry::new(
                        format!("api-key:k{}", i % 3),
                        AuditAction::Probe,
                        if i % 4 == 0 { "denied" } else { "ok" },
                    )
                    .agent(format!("agent-{}", i % 2))
                    .probe("zfs.list_pools")
                    .params_digest(Digest::of(&i.to_be_bytes()))
                    .detail("n", i),
                    1_700_000_000_000 + i as i64,
                )
            })
            .collect()
    }

    fn head_checkpoint(entries: &[AuditEntry]) -> Vec<Checkpoint> {
        vec![Checkpoint::sign(entries.last().unwrap().head(), 1, &key())]
    }

    fn verify(entries: Vec<AuditEntry>, cps: &[Checkpoint]) -> Result<ChainReport, ChainBreak> {
        verify_chain(entries, cps, &key().verifying_key())
    }

    #[test]
    fn intact_chain_verifies() {
        let entries = chain(10);
        let cps = vec![
            Checkpoint::sign(entries[4].head(), 1, &key()),
            Checkpoint::sign(entries[9].head(), 2, &key()),
        ];
        let report = verify(entries.clone(), &cps).unwrap();
        assert_eq!(report.entries, 10);
        assert_eq!(report.head, entries[9].head());
        assert_eq!(report.checkpoints_verified, 2);
        assert_eq!(verify(vec![], &[]).unwrap().head, ChainHead::genesis());
    }

    #[test]
    fn first_entry_links_to_genesis() {
        let entries = chain(1);
        assert_eq!(entries[0].prev_hash, genesis_hash());
        assert_eq!(entries[0].seq, 1);
    }

    #[test]
    fn rewritten_entry_with_recomputed_hash_is_a_broken_link() {
        let mut entries = chain(5);
        entries[1].outcome = "ok".into();
        entries[1].actor = "someone-else".into();
        entries[1].hash = entries[1].compute_hash();
        assert_eq!(verify(entries, &[]), Err(ChainBreak::BrokenLink { seq: 3 }));
    }

    #[test]
    fn rewritten_tail_is_caught_by_checkpoint() {
        let mut entries = chain(5);
        let cps = head_checkpoint(&entries);
        entries[4].outcome = "forged".into();
        entries[4].hash = entries[4].compute_hash();
        assert_eq!(
            verify(entries, &cps),
            Err(ChainBreak::CheckpointMismatch { seq: 5 })
        );
    }

    #[test]
    fn forged_checkpoint_is_refused() {
        let entries = chain(3);
        let other = SigningKey::from_bytes(&[1; 32]);
        let cps = vec![Checkpoint::sign(entries[2].head(), 1, &other)];
        assert_eq!(
            verify(entries, &cps),
            Err(ChainBreak::BadCheckpointSignature { seq: 3 })
        );
    }

    #[test]
    fn break_messages_explain() {
        let b = ChainBreak::Truncated {
            last_seq: 7,
            checkpoint_seq: 9,
        };
        assert!(b.to_string().contains("cut off"));
        assert_eq!(b.seq(), 8);
        assert!(
            ChainBreak::BrokenLink { seq: 4 }
                .to_string()
                .contains("entry 3")
        );
    }

    #[test]
    fn entry_json_is_stable() {
        let e = &chain(1)[0];
        let text = serde_json::to_string(e).unwrap();
        let back: AuditEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, e);
        assert!(back.hash_is_valid());
        assert!(serde_json::from_value::<AuditEntry>(json!({"seq": 1})).is_err());
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Modify { at: usize, field: u8 },
        Delete { at: usize },
        Swap { at: usize },
        Insert { at: usize },
    }

    fn arb_tamper() -> impl Strategy<Value = (usize, Tamper)> {
        (2usize..40).prop_flat_map(|n| {
            let t = prop_oneof![
                (0..n, 0u8..8).prop_map(|(at, field)| Tamper::Modify { at, field }),
                (0..n).prop_map(|at| Tamper::Delete { at }),
                (0..n - 1).prop_map(|at| Tamper::Swap { at }),
                (0..n).prop_map(|at| Tamper::Insert { at }),
            ];
            (Just(n), t)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every single modification, deletion, reordering or insertion is
        /// detected, and located at the right seq.
        #[test]
        fn prop_every_tampering_is_detected_and_located((n, tamper) in arb_tamper()) {
            let mut entries = chain(n as u64);
            let cps = head_checkpoint(&entries);
            let expected: ChainBreak = match tamper {
                Tamper::Modify { at, field } => {
                    let e = &mut entries[at];
                    match field {
                        0 => e.actor.push('x'),
                        1 => e.action = "enrollment.approved".into(),
                        2 => e.outcome = "changed".into(),
                        3 => e.timestamp_ms += 1,
                        4 => e.agent = None,
                        5 => e.params_digest = Some(Digest([0; 32])),
                        6 => { e.detail.insert("n".into(), json!(-1)); }
                        _ => e.prev_hash = Digest([1; 32]),
                    }
                    ChainBreak::Modified { seq: at as u64 + 1 }
                }
                Tamper::Delete { at } => {
                    entries.remove(at);
                    if at == n - 1 {
                        ChainBreak::Truncated { last_seq: n as u64 - 1, checkpoint_seq: n as u64 }
                    } else {
                        ChainBreak::Missing { seq: at as u64 + 1, next_found: at as u64 + 2 }
                    }
                }
                Tamper::Swap { at } => {
                    entries.swap(at, at + 1);
                    ChainBreak::Reordered { seq: at as u64 + 1, found: at as u64 + 2 }
                }
                Tamper::Insert { at } => {
                    // The strongest forger: a well-formed entry that links
                    // correctly to its predecessor and takes the next seq.
                    let mut head = if at == 0 { ChainHead::genesis() } else { entries[at - 1].head() };
                    let forged = head.append(NewEntry::new("forger", AuditAction::Probe, "ok"), 5);
                    entries.insert(at, forged);
                    if at == n - 1 {
                        // The forged entry takes the seq the head checkpoint vouches for.
                        ChainBreak::CheckpointMismatch { seq: n as u64 }
                    } else {
                        ChainBreak::Inserted { seq: at as u64 + 1 }
                    }
                }
            };
            let got = verify(entries, &cps).unwrap_err();
            prop_assert_eq!(got.seq(), expected.seq());
            prop_assert_eq!(got, expected);
        }
    }
}
