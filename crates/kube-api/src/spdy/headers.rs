//! SPDY/3 name/value header blocks: a 32-bit count, then per header a 32-bit length and the
//! lower-case name, a 32-bit length and the value (several values joined by NUL). A block is
//! zlib-compressed with [`dictionary`](super::dictionary); each direction of a session is one
//! zlib stream, every block ending on a sync flush.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;
use super::dictionary::dictionary;

/// Most bytes a header block may decompress to: far more than any Kubernetes stream sends,
/// and a bound on what a peer can make us allocate.
const MAX_BLOCK: usize = 1 << 20;

/// A stream's headers, in order; names are lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// Adds a header; the name is lower-cased, as SPDY requires.
    pub fn with(mut self, name: &str, value: &str) -> Headers {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of `name` (compared without case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The uncompressed block.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            for s in [name, value] {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// Parses an uncompressed block, which must be used up exactly.
    fn decode(block: &[u8]) -> Result<Headers, SpdyError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], SpdyError> {
            let end = at
                .checked_add(n)
                .filter(|&e| e <= block.len())
                .ok_or_else(|| SpdyError::Protocol("header block ends early".into()))?;
            let s = &block[at..end];
            at = end;
            Ok(s)
        };
        let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let count = word(take(4)?);
        let mut headers = Vec::new();
        for _ in 0..count {
            let mut pair = [String::new(), String::new()];
            for part in &mut pair {
                let len = word(take(4)?);
                *part = String::from_utf8(take(len)?.to_vec())
                    .map_err(|_| SpdyError::Protocol("a header is not UTF-8".into()))?;
            }
            let [name, value] = pair;
            if name.is_empty() {
                return Err(SpdyError::Protocol("a header has an empty name".into()));
            }
            headers.push((name.to_ascii_lowercase(), value));
        }
        if at != block.len() {
            return Err(SpdyError::Protocol(
                "bytes after the last header in a header block".into(),
            ));
        }
        Ok(Headers(headers))
    }
}

/// The sending side's zlib stream.
pub struct HeaderEncoder {
    zlib: Compress,
}

impl HeaderEncoder {
    pub fn new() -> HeaderEncoder {
        let mut zlib = Compress::new(Compression::default(), true);
        // Cannot fail before the first byte is compressed.
        let _ = zlib.set_dictionary(dictionary());
        HeaderEncoder { zlib }
    }

    /// The compressed block, ending on a sync flush so the peer can decode it at once.
    pub fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let input = headers.encode();
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0usize;
        loop {
            let before_in = self.zlib.total_in();
            let status = self
                .zlib
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.zlib.total_in() - before_in) as usize;
            // Done once all input is in and the flush fit in the space left.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if status == Status::StreamEnd {
                return Err(SpdyError::Compression("the zlib stream ended".into()));
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder::new()
    }
}

/// The receiving side's zlib stream.
pub struct HeaderDecoder {
    zlib: Decompress,
}

impl HeaderDecoder {
    pub fn new() -> HeaderDecoder {
        HeaderDecoder {
            zlib: Decompress::new(true),
        }
    }

    /// Decodes one compressed block, which must hold whole headers.
    pub fn decode(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            let before_in = self.zlib.total_in();
            let result =
                self.zlib
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.zlib.total_in() - before_in) as usize;
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(SpdyError::Compression("the zlib stream ended".into()));
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        self.zlib
                            .set_dictionary(dictionary())
                            .map_err(|e| SpdyError::Compression(e.to_string()))?;
                        continue;
                    }
                    None => return Err(SpdyError::Compression(e.to_string())),
                },
            }
            if consumed == compressed.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() > MAX_BLOCK {
                return Err(SpdyError::Protocol("a header block is too large".into()));
            }
            out.reserve(out.capacity().max(64));
        }
        Headers::decode(&out)
    }
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_headers(kind: &str) -> Headers {
        Headers::new().with("streamType", kind)
    }

    #[test]
    fn blocks_round_trip_through_one_zlib_stream_per_direction() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let blocks = [
            Headers::new(),
            stream_headers("error"),
            stream_headers("stdout"),
            Headers::new()
                .with("port", "8080")
                .with("requestID", "0")
                .with("X-Multi", "a\0b"),
        ];
        for h in &blocks {
            let wire = enc.encode(h).unwrap();
            // A sync flush ends every block.
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "{wire:x?}");
            assert_eq!(&dec.decode(&wire).unwrap(), h);
        }
        assert_eq!(blocks[3].get("requestid"), Some("0"));
        assert_eq!(blocks[3].get("x-multi"), Some("a"));
        assert_eq!(blocks[1].get("StreamType"), Some("error"));
    }

    #[test]
    fn the_first_block_names_the_dictionary() {
        let wire = HeaderEncoder::new().encode(&Headers::new()).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(wire[0] & 0x0f, 8);
        assert_ne!(wire[1] & 0x20, 0);
        assert_eq!(&wire[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn malformed_blocks_are_protocol_errors() {
        for bad in [
            &b"\0\0\0\x01"[..],
            b"\0\0\0\x01\0\0\0\x03abc",
            b"\0\0\0\x01\0\0\0\0\0\0\0\0",
            b"\0\0\0\0extra",
        ] {
            assert!(matches!(Headers::decode(bad), Err(SpdyError::Protocol(_))));
        }
        let mut dec = HeaderDecoder::new();
        assert!(dec.decode(b"not zlib at all").is_err());
    }
}
