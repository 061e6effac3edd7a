//! File contents: bounded reads, text-or-base64 encoding, streamed hashes
//! and searches (bounded by time, not memory), and unified diffs.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sonde_packs::SecretGuard;
use sonde_packs::handler::ProbeError;
use sonde_protocol::Digest;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Reads at most `max` bytes from `offset`: (bytes, whether more remain).
/// Costs time in proportion to what is read, wherever the window is (a
/// positioned read; nothing before `offset` is touched).
pub fn read_at(
    file: &mut std::fs::File,
    offset: u64,
    max: usize,
) -> Result<(Vec<u8>, bool), ProbeError> {
    let size = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("reading the file's size: {e}")))?
        .len();
    let left = size.saturating_sub(offset);
    // One byte more than asked tells whether more remain (the file may
    // have grown since its size was read: the live file system).
    let want = usize::try_from(left.min(max as u64))
        .unwrap_or(max)
        .saturating_add(1)
        .min(max.saturating_add(1));
    let mut bytes = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut bytes[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProbeError::Failed(format!("reading the file: {e}"))),
        }
    }
    bytes.truncate(got);
    let more = bytes.len() > max;
    bytes.truncate(max);
    Ok((bytes, more))
}

/// What hashing may still cost in one call: bytes and time.
#[derive(Debug, Clone, Copy)]
pub struct HashBudget {
    pub bytes_left: u64,
    pub deadline: Instant,
    /// Bytes hashed so far (whole files and samples).
    pub bytes_hashed: u64,
    /// A file was left unhashed because the bytes ran out.
    pub bytes_ran_out: bool,
    /// A file was left unhashed because time ran out.
    pub time_ran_out: bool,
}

impl HashBudget {
    pub fn new(bytes: u64, deadline: Instant) -> HashBudget {
        HashBudget {
            bytes_left: bytes,
            deadline,
            bytes_hashed: 0,
            bytes_ran_out: false,
            time_ran_out: false,
        }
    }

    /// Whether anything was left undone.
    pub fn ran_out(&self) -> bool {
        self.bytes_ran_out || self.time_ran_out
    }

    /// Why something was left undone, for people.
    pub fn why(&self, param: &str) -> String {
        match (self.bytes_ran_out, self.time_ran_out) {
            (true, true) => format!("both the bytes to hash ({param}) and the time ran out"),
            (true, false) => format!("the bytes to hash ran out ({param})"),
            (false, true) => "the time to hash ran out".to_owned(),
            (false, false) => "nothing ran out".to_owned(),
        }
    }
}

/// SHA-256 of a whole file of `size` bytes as it would leave the machine
/// (scrubbed: [`ScrubbedChunks`]), streamed, if the budget allows (a file
/// larger than what is left is not started); `None` otherwise. A file
/// without secrets hashes to its plain SHA-256.
pub fn hash_within(
    file: &std::fs::File,
    size: u64,
    budget: &mut HashBudget,
    secrets: &SecretGuard,
) -> Result<Option<Digest>, ProbeError> {
    if size > budget.bytes_left {
        budget.bytes_ran_out = true;
        return Ok(None);
    }
    if Instant::now() >= budget.deadline {
        budget.time_ran_out = true;
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut chunks = ScrubbedChunks::new(file, secrets);
    loop {
        if Instant::now() >= budget.deadline {
            budget.time_ran_out = true;
            budget.bytes_hashed += chunks.read;
            return Ok(None);
        }
        match chunks.next_chunk()? {
            Some(chunk) => hasher.update(&chunk),
            None => break,
        }
    }
    budget.bytes_left = budget.bytes_left.saturating_sub(chunks.read);
    budget.bytes_hashed += chunks.read;
    Ok(Some(Digest(hasher.finalize().into())))
}

/// Raw bytes per scrubbed chunk, at most.
pub const SCRUB_CHUNK: usize = 4 << 20;

/// One chunk of zeros (in `.bss`: costs no space in the binary).
static ZEROS: [u8; SCRUB_CHUNK] = [0; SCRUB_CHUNK];

/// A file read from its start in chunks, each scrubbed as the agent scrubs
/// results, so that hashes and searches over whole files see what a reader
/// of the file would see. A chunk ends at the last line end within
/// [`SCRUB_CHUNK`] bytes (or there, for a longer line), so the chunks —
/// and every digest over them — depend only on the content. A secret on
/// one line (a password, a token: what could be guessed) is always whole
/// inside one chunk; a multi-line one (a PEM key) cut by a chunk boundary
/// is still redacted by its own per-line rules where they exist.
#[derive(Debug)]
pub struct ScrubbedChunks<'a> {
    file: &'a std::fs::File,
    secrets: &'a SecretGuard,
    pending: Vec<u8>,
    /// Raw bytes read so far.
    pub read: u64,
    eof: bool,
}

impl<'a> ScrubbedChunks<'a> {
    pub fn new(file: &'a std::fs::File, secrets: &'a SecretGuard) -> Self {
        ScrubbedChunks {
            file,
            secrets,
            pending: Vec::new(),
            read: 0,
            eof: false,
        }
    }

    /// The next scrubbed chunk; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ProbeError> {
        let mut buf = vec![0u8; 1 << 20];
        while !self.eof && self.pending.len() < SCRUB_CHUNK {
            match self.file.read_at(&mut buf, self.read) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.read += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProbeError::Failed(format!("reading the file: {e}"))),
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = if self.pending.len() < SCRUB_CHUNK {
            self.pending.len()
        } else {
            memchr::memrchr(b'\n', &self.pending[..SCRUB_CHUNK]).map_or(SCRUB_CHUNK, |p| p + 1)
        };
        let raw: Vec<u8> = self.pending.drain(..cut).collect();
        // Zeros (a sparse file's holes, preallocated images) hold no
        // secret: no rule matches NUL bytes alone. Compared with memcmp.
        if raw[..] == ZEROS[..raw.len()] {
            return Ok(Some(raw));
        }
        Ok(Some(match self.secrets.scrub(&raw) {
            std::borrow::Cow::Borrowed(_) => raw,
            std::borrow::Cow::Owned(clean) => clean,
        }))
    }
}

/// Files at least this large are told apart by [`sample_fingerprint`]
/// before any whole-file hash.
pub const SAMPLE_FROM: u64 = 4 << 20;
/// Blocks a sample fingerprint reads, and their size (1 MiB in all).
pub const SAMPLE_BLOCKS: u64 = 16;
pub const SAMPLE_BLOCK: u64 = 64 << 10;

/// A digest of a file's size and [`SAMPLE_BLOCKS`] blocks spread evenly
/// over it (the first and the last included). Two files whose samples
/// differ differ; equal samples say nothing, and a whole-file hash decides.
pub fn sample_fingerprint(
    file: &std::fs::File,
    size: u64,
    budget: &mut HashBudget,
) -> Result<Digest, ProbeError> {
    let mut hasher = Sha256::new();
    hasher.update(size.to_le_bytes());
    let mut buf = vec![0u8; SAMPLE_BLOCK as usize];
    let last = size.saturating_sub(SAMPLE_BLOCK);
    for k in 0..SAMPLE_BLOCKS {
        let at = last / (SAMPLE_BLOCKS - 1) * k;
        let at = if k == SAMPLE_BLOCKS - 1 { last } else { at };
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], at + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProbeError::Failed(format!("reading the file: {e}"))),
            }
        }
        hasher.update(at.to_le_bytes());
        hasher.update(&buf[..got]);
        budget.bytes_hashed += got as u64;
    }
    Ok(Digest(hasher.finalize().into()))
}

/// True if `bytes` look binary: a NUL, or not UTF-8 (an incomplete
/// character at the very end of a cut read does not count).
pub fn is_binary(bytes: &[u8], cut: bool) -> bool {
    if bytes.contains(&0) {
        return true;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => false,
        Err(e) => !(cut && e.error_len().is_none()),
    }
}

/// Content for a result: `(content, binary, bytes used)`. Text is a JSON
/// string; binary is standard base64. When a read was cut in the middle of
/// a UTF-8 character, the partial character is left out of a text result
/// (`bytes used` says how many bytes the content covers).
pub fn encode(bytes: &[u8], cut: bool) -> (Value, bool, usize) {
    if is_binary(bytes, cut) {
        return (
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
            true,
            bytes.len(),
        );
    }
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    (
        json!(String::from_utf8_lossy(&bytes[..valid])),
        false,
        valid,
    )
}

/// [`hash_within`] without a byte budget: the scrubbed content's SHA-256,
/// `None` if the deadline came first.
pub fn hash_file(
    file: &std::fs::File,
    deadline: Instant,
    secrets: &SecretGuard,
) -> Result<Option<Digest>, ProbeError> {
    let mut budget = HashBudget::new(u64::MAX, deadline);
    hash_within(file, 0, &mut budget, secrets)
}

/// Whether a file's scrubbed content ([`ScrubbedChunks`]) contains
/// `needle`, streamed: a match that exists only because of a secret is no
/// match. `None` if the deadline came first.
pub fn file_contains(
    file: &std::fs::File,
    needle: &[u8],
    deadline: Instant,
    secrets: &SecretGuard,
) -> Result<Option<bool>, ProbeError> {
    if needle.is_empty() {
        return Ok(Some(true));
    }
    let mut chunks = ScrubbedChunks::new(file, secrets);
    let mut window: Vec<u8> = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        let Some(chunk) = chunks.next_chunk()? else {
            return Ok(Some(false));
        };
        window.extend_from_slice(&chunk);
        if contains(&window, needle) {
            return Ok(Some(true));
        }
        // Keep what could be the start of a match across the boundary.
        let keep = needle.len() - 1;
        let cut = window.len().saturating_sub(keep);
        window.drain(..cut);
    }
}

/// Substring search on bytes.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// A unified diff of two texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedDiff {
    pub text: String,
    /// The output reached its line bound.
    pub cut: bool,
    /// The comparison ran past its deadline and `similar` finished it
    /// coarsely: still a correct diff (applying it gives the new text), but
    /// not necessarily the shortest.
    pub approximate: bool,
}

/// How long a line diff may take before it is finished coarsely.
pub const DIFF_TIME: Duration = Duration::from_secs(5);

/// A unified diff (3 lines of context) of two texts, at most `max_lines`
/// lines of output, computed with `similar` (Myers) within [`DIFF_TIME`].
pub fn unified_diff(a: &[u8], b: &[u8], max_lines: usize) -> UnifiedDiff {
    unified_diff_until(a, b, max_lines, Instant::now() + DIFF_TIME)
}

/// [`unified_diff`] with a deadline: time and memory stay bounded whatever
/// the inputs (the inputs themselves are bounded reads).
pub fn unified_diff_until(a: &[u8], b: &[u8], max_lines: usize, deadline: Instant) -> UnifiedDiff {
    let la: Vec<&[u8]> = a.split_inclusive(|c| *c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split_inclusive(|c| *c == b'\n').collect();
    let ops =
        similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &la, &lb, Some(deadline));
    let approximate = Instant::now() >= deadline;
    let mut w = DiffWriter {
        out: Vec::new(),
        lines: 0,
        max_lines,
    };
    let mut cut = false;
    'groups: for group in similar::group_diff_ops(ops, 3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old = first.old_range().start..last.old_range().end;
        let new = first.new_range().start..last.new_range().end;
        // An empty range is named by the line before it.
        let start = |r: &std::ops::Range<usize>| if r.is_empty() { r.start } else { r.start + 1 };
        let header = format!(
            "@@ -{},{} +{},{} @@\n",
            start(&old),
            old.len(),
            start(&new),
            new.len()
        );
        if !w.push(header.as_bytes()) {
            cut = true;
            break;
        }
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let (minus, plus) = match tag {
                similar::DiffTag::Equal => (&la[..0], &lb[..0]),
                similar::DiffTag::Delete => (&la[old_range.clone()], &lb[..0]),
                similar::DiffTag::Insert => (&la[..0], &lb[new_range]),
                similar::DiffTag::Replace => (&la[old_range.clone()], &lb[new_range]),
            };
            let same = if tag == similar::DiffTag::Equal {
                &la[old_range]
            } else {
                &la[..0]
            };
            let ok = same.iter().all(|l| w.line(b' ', l))
                && minus.iter().all(|l| w.line(b'-', l))
                && plus.iter().all(|l| w.line(b'+', l));
            if !ok {
                cut = true;
                break 'groups;
            }
        }
    }
    UnifiedDiff {
        text: String::from_utf8_lossy(&w.out).into_owned(),
        cut,
        approximate,
    }
}

/// Output of a unified diff, counted in lines.
struct DiffWriter {
    out: Vec<u8>,
    lines: usize,
    max_lines: usize,
}

impl DiffWriter {
    /// Adds one output line (already ending in a newline); false when full.
    fn push(&mut self, text: &[u8]) -> bool {
        if self.lines >= self.max_lines {
            return false;
        }
        self.out.extend_from_slice(text);
        self.lines += 1;
        true
    }

    /// Adds one line of a file after its marker (` `, `-`, `+`).
    fn line(&mut self, op: u8, line: &[u8]) -> bool {
        if self.lines >= self.max_lines {
            return false;
        }
        self.out.push(op);
        self.out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            self.out
                .extend_from_slice(b"\n\\ No newline at end of file\n");
        }
        self.lines += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn diffs_are_unified() {
        let a = b"a\nb\nc\nd\ne\nf\ng\nh\n";
        let b = b"a\nb\nc\nD\ne\nf\ng\nh\ni\n";
        let d = unified_diff(a, b, 100);
        assert!(!d.cut && !d.approximate);
        let d = d.text;
        assert_eq!(
            d,
            "@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n"
        );
        assert_eq!(unified_diff(a, a, 100).text, "");
        assert_eq!(unified_diff(b"x\n", b"", 100).text, "@@ -1,1 +0,0 @@\n-x\n");
        assert_eq!(
            unified_diff(b"x", b"y", 100).text,
            "@@ -1,1 +1,1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n"
        );
        let far: Vec<u8> = (0..40)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let mut changed = far.clone();
        changed.splice(0..1, b"X".iter().copied());
        changed.extend_from_slice(b"end\n");
        let d = unified_diff(&far, &changed, 100).text;
        assert_eq!(d.matches("@@").count(), 4, "two hunks: {d}");
        let cut = unified_diff(&far, &changed, 3);
        assert!(cut.cut);
        assert_eq!(cut.text.lines().count(), 3);
    }

    #[test]
    fn text_binary_and_cut_characters() {
        assert_eq!(encode(b"hello", false), (json!("hello"), false, 5));
        assert_eq!(encode(b"\x00\xff", false), (json!("AP8="), true, 2));
        // "é" is c3 a9: a read that ends after c3 is still text.
        assert_eq!(encode(b"caf\xc3", true), (json!("caf"), false, 3));
        assert!(encode(b"caf\xc3", false).1);
        assert!(encode(b"\xff\xfe ok", true).1);
    }

    #[test]
    fn streamed_search_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut data = vec![b'a'; 600 * 1024];
        data.extend_from_slice(b"needle");
        std::fs::write(&p, &data).unwrap();
        let far = Instant::now() + std::time::Duration::from_secs(10);
        let f = std::fs::File::open(&p).unwrap();
        let g = SecretGuard::standard();
        assert_eq!(file_contains(&f, b"needle", far, &g).unwrap(), Some(true));
        assert_eq!(file_contains(&f, b"needles", far, &g).unwrap(), Some(false));
        assert_eq!(hash_file(&f, far, &g).unwrap(), Some(Digest::of(&data)));
        assert_eq!(hash_file(&f, Instant::now(), &g).unwrap(), None);
    }

    /// Hashes and searches see the file as it would leave the machine: a
    /// secret is neither searchable nor part of the digest, across chunk
    /// boundaries and in files larger than one chunk; files without
    /// secrets hash to their plain SHA-256 whatever their size.
    #[test]
    fn hashes_and_searches_never_see_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let far = || Instant::now() + std::time::Duration::from_secs(120);
        let g = SecretGuard::standard();
        let line = b"Dec  1 12:00:00 nas app[1]: request served in 3 ms\n";
        for fill in [0usize, 1000, SCRUB_CHUNK - 10, SCRUB_CHUNK + 77] {
            let mut clean = Vec::new();
            while clean.len() < fill {
                clean.extend_from_slice(line);
            }
            let p = dir.path().join(format!("clean{fill}"));
            std::fs::write(&p, &clean).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(
                hash_file(&f, far(), &g).unwrap(),
                Some(Digest::of(&clean)),
                "{fill}"
            );
            for (i, secret) in [&b"hunter2xyz"[..], b"Sup3rS3cret"].iter().enumerate() {
                let mut text = clean.clone();
                text.extend_from_slice(b"app: DB_PASSWORD=");
                text.extend_from_slice(secret);
                text.extend_from_slice(b"\n");
                text.extend_from_slice(&clean);
                let p = dir.path().join(format!("secret{fill}-{i}"));
                std::fs::write(&p, &text).unwrap();
                let f = std::fs::File::open(&p).unwrap();
                assert_eq!(file_contains(&f, secret, far(), &g).unwrap(), Some(false));
                assert_eq!(
                    file_contains(&f, &secret[..4], far(), &g).unwrap(),
                    Some(false)
                );
                assert_eq!(
                    file_contains(&f, b"DB_PASSWORD=", far(), &g).unwrap(),
                    Some(true)
                );
                let digest = hash_file(&f, far(), &g).unwrap().unwrap();
                assert_ne!(digest, Digest::of(&text), "the digest is of the raw bytes");
                // Any password gives the same digest: nothing to guess with.
                if i == 1 {
                    let other = dir.path().join(format!("secret{fill}-0"));
                    let other = std::fs::File::open(other).unwrap();
                    assert_eq!(hash_file(&other, far(), &g).unwrap().unwrap(), digest);
                }
            }
        }
    }

    /// Applies a unified diff's `-`/`+` lines to the old text.
    fn apply(old_text: &str, d: &str) -> String {
        let old: Vec<&str> = old_text.split_inclusive('\n').collect();
        let mut rebuilt = String::new();
        let mut at = 0usize;
        let mut lines = d.split_inclusive('\n').peekable();
        while let Some(line) = lines.next() {
            if let Some(h) = line.strip_prefix("@@ -") {
                let (start, count) = h.split_once(' ').unwrap().0.split_once(',').unwrap();
                let (start, count): (usize, usize) =
                    (start.parse().unwrap(), count.parse().unwrap());
                let first = if count == 0 { start } else { start - 1 };
                for l in &old[at..first] {
                    rebuilt.push_str(l);
                }
                at = first;
                continue;
            }
            let no_newline = lines.peek() == Some(&"\\ No newline at end of file\n");
            let body = if no_newline {
                line.trim_end_matches('\n')
            } else {
                line
            };
            match line.as_bytes()[0] {
                b' ' => {
                    rebuilt.push_str(&body[1..]);
                    at += 1;
                }
                b'-' => at += 1,
                b'+' => rebuilt.push_str(&body[1..]),
                _ => {}
            }
            if no_newline {
                lines.next();
            }
        }
        for l in &old[at..] {
            rebuilt.push_str(l);
        }
        rebuilt
    }

    #[test]
    fn a_large_diff_is_bounded_and_still_correct() {
        // 40,000 lines each, every third one different: past its deadline
        // the comparison is finished coarsely, and the diff still turns
        // the old text into the new one.
        let a: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..40_000)
            .map(|i| {
                if i % 3 == 0 {
                    format!("changed {i}\n")
                } else {
                    format!("line {i}\n")
                }
            })
            .collect();
        let d = unified_diff_until(a.as_bytes(), b.as_bytes(), usize::MAX, Instant::now());
        assert!(d.approximate);
        assert!(!d.cut);
        assert_eq!(apply(&a, &d.text), b);
        let exact = unified_diff(a.as_bytes(), b.as_bytes(), usize::MAX);
        assert_eq!(apply(&a, &exact.text), b);
        let bounded = unified_diff(a.as_bytes(), b.as_bytes(), 1000);
        assert!(bounded.cut);
        assert_eq!(bounded.text.lines().count(), 1000);
    }

    proptest! {
        /// Applying the diff's `-`/`+` lines to the old text gives the new one.
        #[test]
        fn prop_diff_rebuilds_the_new_text(
            a in prop::collection::vec(prop::sample::select(vec!["x\n", "y\n", "z\n", "w"]), 0..20),
            b in prop::collection::vec(prop::sample::select(vec!["x\n", "y\n", "z\n", "w"]), 0..20),
        ) {
            let (a, b) = (a.concat(), b.concat());
            let UnifiedDiff { text: d, cut, .. } = unified_diff(a.as_bytes(), b.as_bytes(), 10_000);
            prop_assert!(!cut);
            prop_assert_eq!(apply(&a, &d), b);
        }
    }
}
