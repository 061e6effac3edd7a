//! File contents: bounded reads, text-or-base64 encoding, streamed hashes
//! and searches (bounded by time, not memory), and unified diffs.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sonde_packs::handler::ProbeError;
use sonde_protocol::Digest;
use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

/// Reads at most `max` bytes from `offset`: (bytes, whether more remain).
pub fn read_at(
    file: &mut std::fs::File,
    offset: u64,
    max: usize,
) -> Result<(Vec<u8>, bool), ProbeError> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| ProbeError::Failed(format!("seeking in the file: {e}")))?;
    let r = sonde_packs::bounded::read_bounded(file, max)
        .map_err(|e| ProbeError::Failed(format!("reading the file: {e}")))?;
    Ok((r.bytes, r.truncated))
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

/// SHA-256 of a whole file, streamed; `None` if the deadline came first.
pub fn hash_file(
    file: &mut std::fs::File,
    deadline: Instant,
) -> Result<Option<Digest>, ProbeError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| ProbeError::Failed(format!("seeking in the file: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        let n = file
            .read(&mut buf)
            .map_err(|e| ProbeError::Failed(format!("reading the file: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(Digest(hasher.finalize().into())))
}

/// Whether a file contains `needle`, streamed; `None` if the deadline came
/// first.
pub fn file_contains(
    file: &mut std::fs::File,
    needle: &[u8],
    deadline: Instant,
) -> Result<Option<bool>, ProbeError> {
    if needle.is_empty() {
        return Ok(Some(true));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| ProbeError::Failed(format!("seeking in the file: {e}")))?;
    let mut window: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        let n = file
            .read(&mut buf)
            .map_err(|e| ProbeError::Failed(format!("reading the file: {e}")))?;
        if n == 0 {
            return Ok(Some(false));
        }
        window.extend_from_slice(&buf[..n]);
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
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A unified diff (3 lines of context) of two texts, at most `max_lines`
/// lines of output: (diff, whether it was cut). Equal prefixes and suffixes
/// are skipped; the middle is compared line by line (LCS) when it is small
/// enough, else `Err` says why there is no diff.
pub fn unified_diff(a: &[u8], b: &[u8], max_lines: usize) -> Result<(String, bool), String> {
    let la: Vec<&[u8]> = a.split_inclusive(|c| *c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split_inclusive(|c| *c == b'\n').collect();
    let mut pre = 0;
    while pre < la.len() && pre < lb.len() && la[pre] == lb[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < la.len() - pre
        && suf < lb.len() - pre
        && la[la.len() - 1 - suf] == lb[lb.len() - 1 - suf]
    {
        suf += 1;
    }
    let (ma, mb) = (&la[pre..la.len() - suf], &lb[pre..lb.len() - suf]);
    let (n, m) = (ma.len(), mb.len());
    if n.saturating_mul(m) > 16_000_000 {
        return Err(format!(
            "the versions differ in {n} and {m} lines: too many to compare line by line"
        ));
    }
    // lcs[i][j]: longest common subsequence of ma[i..] and mb[j..].
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if ma[i] == mb[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    // The edit script over all lines; deletions before insertions.
    let mut ops: Vec<(u8, &[u8])> = la[..pre].iter().map(|l| (b' ', *l)).collect();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && ma[i] == mb[j] {
            ops.push((b' ', ma[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
            ops.push((b'-', ma[i]));
            i += 1;
        } else {
            ops.push((b'+', mb[j]));
            j += 1;
        }
    }
    ops.extend(la[la.len() - suf..].iter().map(|l| (b' ', *l)));
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != b' ')
        .map(|(k, _)| k)
        .collect();
    let mut out = Vec::new();
    let mut lines = 0;
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(3);
        let mut end = changed[k] + 3;
        while k + 1 < changed.len() && changed[k + 1] <= end + 3 {
            k += 1;
            end = changed[k] + 3;
        }
        end = end.min(ops.len() - 1);
        k += 1;
        let (mut old_line, mut new_line) = (1, 1);
        for o in &ops[..start] {
            if o.0 != b'+' {
                old_line += 1;
            }
            if o.0 != b'-' {
                new_line += 1;
            }
        }
        let hunk = &ops[start..=end];
        let old_count = hunk.iter().filter(|o| o.0 != b'+').count();
        let new_count = hunk.iter().filter(|o| o.0 != b'-').count();
        // An empty range is named by the line before it.
        let old_start = if old_count == 0 {
            old_line - 1
        } else {
            old_line
        };
        let new_start = if new_count == 0 {
            new_line - 1
        } else {
            new_line
        };
        out.extend(
            format!("@@ -{old_start},{old_count} +{new_start},{new_count} @@\n").into_bytes(),
        );
        lines += 1;
        for (op, line) in hunk {
            if lines >= max_lines {
                return Ok((String::from_utf8_lossy(&out).into_owned(), true));
            }
            out.push(*op);
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(b"\n\\ No newline at end of file\n");
            }
            lines += 1;
        }
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn diffs_are_unified() {
        let a = b"a\nb\nc\nd\ne\nf\ng\nh\n";
        let b = b"a\nb\nc\nD\ne\nf\ng\nh\ni\n";
        let (d, cut) = unified_diff(a, b, 100).unwrap();
        assert!(!cut);
        assert_eq!(
            d,
            "@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n"
        );
        assert_eq!(unified_diff(a, a, 100).unwrap().0, "");
        assert_eq!(
            unified_diff(b"x\n", b"", 100).unwrap().0,
            "@@ -1,1 +0,0 @@\n-x\n"
        );
        assert_eq!(
            unified_diff(b"x", b"y", 100).unwrap().0,
            "@@ -1,1 +1,1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n"
        );
        let far: Vec<u8> = (0..40)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let mut changed = far.clone();
        changed.splice(0..1, b"X".iter().copied());
        changed.extend_from_slice(b"end\n");
        let (d, _) = unified_diff(&far, &changed, 100).unwrap();
        assert_eq!(d.matches("@@").count(), 4, "two hunks: {d}");
        let (cut_diff, cut) = unified_diff(&far, &changed, 3).unwrap();
        assert!(cut);
        assert_eq!(cut_diff.lines().count(), 3);
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
        let mut f = std::fs::File::open(&p).unwrap();
        assert_eq!(file_contains(&mut f, b"needle", far).unwrap(), Some(true));
        assert_eq!(file_contains(&mut f, b"needles", far).unwrap(), Some(false));
        assert_eq!(hash_file(&mut f, far).unwrap(), Some(Digest::of(&data)));
        assert_eq!(hash_file(&mut f, Instant::now()).unwrap(), None);
    }

    proptest! {
        /// Applying the diff's `-`/`+` lines to the old text gives the new one.
        #[test]
        fn prop_diff_rebuilds_the_new_text(
            a in prop::collection::vec(prop::sample::select(vec!["x\n", "y\n", "z\n", "w"]), 0..20),
            b in prop::collection::vec(prop::sample::select(vec!["x\n", "y\n", "z\n", "w"]), 0..20),
        ) {
            let (a, b) = (a.concat(), b.concat());
            let (d, cut) = unified_diff(a.as_bytes(), b.as_bytes(), 10_000).unwrap();
            prop_assert!(!cut);
            let old: Vec<&str> = a.split_inclusive('\n').collect();
            let mut rebuilt = String::new();
            let mut at = 0usize;
            let mut lines = d.split_inclusive('\n').peekable();
            while let Some(line) = lines.next() {
                if let Some(h) = line.strip_prefix("@@ -") {
                    let (start, count) = h.split_once(' ').unwrap().0.split_once(',').unwrap();
                    let (start, count): (usize, usize) = (start.parse().unwrap(), count.parse().unwrap());
                    let first = if count == 0 { start } else { start - 1 };
                    for l in &old[at..first] { rebuilt.push_str(l); }
                    at = first;
                    continue;
                }
                let no_newline = lines.peek() == Some(&"\\ No newline at end of file\n");
                let body = if no_newline { line.trim_end_matches('\n') } else { line };
                match line.as_bytes()[0] {
                    b' ' => { rebuilt.push_str(&body[1..]); at += 1; }
                    b'-' => { at += 1; }
                    b'+' => rebuilt.push_str(&body[1..]),
                    _ => {}
                }
                if no_newline { lines.next(); }
            }
            for l in &old[at..] { rebuilt.push_str(l); }
            prop_assert_eq!(rebuilt, b);
        }
    }
}
