//! Go's `strconv.Quote` (`%q`), which upstream's messages (kube-apiserver's, the kubelet's, RBAC's)
//! are built from: one implementation for every message this project words as Go does.

/// Go's `strconv.Quote` (`%q`): printable characters kept, the rest escaped. Printability is
/// Go's `IsPrint` approximated: controls, non-ASCII spaces, format and private-use characters are
/// escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii() && (c < ' ' || c == '\u{7f}') => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if !c.is_ascii() && !printable(c) => {
                if u32::from(c) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    out.push_str(&format!("\\U{:08x}", u32::from(c)));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn printable(c: char) -> bool {
    let n = u32::from(c);
    !(c.is_control()
        || c.is_whitespace()
        || matches!(n,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xE0001 | 0xE0020..=0xE007F
            | 0xF0000..=0x10FFFF))
}
