//! `[]byte` fields as Go's `encoding/json` decodes them (a Secret's `data`, a ConfigMap's
//! `binaryData`, a webhook's `caBundle`): standard base64 with padding, carriage returns and
//! line feeds skipped anywhere, and Go's `base64.CorruptInputError` at the byte where decoding
//! stops (`illegal base64 data at input byte 4`). kube-apiserver writes the bytes back in
//! standard base64, so what it stores is the canonical text.

use base64::Engine;

/// Go's `CorruptInputError` text for an error at `offset`.
pub fn corrupt_input(offset: usize) -> String {
    format!("illegal base64 data at input byte {offset}")
}

fn value_of(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn is_newline(c: u8) -> bool {
    c == b'\n' || c == b'\r'
}

/// Decodes as Go's `base64.StdEncoding.Decode`, quantum by quantum: `Err(offset)` where it
/// finds a byte outside the alphabet, wrong or missing padding, or text after the padding.
pub fn decode(text: &str) -> Result<Vec<u8>, usize> {
    let src = text.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        let mut end = false;
        while j < 4 {
            if si == src.len() {
                match j {
                    0 => return Ok(out),
                    // A partial quantum: the padding it needs is missing.
                    _ => return Err(si - j),
                }
            }
            let c = src[si];
            si += 1;
            if let Some(v) = value_of(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if is_newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            // Padding: `==` after two characters, `=` after three.
            if j == 2 {
                while si < src.len() && is_newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                return Err(si);
            }
            len = j;
            end = true;
            break;
        }
        let value = u32::from(quantum[0]) << 18
            | u32::from(quantum[1]) << 12
            | u32::from(quantum[2]) << 6
            | u32::from(quantum[3]);
        let bytes = [(value >> 16) as u8, (value >> 8) as u8, value as u8];
        out.extend_from_slice(&bytes[..len - 1]);
        if end {
            return Ok(out);
        }
    }
}

/// The text kube-apiserver stores for a `[]byte` field written as `text`: its bytes in standard
/// base64 with padding, or Go's decoding error.
pub fn canonical(text: &str) -> Result<String, String> {
    decode(text)
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .map_err(corrupt_input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_go_does() {
        for (text, bytes) in [
            ("", &b""[..]),
            ("aGVsbG8=", b"hello"),
            ("aGVsbA==", b"hell"),
            ("aGVs", b"hel"),
            ("aGVs\nbG8=\n", b"hello"),
            ("aG\r\nVsbA=\n=", b"hell"),
            ("/+8=", &[0xff, 0xef]),
        ] {
            assert_eq!(decode(text).as_deref(), Ok(bytes), "{text:?}");
        }
        assert_eq!(canonical("aGVs\nbG8=\n").as_deref(), Ok("aGVsbG8="));
        // Where Go's decoder stops.
        for (text, at) in [
            ("aGVsbG8", 4),      // a partial quantum without its padding
            ("aGVsbA=", 7),      // "==" cut short
            ("aGVsbA=x", 6),     // the second "=" is another byte
            ("a===", 1),         // padding after one character
            ("aGVsbG8=aGVs", 8), // text after the padding
            ("hello!", 5),       // outside the alphabet
            ("aGVs bG8=", 4),    // spaces are not skipped
            ("a", 0),
            ("-_8=", 0), // the URL alphabet is not the standard one
        ] {
            assert_eq!(decode(text), Err(at), "{text:?}");
        }
        assert_eq!(
            canonical("hello!"),
            Err("illegal base64 data at input byte 5".into())
        );
    }
}
