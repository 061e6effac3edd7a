//! Bounded reads: never more than the caller's limit comes into memory.

use std::io::{self, Read};
use std::path::Path;

/// Bytes read and whether more were left unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// Reads at most `max` bytes from `reader`; `truncated` is true if at least
/// one more byte was available.
pub fn read_bounded<R: Read>(reader: R, max: usize) -> io::Result<Bounded> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut bytes)?;
    let truncated = bytes.len() > max;
    bytes.truncate(max);
    Ok(Bounded { bytes, truncated })
}

/// Reads at most `max` bytes of the file at `path`.
pub fn read_file_bounded(path: &Path, max: usize) -> io::Result<Bounded> {
    read_bounded(std::fs::File::open(path)?, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_exactly_at_the_limit() {
        assert_eq!(
            read_bounded(&b"hello"[..], 5).unwrap(),
            Bounded {
                bytes: b"hello".to_vec(),
                truncated: false
            }
        );
        assert_eq!(
            read_bounded(&b"hello!"[..], 5).unwrap(),
            Bounded {
                bytes: b"hello".to_vec(),
                truncated: true
            }
        );
        assert_eq!(
            read_bounded(&b""[..], 0).unwrap(),
            Bounded {
                bytes: vec![],
                truncated: false
            }
        );
        assert!(read_bounded(&b"x"[..], 0).unwrap().truncated);
    }
}
