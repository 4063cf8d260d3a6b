//! Label and field selectors, as the API server reads them from the `labelSelector=` and
//! `fieldSelector=` query parameters (and, for labels, from a `metav1.LabelSelector` in an
//! object such as a Deployment's `spec.selector`).
//!
//! The grammar, the validation and the error texts follow apimachinery's `labels` and `fields`
//! packages, so kubectl shows the same `Error from server (BadRequest): …` a real cluster would.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as TypedLabelSelector;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    /// The message for the 400 BadRequest Status.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> SelectorError {
    SelectorError::Invalid(message.into())
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One term of a label selector: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    /// Sorted and without duplicates, like upstream's `sets.String`.
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::Equals | Op::DoubleEquals | Op::In => value.is_some_and(has),
            Op::NotEquals | Op::NotIn => !value.is_some_and(has),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(actual), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                match (actual.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(a), Ok(b)) if self.op == Op::GreaterThan => a > b,
                    (Ok(a), Ok(b)) => a < b,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`: `a=b`, `a in (x,y)`, `!a`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.op {
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
            Op::Equals => write!(f, "{}={values}", self.key),
            Op::DoubleEquals => write!(f, "{}=={values}", self.key),
            Op::NotEquals => write!(f, "{}!={values}", self.key),
            Op::GreaterThan => write!(f, "{}>{values}", self.key),
            Op::LessThan => write!(f, "{}<{values}", self.key),
            Op::In => write!(f, "{} in ({values})", self.key),
            Op::NotIn => write!(f, "{} notin ({values})", self.key),
        }
    }
}

/// A parsed label selector: an AND of requirements, sorted by key. The empty selector selects
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector=` syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k`, `!k`, `k>5`, `k<5`, with commas between terms. `""` selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: lex(s),
            position: 0,
        };
        let requirements = parser.parse().map_err(invalid)?;
        Ok(Self::sorted(requirements))
    }

    /// Builds a selector from a `metav1.LabelSelector` (`{matchLabels, matchExpressions}`).
    /// `null`, a missing field and `{}` all select everything.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let object = match selector {
            Value::Null => return Ok(Self::default()),
            Value::Object(o) => o,
            other => return Err(invalid(format!("invalid label selector: {other}"))),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Some(value) = value.as_str() else {
                        return Err(invalid(format!(
                            "invalid label selector: matchLabels[{key}] must be a string"
                        )));
                    };
                    requirements.push(new_requirement(key, Op::Equals, vec![value.into()])?);
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "invalid label selector: matchLabels must be an object, not {other}"
                )));
            }
        }
        let expressions = match object.get("matchExpressions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(e)) => e.as_slice(),
            Some(other) => {
                return Err(invalid(format!(
                    "invalid label selector: matchExpressions must be a list, not {other}"
                )));
            }
        };
        for expression in expressions {
            let key = expression["key"].as_str().unwrap_or("");
            let op = expression_operator(expression["operator"].as_str().unwrap_or(""))?;
            let mut values = Vec::new();
            for v in expression["values"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
            {
                match v.as_str() {
                    Some(s) => values.push(s.to_string()),
                    None => {
                        return Err(invalid(format!(
                            "invalid label selector: values of {key:?} must be strings"
                        )));
                    }
                }
            }
            values.sort();
            values.dedup();
            requirements.push(new_requirement(key, op, values)?);
        }
        Ok(Self::sorted(requirements))
    }

    /// Builds a selector from k8s-openapi's typed `metav1.LabelSelector`, as [`from_json`]
    /// does from its JSON.
    ///
    /// [`from_json`]: Self::from_json
    pub fn from_typed(selector: &TypedLabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(new_requirement(key, Op::Equals, vec![value.clone()])?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let op = expression_operator(&expression.operator)?;
            let mut values = expression.values.clone().unwrap_or_default();
            values.sort();
            values.dedup();
            requirements.push(new_requirement(&expression.key, op, values)?);
        }
        Ok(Self::sorted(requirements))
    }

    fn sorted(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// Whether an object with these `metadata.labels` is selected (`None`: no labels).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A `matchExpressions` operator (the set-based ones only: `matchExpressions` has no `=`).
fn expression_operator(operator: &str) -> Result<Op, SelectorError> {
    match operator {
        "In" => Ok(Op::In),
        "NotIn" => Ok(Op::NotIn),
        "Exists" => Ok(Op::Exists),
        "DoesNotExist" => Ok(Op::DoesNotExist),
        _ => Err(invalid(format!(
            "{operator:?} is not a valid label selector operator"
        ))),
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string upstream prints (`app=web,tier in (a,b)`); `""` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// --- lexer -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    Identifier,
    OpenPar,
    ClosedPar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
}

/// The token literals; an identifier spelled like a keyword is that keyword.
fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        "(" => Tok::OpenPar,
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::Not,
        "=" => Tok::Equals,
        "==" => Tok::DoubleEquals,
        "!=" => Tok::NotEquals,
        ">" => Tok::GreaterThan,
        "<" => Tok::LessThan,
        "in" => Tok::In,
        "notin" => Tok::NotIn,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits the selector into tokens, ending with [`Tok::End`] (whose literal is `""`).
fn lex(s: &str) -> Vec<(Tok, String)> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            tokens.push((Tok::End, String::new()));
            return tokens;
        }
        let start = i;
        if is_special(bytes[i]) {
            // The longest run of symbols that is still an operator: `!=`, `==`, `=`, `(`, …
            // Every single symbol is one, so this always yields a token.
            let mut best = (Tok::End, start);
            while i < bytes.len() && is_special(bytes[i]) {
                i += 1;
                match keyword(&s[start..i]) {
                    Some(t) => best = (t, i),
                    None => break,
                }
            }
            i = best.1;
            tokens.push((best.0, s[start..i].to_string()));
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_space(bytes[i]) {
                i += 1;
            }
            let word = &s[start..i];
            let tok = match keyword(word) {
                Some(t @ (Tok::In | Tok::NotIn)) => t,
                _ => Tok::Identifier,
            };
            tokens.push((tok, word.to_string()));
        }
    }
}

// --- parser ----------------------------------------------------------------------------------

/// Where the parser is: `in`/`notin` are operators after a key but plain words as values
/// (`x in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    position: usize,
}

impl Parser {
    fn token(&self, context: Context) -> (Tok, String) {
        let (tok, lit) = &self.tokens[self.position.min(self.tokens.len() - 1)];
        let tok = match (context, tok) {
            (Context::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
            _ => *tok,
        };
        (tok, lit.clone())
    }

    fn lookahead(&self, context: Context) -> (Tok, String) {
        self.token(context)
    }

    fn consume(&mut self, context: Context) -> (Tok, String) {
        let t = self.token(context);
        self.position += 1;
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Tok::Identifier | Tok::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Tok::Identifier && t2 != Tok::Not {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(op) = inferred {
            return new_requirement(&key, op, Vec::new()).map_err(message);
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(&key, op, values).map_err(message)
    }

    /// The key, and `Exists`/`DoesNotExist` when no binary operator follows.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let (mut tok, mut lit) = self.consume(Context::Values);
        let negated = tok == Tok::Not;
        if negated {
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        validate_key(&lit, "<nil>")?;
        if negated {
            return Ok((lit, Some(Op::DoesNotExist)));
        }
        let (next, _) = self.lookahead(Context::Values);
        let exists = matches!(next, Tok::End | Tok::Comma);
        Ok((lit, exists.then_some(Op::Exists)))
    }

    fn operator(&mut self) -> Result<Op, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Tok::In => Op::In,
            Tok::NotIn => Op::NotIn,
            Tok::Equals => Op::Equals,
            Tok::DoubleEquals => Op::DoubleEquals,
            Tok::NotEquals => Op::NotEquals,
            Tok::GreaterThan => Op::GreaterThan,
            Tok::LessThan => Op::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    /// `(a,b,c)`; empty members are the empty value: `()` and `(a,)` both select `""`.
    fn values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        let mut values = match tok {
            Tok::Identifier | Tok::Comma => {
                let values = self.identifiers()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                values
            }
            Tok::ClosedPar => {
                self.consume(Context::Values);
                vec![String::new()]
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        };
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Tok::Identifier => {
                    values.push(lit);
                    let (next, next_lit) = self.lookahead(Context::Values);
                    match next {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_lit}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Tok::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Tok::Comma => values.push(String::new()),
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; nothing at all means `""`.
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(Context::Values).0, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume(Context::Values) {
            (Tok::Identifier, lit) => Ok(vec![lit]),
            (_, lit) => Err(format!("found '{lit}', expected: identifier")),
        }
    }
}

fn message(e: SelectorError) -> String {
    let SelectorError::Invalid(m) = e;
    m
}

/// Upstream's `NewRequirement`: checks the key, the number of values for the operator and each
/// value's syntax, and reports every problem at once.
fn new_requirement(key: &str, op: Op, values: Vec<String>) -> Result<Requirement, SelectorError> {
    let mut errors = Vec::new();
    if let Err(e) = validate_key(key, "key") {
        errors.push(e);
    }
    let list = || {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        format!("[]string{{{}}}", quoted.join(", "))
    };
    match op {
        Op::In | Op::NotIn if values.is_empty() => errors.push(field_invalid(
            "values",
            &list(),
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Op::Equals | Op::DoubleEquals | Op::NotEquals if values.len() != 1 => {
            errors.push(field_invalid(
                "values",
                &list(),
                "exact-match compatibility requires one single value",
            ))
        }
        Op::Exists | Op::DoesNotExist if !values.is_empty() => errors.push(field_invalid(
            "values",
            &list(),
            "values set must be empty for exists and does not exist",
        )),
        Op::GreaterThan | Op::LessThan => {
            if values.len() != 1 {
                errors.push(field_invalid(
                    "values",
                    &list(),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errors.push(field_invalid(
                        &format!("values[{i}]"),
                        &format!("{v:?}"),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let problems = label_value_errors(v);
        if !problems.is_empty() {
            errors.push(field_invalid(
                &format!("values[{i}][{key}]"),
                &format!("{v:?}"),
                &problems.join("; "),
            ));
        }
    }
    match errors.len() {
        0 => Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        }),
        1 => Err(invalid(errors.remove(0))),
        _ => Err(invalid(format!("[{}]", errors.join(", ")))),
    }
}

/// apimachinery's `field.Invalid(path, value, detail).Error()`.
fn field_invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

fn validate_key(key: &str, path: &str) -> Result<(), String> {
    let problems = qualified_name_errors(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(field_invalid(
            path,
            &format!("{key:?}"),
            &problems.join("; "),
        ))
    }
}

// --- label syntax ----------------------------------------------------------------------------

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a key, and a non-empty value.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and
/// ending with `[a-z0-9]`.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-')
    })
}

/// Upstream's `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain of at most 253
/// characters, the name at most 63.
pub(crate) fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let name = match key.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errors.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns_subdomain(prefix) {
                    errors.push(format!("prefix part {DNS_SUBDOMAIN_MSG}"));
                }
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_string());
    }
    if !is_name_part(name) {
        errors.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errors
}

/// Upstream's `IsValidLabelValue`: empty, or at most 63 name characters.
pub(crate) fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_name_part(value) {
        errors.push(LABEL_VALUE_MSG.to_string());
    }
    errors
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    /// `!=` rather than `=`/`==`.
    negated: bool,
    source: Source,
}

/// A parsed field selector: an AND of `field=value` / `field!=value` terms over the fields the
/// resource supports. The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parse and check that every field is supported for this resource (group, plural).
    ///
    /// Terms are `f=v`, `f==v` or `f!=v`, separated by commas. In a value, `\,`, `\=` and `\\`
    /// stand for the character, as upstream has it (`\!` is also accepted, though `!` needs no
    /// escape); an unescaped `,` splits terms and an unescaped `=` is refused.
    pub fn parse(s: &str, group: &str, resource: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, raw)) = split_term(part) else {
                return Err(invalid(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push((field, op, unescape(raw)?));
        }
        // Like upstream, syntax errors in any term come before unsupported fields.
        let terms = terms
            .into_iter()
            .map(
                |(field, op, value)| match field_source(group, resource, field) {
                    Some(source) => Ok(FieldTerm {
                        field: field.to_string(),
                        value,
                        negated: op == "!=",
                        source,
                    }),
                    None => Err(invalid(format!("field label not supported: {field}"))),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { terms })
    }

    /// Whether the object (in Kubernetes JSON form) has every field as the selector wants.
    /// A missing string field reads as `""`, a missing boolean as `false` and a missing integer
    /// as `0`, the values upstream's typed objects would have.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(object, t.source);
            (actual == t.value) != t.negated
        })
    }

    /// If the selector pins metadata.name to one value, that value (lets the caller skip a
    /// scan). The caller must still apply [`FieldSelector::matches`] to the object it finds.
    pub fn name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == "metadata.name" && !t.negated)
            .map(|t| t.value.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first operator in the term splits it; the field name cannot be escaped.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    (0..term.len()).find_map(|i| {
        let rest = term.get(i..)?;
        ["!=", "==", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .map(|op| (&term[..i], op, &rest[op.len()..]))
    })
}

fn unescape(raw: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(e) => {
                    return Err(invalid(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(invalid(
                        "invalid field selector: invalid escape sequence: \\",
                    ));
                }
            },
            ',' | '=' => {
                return Err(invalid(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )));
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// How a selectable field is read from the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A string at this JSON pointer.
    Str(&'static str),
    /// A boolean, `"true"`/`"false"`, missing meaning false.
    Bool(&'static str),
    /// An integer, missing meaning 0.
    Int(&'static str),
    /// A pod's first IP: `status.podIP`, else `status.podIPs[0].ip`.
    PodIp,
    /// An event's `source.component`, else its `reportingComponent`.
    EventComponent,
}

const POD_FIELDS: &[(&str, Source)] = &[
    ("spec.nodeName", Source::Str("/spec/nodeName")),
    ("spec.restartPolicy", Source::Str("/spec/restartPolicy")),
    ("spec.schedulerName", Source::Str("/spec/schedulerName")),
    (
        "spec.serviceAccountName",
        Source::Str("/spec/serviceAccountName"),
    ),
    ("spec.hostNetwork", Source::Bool("/spec/hostNetwork")),
    ("status.phase", Source::Str("/status/phase")),
    ("status.podIP", Source::PodIp),
    (
        "status.nominatedNodeName",
        Source::Str("/status/nominatedNodeName"),
    ),
];

const EVENT_FIELDS: &[(&str, Source)] = &[
    ("involvedObject.kind", Source::Str("/involvedObject/kind")),
    (
        "involvedObject.namespace",
        Source::Str("/involvedObject/namespace"),
    ),
    ("involvedObject.name", Source::Str("/involvedObject/name")),
    ("involvedObject.uid", Source::Str("/involvedObject/uid")),
    (
        "involvedObject.apiVersion",
        Source::Str("/involvedObject/apiVersion"),
    ),
    (
        "involvedObject.resourceVersion",
        Source::Str("/involvedObject/resourceVersion"),
    ),
    (
        "involvedObject.fieldPath",
        Source::Str("/involvedObject/fieldPath"),
    ),
    ("reason", Source::Str("/reason")),
    ("reportingComponent", Source::Str("/reportingComponent")),
    ("source", Source::EventComponent),
    ("type", Source::Str("/type")),
];

/// The fields each resource can be selected by, beyond `metadata.name` and
/// `metadata.namespace`.
fn resource_fields(group: &str, resource: &str) -> &'static [(&'static str, Source)] {
    match (group, resource) {
        ("", "pods") => POD_FIELDS,
        ("", "events") => EVENT_FIELDS,
        ("", "nodes") => &[("spec.unschedulable", Source::Bool("/spec/unschedulable"))],
        ("", "namespaces") => &[("status.phase", Source::Str("/status/phase"))],
        ("", "secrets") => &[("type", Source::Str("/type"))],
        ("apps", "replicasets") => &[("status.replicas", Source::Int("/status/replicas"))],
        ("batch", "jobs") => &[("status.successful", Source::Int("/status/succeeded"))],
        _ => &[],
    }
}

fn field_source(group: &str, resource: &str, field: &str) -> Option<Source> {
    match field {
        "metadata.name" => Some(Source::Str("/metadata/name")),
        "metadata.namespace" => Some(Source::Str("/metadata/namespace")),
        _ => resource_fields(group, resource)
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, source)| *source),
    }
}

/// The field's value as a string.
fn field_value(object: &Value, source: Source) -> String {
    let text = |ptr: &str| match object.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match source {
        Source::Str(ptr) => text(ptr),
        Source::Bool(ptr) => object
            .pointer(ptr)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        Source::Int(ptr) => object
            .pointer(ptr)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        Source::PodIp => match text("/status/podIP") {
            ip if !ip.is_empty() => ip,
            _ => text("/status/podIPs/0/ip"),
        },
        Source::EventComponent => match text("/source/component") {
            c if !c.is_empty() => c,
            _ => text("/reportingComponent"),
        },
    }
}

#[cfg(test)]
mod tests;
