//! A Server-Sent Events reader for the hub's streamed answers: bytes in,
//! the `data` of each complete event out. Bounded: an event larger than
//! the limit is an error, not an allocation.

/// Splits an SSE byte stream into event data.
#[derive(Debug)]
pub struct SseReader {
    buf: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    limit: usize,
}

/// An event grew past the limit.
#[derive(Debug, thiserror::Error)]
#[error("an event from the hub is larger than {0} bytes")]
pub struct TooLarge(pub usize);

impl SseReader {
    pub fn new(limit: usize) -> Self {
        SseReader {
            buf: Vec::new(),
            data: Vec::new(),
            has_data: false,
            limit,
        }
    }

    /// Feeds bytes; returns the data of every event they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if self.has_data {
                    events.push(std::mem::take(&mut self.data));
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(b":") {
                continue;
            }
            let (field, value) = match line.iter().position(|b| *b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &[][..]),
            };
            if field == b"data" {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            if self.data.len() > self.limit {
                return Err(TooLarge(self.limit));
            }
        }
        if self.buf.len() > self.limit {
            return Err(TooLarge(self.limit));
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = b"id: 0\nretry: 3000\ndata:\n\n: comment\ndata: {\"a\":1}\n\nevent: message\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\n";
        for cut in 0..stream.len() {
            let mut r = SseReader::new(1024);
            let mut got = r.feed(&stream[..cut]).unwrap();
            got.extend(r.feed(&stream[cut..]).unwrap());
            assert_eq!(
                got,
                vec![b"".to_vec(), b"{\"a\":1}".to_vec(), b"{\"b\":\n2}".to_vec()],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut r = SseReader::new(16);
        assert!(r.feed(b"data: 0123456789abcdefXYZ\n").is_err());
        let mut r = SseReader::new(16);
        assert!(
            r.feed(&[b'x'; 64]).is_err(),
            "a line without an end is bounded too"
        );
    }
}
