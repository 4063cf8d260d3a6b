//! CRI-format container log files, written and read the way containerd and the kubelet do.
//!
//! Every line of a container's log file is one *entry*:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout F log content
//! 2016-10-06T00:17:09.669794203Z stderr P first part of a long line
//! ```
//!
//! a timestamp (RFC3339 with nanoseconds, UTC), the stream (`stdout` or `stderr`), a tag (`F`
//! for a full line, `P` for a partial piece that the next entry of the same stream continues;
//! further tags may follow after `:` and are ignored) and the text, without its newline.
//!
//! * [`LogWriter`] writes one container instance's file (`<dir>/<restartCount>.log`) from the
//!   chunks read from the container's stdout/stderr pipes, and rotates it like the kubelet's
//!   container log manager (by default at [`DEFAULT_MAX_BYTES`], keeping [`DEFAULT_MAX_FILES`]
//!   files in all). Rotated files are *not* compressed (the kubelet gzips all but the newest).
//! * [`read_log`] renders a file for `kubectl logs` with the [`LogOptions`](crate::LogOptions)
//!   `since`, `tail_lines`, `timestamps` and `limit_bytes`; [`stream_log`] does the same as a
//!   [`LogStream`](crate::LogStream) and, with `follow`, keeps sending new entries (across
//!   rotations) until the container instance has exited.
//! * [`parse_line`] parses one entry.
//!
//! Like the kubelet, readers look at the current file only: rotated files are never shown, and
//! `previous` is the caller's business (it picks the previous instance's file).
//!
//! Output, as `kubectl logs` shows it: stdout and stderr interleaved in file order, each full
//! entry followed by a newline, partial pieces without one (so the pieces of a split line join
//! up again). Unlike the kubelet, which counts raw entries, a *line* here (for `tail_lines`,
//! `since` and the `timestamps` prefix) is a run of `P` pieces of one stream with the `F` entry
//! that ends it: `--tail` never starts in the middle of a line and a split line carries one
//! timestamp, that of its first piece.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;

mod reader;
mod writer;

pub use reader::{read_log, stream_log};
pub use writer::LogWriter;

/// The kubelet's default `containerLogMaxSize` (10Mi): a file is rotated before it grows past it.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The kubelet's default `containerLogMaxFiles` (5): the current file and at most four rotated
/// ones.
pub const DEFAULT_MAX_FILES: usize = 5;

/// The longest text of one entry (containerd's default `max_container_log_line_size`, 16 KiB);
/// longer lines are split into `P` pieces of this size.
pub const MAX_PIECE_BYTES: usize = 16 * 1024;

/// How often a follower looks for new entries once it has read everything.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Which pipe of the container an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed entry of a CRI log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When the runtime read the text from the pipe.
    pub time: Timestamp,
    pub stream: Stream,
    /// Tag `P`: the next entry of the same stream continues this line.
    pub partial: bool,
    /// The text, without the entry's newline (a `\r` before it is text).
    pub text: &'a [u8],
}

impl Entry<'_> {
    /// [`time`](Self::time) as a `SystemTime`.
    pub fn system_time(&self) -> SystemTime {
        SystemTime::from(self.time)
    }
}

/// Errors of reading CRI log files.
#[derive(Debug, thiserror::Error)]
pub enum CriLogError {
    #[error("failed to open log file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },

    #[error("failed to read log file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// A line that is not a CRI log entry (only [`parse_line`] returns it; readers skip such
    /// lines with a warning, as the kubelet does).
    #[error("malformed CRI log line: {reason}")]
    Malformed { reason: String },
}

impl CriLogError {
    /// Whether the log file does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            CriLogError::Open { source, .. } | CriLogError::Read { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
            }
            CriLogError::Malformed { .. } => false,
        }
    }
}

fn malformed(reason: impl Into<String>) -> CriLogError {
    CriLogError::Malformed {
        reason: reason.into(),
    }
}

/// Parses one entry, with or without its trailing newline. Timestamps are parsed leniently, as
/// the kubelet does: any RFC3339 time with an offset, with up to nine fractional digits
/// (containerd itself trims trailing zeros).
pub fn parse_line(line: &[u8]) -> Result<Entry<'_>, CriLogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (time, rest) = split_field(line).ok_or_else(|| malformed("timestamp is not found"))?;
    let time = jiff::fmt::temporal::DateTimeParser::new()
        .parse_timestamp(time)
        .map_err(|e| {
            malformed(format!(
                "unexpected timestamp {:?}: {e}",
                String::from_utf8_lossy(time)
            ))
        })?;
    let (stream, rest) = split_field(rest).ok_or_else(|| malformed("stream type is not found"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(malformed(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    // The text may be missing altogether after the tag (an empty line written without the
    // delimiter); accept that as empty text.
    let (tag, text) = split_field(rest).unwrap_or((rest, &[]));
    if tag.is_empty() {
        return Err(malformed("log tag is not found"));
    }
    let partial = tag.split(|&b| b == b':').next() == Some(b"P");
    Ok(Entry {
        time,
        stream,
        partial,
        text,
    })
}

/// Splits at the first space: (before, after).
fn split_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

/// `2026-12-04T20:52:02.123456789Z`: UTC with exactly nine fractional digits (the kubelet's
/// `RFC3339NanoFixed`), as written in files and in the `timestamps` prefix.
pub fn format_timestamp(time: Timestamp) -> String {
    let mut out = String::with_capacity(30);
    // Printing into a String cannot fail.
    let _ = PRINTER.print_timestamp(&time, &mut out);
    out
}

/// Appends [`format_timestamp`]'s text.
fn append_timestamp(time: Timestamp, out: &mut Vec<u8>) {
    // Printing into a Vec cannot fail.
    let _ = PRINTER.print_timestamp(&time, out);
}

static PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(9));

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_full_and_partial_entries() {
        let e = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(e.time, ts("2016-10-06T00:17:09.669794202Z"));
        assert_eq!(e.stream, Stream::Stdout);
        assert!(!e.partial);
        assert_eq!(e.text, b"log content 1");

        let e = parse_line(b"2016-10-06T00:17:09.669794203Z stderr P  two  spaces ").unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert!(e.partial);
        assert_eq!(e.text, b" two  spaces ");

        // Further tags after ':' are ignored; only the first decides.
        let e = parse_line(b"2016-10-06T00:17:09Z stdout P:x:y text").unwrap();
        assert!(e.partial);
        let e = parse_line(b"2016-10-06T00:17:09Z stdout F:P text").unwrap();
        assert!(!e.partial);
    }

    #[test]
    fn parses_empty_text_and_keeps_carriage_returns() {
        let e = parse_line(b"2016-10-06T00:17:09.000000000Z stdout F \n").unwrap();
        assert_eq!(e.text, b"");
        let e = parse_line(b"2016-10-06T00:17:09.000000000Z stdout F").unwrap();
        assert_eq!(e.text, b"");
        assert!(!e.partial);
        let e = parse_line(b"2016-10-06T00:17:09.000000000Z stdout F dos\r\n").unwrap();
        assert_eq!(e.text, b"dos\r");
        // Only one newline is the entry's own.
        let e = parse_line(b"2016-10-06T00:17:09.000000000Z stdout F a\n\n").unwrap();
        assert_eq!(e.text, b"a\n");
    }

    #[test]
    fn parses_lenient_timestamps() {
        // containerd's RFC3339Nano trims trailing zeros; other offsets are converted.
        let e = parse_line(b"2016-10-06T00:17:09.6697942Z stdout F x").unwrap();
        assert_eq!(e.time, ts("2016-10-06T00:17:09.669794200Z"));
        let e = parse_line(b"2016-10-06T02:17:09+02:00 stdout F x").unwrap();
        assert_eq!(e.time, ts("2016-10-06T00:17:09Z"));
        assert_eq!(
            e.system_time(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_475_713_029)
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            &b""[..],
            b"no-delimiters",
            b"yesterday stdout F x",
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout",
            b"2016-10-06T00:17:09Z stdout ",
            b"2016-10-06T00:17:09Z stdout  text",
            b"2016-10-06T00:17:09 stdout F x", // no offset: not an instant
        ] {
            let err = parse_line(bad).unwrap_err();
            assert!(
                matches!(err, CriLogError::Malformed { .. }),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(!err.is_not_found());
        }
        let err = parse_line(b"2016-10-06T00:17:09Z stdin F x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed CRI log line: unexpected stream type \"stdin\""
        );
    }

    #[test]
    fn formats_fixed_nanoseconds() {
        assert_eq!(
            format_timestamp(ts("2026-12-04T20:52:02.123456789Z")),
            "2026-12-04T20:52:02.123456789Z"
        );
        assert_eq!(
            format_timestamp(ts("2026-12-04T20:52:02Z")),
            "2026-12-04T20:52:02.000000000Z"
        );
        assert_eq!(
            format_timestamp(ts("2026-12-04T21:52:02.5+01:00")),
            "2026-12-04T20:52:02.500000000Z"
        );
        assert_eq!(
            format_timestamp(Timestamp::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn round_trips_through_the_format() {
        let time = ts("2026-12-04T20:52:02.000000001Z");
        for (stream, partial, text) in [
            (Stream::Stdout, false, &b"hello world"[..]),
            (Stream::Stderr, true, b""),
            (Stream::Stdout, false, b"tab\tand \xff bytes\r"),
        ] {
            let line = [
                format_timestamp(time).as_bytes(),
                b" ",
                stream.as_str().as_bytes(),
                if partial { b" P " } else { b" F " },
                text,
                b"\n",
            ]
            .concat();
            let e = parse_line(&line).unwrap();
            assert_eq!(
                e,
                Entry {
                    time,
                    stream,
                    partial,
                    text
                }
            );
        }
    }
}
