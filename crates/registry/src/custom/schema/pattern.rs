//! Go's `regexp` (RE2) patterns on the `regex` crate. The syntax is the same; the difference
//! that changes results is that Go's Perl classes and word boundary are ASCII-only (`\d` is
//! `[0-9]`) where the `regex` crate's are Unicode-aware, so those escapes are rewritten to
//! their ASCII forms before compiling.

use regex::Regex;

/// Compiles a schema `pattern` with Go's meaning.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&ascii_classes(pattern))
}

/// Rewrites `\d \D \w \W \s \S \b \B` to their ASCII forms, leaving other escapes (and an
/// escaped backslash) alone.
fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push(c);
            break;
        };
        match next {
            'd' => out.push_str("[0-9]"),
            'D' => out.push_str("[^0-9]"),
            'w' => out.push_str("[0-9A-Za-z_]"),
            'W' => out.push_str("[^0-9A-Za-z_]"),
            's' => out.push_str(r"[\t\n\f\r ]"),
            'S' => out.push_str(r"[^\t\n\f\r ]"),
            'b' => out.push_str(r"(?-u:\b)"),
            'B' => out.push_str(r"(?-u:\B)"),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = compile(r"^\d+$").expect("compiles");
        assert!(digits.is_match("123"));
        assert!(
            !digits.is_match("١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        let word = compile(r"^[\w.-]+\b$").expect("compiles");
        assert!(word.is_match("a_b.c-d"));
        assert!(!word.is_match("é"));
        let escaped = compile(r"^\\d$").expect("compiles");
        assert!(escaped.is_match(r"\d"));
        let spaces = compile(r"^\S+\s\S+$").expect("compiles");
        assert!(spaces.is_match("a b"));
        assert!(
            !spaces.is_match("a\u{a0}b"),
            "a no-break space is not \\s in Go"
        );
    }
}
