//! Fargate selector patterns: `*` matches none, one or more characters, `?` exactly one character,
//! and every other character stands for itself (no escapes, no classes, no regular expressions).

/// A compiled selector pattern. Literal patterns, the common case, compare as plain strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Literal(String),
    Glob(String),
}

impl Pattern {
    pub fn new(text: &str) -> Self {
        if text.contains(['*', '?']) {
            Pattern::Glob(text.to_string())
        } else {
            Pattern::Literal(text.to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Literal(s) | Pattern::Glob(s) => s,
        }
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, Pattern::Literal(_))
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Literal(s) => s == text,
            Pattern::Glob(p) => glob_match(p, text),
        }
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice, never
/// exponential. Works on characters, so `?` consumes one whole UTF-8 character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: &[u8] = pattern.as_bytes();
    let t: &[u8] = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was in the pattern, and where in the text it was retried from.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ti += char_len(t[ti]);
            continue;
        }
        if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
            continue;
        }
        match star {
            Some((star_pi, star_ti)) => {
                // Let the star swallow one more character and retry after it.
                let next = star_ti + char_len(t[star_ti]);
                star = Some((star_pi, next));
                pi = star_pi + 1;
                ti = next;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Length of the UTF-8 character starting with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        // A continuation byte never leads a character when we step by characters; advance by one.
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_wildcards() {
        assert!(glob_match("prod", "prod"));
        assert!(!glob_match("prod", "production"));
        assert!(glob_match("prod*", "prod"));
        assert!(glob_match("prod*", "production"));
        assert!(glob_match("*-staging", "team-a-staging"));
        assert!(!glob_match("*-staging", "team-a-stagingx"));
        assert!(glob_match("team-?", "team-a"));
        assert!(!glob_match("team-?", "team-"));
        assert!(!glob_match("team-?", "team-ab"));
        assert!(glob_match("*", ""));
        assert!(glob_match("**", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("?*", "x"));
        assert!(!glob_match("?*", ""));
        assert!(glob_match("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!glob_match("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("?", "é"));
        assert!(!glob_match("??", "é"));
    }

    #[test]
    fn other_pattern_syntax_is_literal() {
        assert!(glob_match("a.b", "a.b"));
        assert!(!glob_match("a.b", "axb"));
        assert!(!glob_match("[ab]", "a"));
        assert!(glob_match("[ab]", "[ab]"));
        assert!(!glob_match("prod.*", "production"));
    }

    #[test]
    fn pattern_kinds() {
        assert!(Pattern::new("default").is_literal());
        assert!(!Pattern::new("team-*").is_literal());
        assert!(Pattern::new("team-*").matches("team-x"));
        assert_eq!(Pattern::new("a?").as_str(), "a?");
    }
}
