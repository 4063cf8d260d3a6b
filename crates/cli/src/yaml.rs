//! Reading YAML and JSON documents with errors that name the file, the line and the field.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A problem with an input file, ready to show a user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    pub fn at(path: &Path, line: Option<usize>, message: impl std::fmt::Display) -> Self {
        match line {
            Some(line) => InputError(format!("{}:{line}: {message}", path.display())),
            None => InputError(format!("{}: {message}", path.display())),
        }
    }
}

/// One document of a multi-document YAML stream, with the line it starts on.
pub struct Document {
    pub value: Value,
    pub line: usize,
}

/// Split a YAML (or JSON) text into its documents. Empty documents are dropped.
pub fn documents(path: &Path, text: &str) -> Result<Vec<Document>, InputError> {
    let starts = document_start_lines(text);
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(de).map_err(|e| {
            let line = e.location().map(|l| l.line());
            InputError::at(path, line, yaml_message(&e))
        })?;
        if value.is_null() {
            continue;
        }
        out.push(Document {
            value,
            line: starts.get(i).copied().unwrap_or(1),
        });
    }
    Ok(out)
}

/// serde_yaml puts " at line L column C" into its messages; the line is already in front.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let Some(start) = text.find(" at line ") else {
        return text;
    };
    let rest = &text[start..];
    let end = rest
        .find(" column ")
        .map(|c| {
            let digits = rest[c + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            c + 8 + digits
        })
        .unwrap_or(rest.len());
    format!("{}{}", &text[..start], &rest[end..])
}

/// The 1-based line each document starts on: line 1, and the line after each `---`.
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") && line[3..].trim().is_empty() || line.starts_with("--- ") {
            if i == 0
                || text
                    .lines()
                    .take(i)
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                // A leading separator opens the first document rather than a second one.
                starts[0] = i + 2;
            } else {
                starts.push(i + 2);
            }
        }
    }
    starts
}

/// Deserialize a document into a typed value, naming the field that is wrong.
pub fn typed<T: DeserializeOwned>(path: &Path, doc: Document, what: &str) -> Result<T, InputError> {
    let line = doc.line;
    serde_path_to_error::deserialize(doc.value).map_err(|e| {
        let field = e.path().to_string();
        let inner = yaml_message(e.inner());
        if field == "." {
            InputError::at(path, Some(line), format!("{what}: {inner}"))
        } else {
            InputError::at(path, Some(line), format!("{what}: {field}: {inner}"))
        }
    })
}

pub fn read(path: &Path) -> Result<String, InputError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| InputError(format!("standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| InputError::at(path, None, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines() {
        assert_eq!(document_start_lines("a: 1\n---\nb: 2\n"), [1, 3]);
        assert_eq!(document_start_lines("---\na: 1\n---\nb: 2\n"), [2, 4]);
        assert_eq!(document_start_lines("# c\n---\na: 1\n"), [3]);
        assert_eq!(document_start_lines("a: |\n  ---x\n"), [1]);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = documents(Path::new("x.yaml"), "a: 1\n---\nb: 2\n  c: 3\n")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "x.yaml:4: mapping values are not allowed in this context"
        );
        let err = documents(Path::new("x.yaml"), "a: [1,\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("x.yaml:2: did not find expected node content"),
            "{err}"
        );
    }

    #[test]
    fn documents_keep_their_lines_and_skip_empty_ones() {
        let docs = documents(Path::new("x.yaml"), "---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].line, 5);
    }
}
