//! Reading a CRI log file for `kubectl logs`, once or following it.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

use super::writer::rotated_files;
use super::{CriLogError, Entry, POLL_INTERVAL, append_timestamp, parse_line};
use crate::{LogOptions, LogStream};

/// Bytes asked of the file per `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes of the file a streaming reader renders per blocking step (and so, roughly, per chunk
/// it sends).
const STEP_BYTES: usize = 256 * 1024;

/// Chunks a [`stream_log`] stream holds before the reader waits for the receiver.
const CHANNEL_CAPACITY: usize = 4;

/// Reads the log file at `path` (the current file only, as the kubelet does) and renders it
/// with `options`, except `follow` and `previous`:
///
/// * `since`: only lines whose first entry was written at or after it;
/// * `tail_lines`: only the last N lines (after `since`); a line is a run of `P` pieces with the
///   `F` entry of the same stream that ends it;
/// * `timestamps`: each line prefixed with the time of its first entry and a space,
///   `2026-12-04T20:52:02.123456789Z `;
/// * `limit_bytes`: the output cut after that many bytes.
///
/// Stdout and stderr come interleaved in file order. Malformed lines are skipped with a
/// warning; an incomplete last entry (no newline yet) is shown as it is.
pub fn read_log(path: &Path, options: &LogOptions) -> Result<Vec<u8>, CriLogError> {
    let mut reader = Reader::open(path.to_path_buf(), options, false)?;
    let mut out = Vec::new();
    while reader.advance(&mut out, usize::MAX)? {}
    reader.finish(&mut out);
    Ok(out)
}

/// [`read_log`] as a stream, in chunks. Must be called within a Tokio runtime: a task reads the
/// file (its file I/O on the blocking pool) and sends.
///
/// Without `options.follow` the stream closes after what is in the file. With it, the task then
/// polls the file every [`POLL_INTERVAL`](super::POLL_INTERVAL) and sends new entries until
/// `done` is true (the container instance has exited and its output was written; a dropped
/// sender counts as true) *and* the file has been read to its end, or until the receiver is
/// dropped or `limit_bytes` is reached. When the writer rotates the file, the follower reads the
/// rest of the old file, then the files rotated after it (those still kept), then the new file
/// from its start. If the file does not exist yet, a follower waits for it.
///
/// Errors (the file cannot be opened or read) end the stream early, with a warning in the log.
pub fn stream_log(path: PathBuf, options: LogOptions, done: watch::Receiver<bool>) -> LogStream {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(run(path, options, done, tx));
    rx
}

async fn run(
    path: PathBuf,
    options: LogOptions,
    mut done: watch::Receiver<bool>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let follow = options.follow;
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || Reader::open(path, &options, follow)).await
    };
    let mut reader = match opened {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot stream container log");
            return;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "container log reader failed");
            return;
        }
    };
    let mut sender_gone = false;
    loop {
        // Looked at before reading, so that everything written before `done` was set is read.
        let finished = !follow || sender_gone || *done.borrow_and_update();
        loop {
            let step = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let result = reader.advance(&mut out, STEP_BYTES);
                (reader, result.map(|more| (more, out)))
            })
            .await;
            let more = match step {
                Ok((r, Ok((more, out)))) => {
                    reader = r;
                    if !out.is_empty() && tx.send(out).await.is_err() {
                        return;
                    }
                    more
                }
                Ok((_, Err(e))) => {
                    tracing::warn!(error = %e, "stopped streaming container log");
                    return;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "container log reader failed");
                    return;
                }
            };
            if reader.exhausted() {
                return;
            }
            if !more {
                break;
            }
        }
        if finished {
            let mut out = Vec::new();
            reader.finish(&mut out);
            if !out.is_empty() {
                let _ = tx.send(out).await;
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            changed = done.changed() => {
                if changed.is_err() {
                    sender_gone = true;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

/// Which lines are shown, and how: the options applied entry by entry.
#[derive(Debug)]
struct Selector {
    since: Option<SystemTime>,
    timestamps: bool,
    /// Lines whose first entry has a lower ordinal are not shown (`tail_lines`).
    cutoff: u64,
    /// Ordinal of the next entry (counting well-formed entries from the start of the file).
    ordinal: u64,
    /// Per stream, while a line is open (its last entry was `P`): whether it is shown.
    open: [Option<bool>; 2],
    /// Bytes left under `limit_bytes`.
    remaining: Option<u64>,
}

impl Selector {
    fn new(options: &LogOptions) -> Selector {
        Selector {
            since: options.since,
            timestamps: options.timestamps,
            cutoff: 0,
            ordinal: 0,
            open: [None; 2],
            remaining: options.limit_bytes,
        }
    }

    fn push(&mut self, e: &Entry<'_>, out: &mut Vec<u8>) {
        let stream = e.stream.index();
        let (shown, starts) = match self.open[stream] {
            Some(shown) => (shown, false),
            None => (
                self.ordinal >= self.cutoff && self.since.is_none_or(|s| e.system_time() >= s),
                true,
            ),
        };
        self.ordinal += 1;
        self.open[stream] = e.partial.then_some(shown);
        if !shown || self.exhausted() {
            return;
        }
        let start = out.len();
        if starts && self.timestamps {
            append_timestamp(e.time, out);
            out.push(b' ');
        }
        out.extend_from_slice(e.text);
        if !e.partial {
            out.push(b'\n');
        }
        if let Some(left) = &mut self.remaining {
            let added = (out.len() - start) as u64;
            let keep = added.min(*left);
            out.truncate(start + keep as usize);
            *left -= keep;
        }
    }

    fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// The first pass for `tail_lines`: finds the ordinal of the first entry of the last N lines.
struct TailCounter {
    n: usize,
    since: Option<SystemTime>,
    /// Ordinals of the last (up to) N line starts.
    starts: VecDeque<u64>,
    ordinal: u64,
    open: [bool; 2],
}

impl TailCounter {
    fn new(n: u64, since: Option<SystemTime>) -> TailCounter {
        TailCounter {
            n: usize::try_from(n).unwrap_or(usize::MAX),
            since,
            starts: VecDeque::new(),
            ordinal: 0,
            open: [false; 2],
        }
    }

    fn push(&mut self, e: &Entry<'_>) {
        let stream = e.stream.index();
        if !self.open[stream] && self.since.is_none_or(|s| e.system_time() >= s) {
            self.starts.push_back(self.ordinal);
            if self.starts.len() > self.n {
                self.starts.pop_front();
            }
        }
        self.open[stream] = e.partial;
        self.ordinal += 1;
    }

    fn cutoff(&self) -> u64 {
        if self.n == 0 {
            self.ordinal
        } else if self.starts.len() == self.n {
            self.starts.front().copied().unwrap_or(0)
        } else {
            0
        }
    }
}

/// A reader of one container instance's log, following it across rotations.
struct Reader {
    path: PathBuf,
    /// The file being read with its (device, inode); `None` while a follower waits for it.
    file: Option<(File, (u64, u64))>,
    /// Bytes read but not rendered: the start of an entry whose newline is not there yet.
    pending: Vec<u8>,
    selector: Selector,
    follow: bool,
}

impl Reader {
    /// Opens the file and, for `tail_lines`, reads it once to find where the tail starts.
    fn open(path: PathBuf, options: &LogOptions, follow: bool) -> Result<Reader, CriLogError> {
        let mut selector = Selector::new(options);
        let file = match File::open(&path) {
            Ok(mut file) => {
                let id = identity(&file.metadata().map_err(|e| read_error(&path, e))?);
                if let Some(n) = options.tail_lines {
                    // A follower renders an incomplete last entry later, as a new line.
                    selector.cutoff = count_tail(&mut file, &path, n, options.since, !follow)?;
                    file.seek(SeekFrom::Start(0))
                        .map_err(|e| read_error(&path, e))?;
                }
                Some((file, id))
            }
            Err(e) if follow && e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(CriLogError::Open { path, source }),
        };
        Ok(Reader {
            path,
            file,
            pending: Vec::new(),
            selector,
            follow,
        })
    }

    fn exhausted(&self) -> bool {
        self.selector.exhausted()
    }

    /// Renders up to about `budget` more bytes of the file into `out`; a follower at the end of
    /// a file that was rotated moves on to the next one. Returns whether there may be more to
    /// read right away.
    fn advance(&mut self, out: &mut Vec<u8>, budget: usize) -> Result<bool, CriLogError> {
        if self.step(out, budget)? {
            return Ok(true);
        }
        if !self.follow || self.exhausted() {
            return Ok(false);
        }
        let Some(next) = self.successor()? else {
            return Ok(false);
        };
        // The writer has moved on, so the old file is complete: read what it got since.
        self.step(out, usize::MAX)?;
        if self.exhausted() {
            return Ok(false);
        }
        let file = match File::open(&next) {
            Ok(file) => file,
            // Deleted in between (retention): look again next time.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(CriLogError::Open { path: next, source }),
        };
        let id = identity(&file.metadata().map_err(|e| read_error(&next, e))?);
        if !self.pending.is_empty() {
            tracing::warn!(path = %self.path.display(), "incomplete entry at the end of a rotated container log");
            self.pending.clear();
        }
        self.file = Some((file, id));
        Ok(true)
    }

    /// Reads and renders until the end of the current file, `budget` bytes or `limit_bytes`.
    /// Returns true when it stopped for the budget.
    fn step(&mut self, out: &mut Vec<u8>, budget: usize) -> Result<bool, CriLogError> {
        let Some((file, _)) = self.file.as_mut() else {
            return Ok(false);
        };
        let mut read = 0usize;
        while !self.selector.exhausted() {
            if read >= budget {
                return Ok(true);
            }
            let n = read_some(file, &mut self.pending).map_err(|e| read_error(&self.path, e))?;
            if n == 0 {
                return Ok(false);
            }
            read += n;
            let used = lines(&self.pending, false, |line| {
                if let Some(e) = parse_or_warn(line, &self.path) {
                    self.selector.push(&e, out);
                }
                !self.selector.exhausted()
            });
            self.pending.drain(..used);
        }
        Ok(false)
    }

    /// Renders an incomplete last entry (the writer is gone: it will not be completed).
    fn finish(&mut self, out: &mut Vec<u8>) {
        lines(&self.pending, true, |line| {
            if let Some(e) = parse_or_warn(line, &self.path) {
                self.selector.push(&e, out);
            }
            !self.selector.exhausted()
        });
        self.pending.clear();
    }

    /// When the file being read is no longer the one at `path` (rotated), the file to read
    /// next: the file rotated right after it if that is still kept, else the current one. While
    /// waiting for the file to appear, the file once it exists.
    fn successor(&self) -> Result<Option<PathBuf>, CriLogError> {
        let current = match fs::metadata(&self.path) {
            Ok(m) => Some(identity(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(read_error(&self.path, e)),
        };
        let Some((_, id)) = &self.file else {
            return Ok(current.map(|_| self.path.clone()));
        };
        if current == Some(*id) {
            return Ok(None);
        }
        let rotated = rotated_files(&self.path).unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to list rotated container logs");
            Vec::new()
        });
        let after = rotated
            .iter()
            .position(|p| fs::metadata(p).is_ok_and(|m| identity(&m) == *id))
            .and_then(|i| rotated.get(i + 1));
        Ok(match after {
            Some(p) => Some(p.clone()),
            None => current.map(|_| self.path.clone()),
        })
    }
}

/// The first pass of `tail_lines`: the ordinal of the first entry to show.
fn count_tail(
    file: &mut File,
    path: &Path,
    n: u64,
    since: Option<SystemTime>,
    incomplete_too: bool,
) -> Result<u64, CriLogError> {
    let mut counter = TailCounter::new(n, since);
    let mut buf = Vec::new();
    loop {
        let got = read_some(file, &mut buf).map_err(|e| read_error(path, e))?;
        // Malformed lines are warned about in the second pass.
        let used = lines(&buf, got == 0 && incomplete_too, |line| {
            if let Ok(e) = parse_line(line) {
                counter.push(&e);
            }
            true
        });
        buf.drain(..used);
        if got == 0 {
            return Ok(counter.cutoff());
        }
    }
}

/// Calls `f` with each complete line at the front of `buf` (without its newline) and, with
/// `incomplete_too`, with the incomplete rest; stops when `f` returns false. Returns the number
/// of bytes used.
fn lines(buf: &[u8], incomplete_too: bool, mut f: impl FnMut(&[u8]) -> bool) -> usize {
    let mut used = 0;
    while used < buf.len() {
        let rest = &buf[used..];
        let (line, len) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], i + 1),
            None if incomplete_too => (rest, rest.len()),
            None => break,
        };
        used += len;
        if !f(line) {
            break;
        }
    }
    used
}

fn parse_or_warn<'a>(line: &'a [u8], path: &Path) -> Option<Entry<'a>> {
    match parse_line(line) {
        Ok(e) => Some(e),
        Err(e) => {
            let shown = String::from_utf8_lossy(&line[..line.len().min(200)]);
            tracing::warn!(path = %path.display(), error = %e, line = %shown, "skipping a malformed line of a container log");
            None
        }
    }
}

/// Appends up to [`READ_CHUNK`] bytes from `file` to `buf`; 0 at the end of the file.
fn read_some(file: &mut File, buf: &mut Vec<u8>) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + READ_CHUNK, 0);
    let result = loop {
        match file.read(&mut buf[old..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(old + result.as_ref().map_or(0, |n| *n));
    result
}

fn identity(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn read_error(path: &Path, source: io::Error) -> CriLogError {
    CriLogError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{LogWriter, Stream};
    use super::*;

    /// 2026-12-04T20:52:02Z
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_417_522)
    }

    fn at(ms: u64) -> SystemTime {
        t0() + Duration::from_millis(ms)
    }

    /// A CRI file from (milliseconds after t0, stream, tag, text).
    fn file(entries: &[(u64, &str, &str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut text = String::new();
        for (ms, stream, tag, t) in entries {
            let time = jiff::Timestamp::try_from(at(*ms)).unwrap();
            text.push_str(&format!(
                "{} {stream} {tag} {t}\n",
                super::super::format_timestamp(time)
            ));
        }
        fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn read(path: &Path, options: LogOptions) -> String {
        String::from_utf8(read_log(path, &options).unwrap()).unwrap()
    }

    fn tail(n: u64) -> LogOptions {
        LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        }
    }

    /// Lines split in pieces, and a stderr line in the middle of a stdout one.
    fn pieces() -> (tempfile::TempDir, PathBuf) {
        file(&[
            (0, "stdout", "P", "a1"),
            (1, "stdout", "P", "a2"),
            (2, "stdout", "F", "a3"),
            (3, "stdout", "F", "b"),
            (4, "stdout", "P", "c1"),
            (5, "stderr", "F", "err"),
            (6, "stdout", "F", "c2"),
            (7, "stdout", "F", "d"),
        ])
    }

    #[test]
    fn renders_both_streams_in_file_order() {
        let (_dir, path) = file(&[
            (0, "stdout", "F", "out 1"),
            (1, "stderr", "F", "err 1"),
            (2, "stdout", "F", ""),
            (3, "stdout", "F", "dos\r"),
        ]);
        assert_eq!(
            read(&path, LogOptions::default()),
            "out 1\nerr 1\n\ndos\r\n"
        );
    }

    #[test]
    fn joins_partial_pieces() {
        let (_dir, path) = pieces();
        // As the kubelet shows it: the pieces in file order, newlines after full entries only.
        assert_eq!(
            read(&path, LogOptions::default()),
            "a1a2a3\nb\nc1err\nc2\nd\n"
        );
    }

    #[test]
    fn tails_whole_lines() {
        let (_dir, path) = pieces();
        assert_eq!(read(&path, tail(0)), "");
        assert_eq!(read(&path, tail(1)), "d\n");
        // The stderr line started after "c1c2": the tail starts there, without "c2".
        assert_eq!(read(&path, tail(2)), "err\nd\n");
        assert_eq!(read(&path, tail(3)), "c1err\nc2\nd\n");
        assert_eq!(read(&path, tail(5)), "a1a2a3\nb\nc1err\nc2\nd\n");
        assert_eq!(read(&path, tail(100)), "a1a2a3\nb\nc1err\nc2\nd\n");

        let (_dir, path) = file(&[
            (0, "stdout", "P", "a1"),
            (1, "stdout", "F", "a2"),
            (2, "stdout", "P", "b1"),
            (3, "stdout", "P", "b2"),
            (4, "stdout", "F", "b3"),
        ]);
        assert_eq!(read(&path, tail(1)), "b1b2b3\n");
        assert_eq!(read(&path, tail(2)), "a1a2\nb1b2b3\n");
    }

    #[test]
    fn selects_lines_since_their_first_piece() {
        let (_dir, path) = pieces();
        let since = |ms| LogOptions {
            since: Some(at(ms)),
            ..LogOptions::default()
        };
        assert_eq!(read(&path, since(0)), "a1a2a3\nb\nc1err\nc2\nd\n");
        // At or after: the line starting exactly then is in.
        assert_eq!(read(&path, since(3)), "b\nc1err\nc2\nd\n");
        // A line that started before is left out whole, even its later pieces.
        assert_eq!(read(&path, since(1)), "b\nc1err\nc2\nd\n");
        assert_eq!(read(&path, since(5)), "err\nd\n");
        assert_eq!(read(&path, since(8)), "");
        // since, then tail.
        let options = LogOptions {
            since: Some(at(3)),
            tail_lines: Some(3),
            ..LogOptions::default()
        };
        assert_eq!(read(&path, options), "c1err\nc2\nd\n");
    }

    #[test]
    fn prefixes_each_line_with_its_first_timestamp() {
        let (_dir, path) = pieces();
        let options = LogOptions {
            timestamps: true,
            tail_lines: Some(3),
            ..LogOptions::default()
        };
        assert_eq!(
            read(&path, options),
            "2026-12-04T20:52:02.004000000Z c1\
             2026-12-04T20:52:02.005000000Z err\n\
             c2\n\
             2026-12-04T20:52:02.007000000Z d\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, u64::MAX, 5).unwrap();
        w.write(
            Stream::Stdout,
            b"hello",
            t0() + Duration::from_nanos(123_456_789),
        )
        .unwrap();
        w.write(Stream::Stdout, b" world\n", at(1000)).unwrap();
        let options = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            read(&path, options),
            "2026-12-04T20:52:02.123456789Z hello world\n"
        );
    }

    #[test]
    fn cuts_at_limit_bytes() {
        let (_dir, path) = pieces();
        let limit = |n, timestamps| LogOptions {
            limit_bytes: Some(n),
            timestamps,
            ..LogOptions::default()
        };
        assert_eq!(read(&path, limit(1, false)), "a");
        assert_eq!(read(&path, limit(8, false)), "a1a2a3\nb");
        assert_eq!(read(&path, limit(1000, false)), "a1a2a3\nb\nc1err\nc2\nd\n");
        assert_eq!(read(&path, limit(0, false)), "");
        assert_eq!(
            read(&path, limit(33, true)),
            "2026-12-04T20:52:02.000000000Z a1"
        );
    }

    #[test]
    fn skips_malformed_lines_and_shows_an_incomplete_last_entry() {
        let (_dir, path) = file(&[(0, "stdout", "F", "one")]);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"garbage\n\n2026-12-04T20:52:02Z stdin F x\n");
        bytes.extend_from_slice(b"2026-12-04T20:52:03Z stdout F two\n");
        bytes.extend_from_slice(b"2026-12-04T20:52:04Z stdout F three");
        fs::write(&path, bytes).unwrap();
        assert_eq!(read(&path, LogOptions::default()), "one\ntwo\nthree\n");
        assert_eq!(read(&path, tail(1)), "three\n");
        assert_eq!(read(&path, tail(2)), "two\nthree\n");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_log(&dir.path().join("0.log"), &LogOptions::default()).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().starts_with("failed to open log file "));
    }

    const WAIT: Duration = Duration::from_secs(20);

    /// Everything until the stream closes.
    async fn collect(mut rx: LogStream) -> String {
        let all = async {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                out.extend(chunk);
            }
            out
        };
        let out = tokio::time::timeout(WAIT, all)
            .await
            .expect("the stream did not end");
        String::from_utf8(out).unwrap()
    }

    /// Receives until `acc` ends with `suffix`.
    async fn recv_until(rx: &mut LogStream, acc: &mut Vec<u8>, suffix: &str) {
        let wait = async {
            while !acc.ends_with(suffix.as_bytes()) {
                match rx.recv().await {
                    Some(chunk) => acc.extend(chunk),
                    None => panic!(
                        "stream closed before {suffix:?}; got {:?}",
                        String::from_utf8_lossy(acc)
                    ),
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {suffix:?}; got {:?}", String::from_utf8_lossy(acc)));
    }

    #[tokio::test]
    async fn a_stream_without_follow_matches_read_log() {
        let (_dir, path) = pieces();
        let (_done_tx, done) = watch::channel(false);
        for options in [
            LogOptions::default(),
            tail(2),
            LogOptions {
                timestamps: true,
                limit_bytes: Some(40),
                since: Some(at(1)),
                ..LogOptions::default()
            },
        ] {
            let expected = read(&path, options.clone());
            let got = collect(stream_log(path.clone(), options, done.clone())).await;
            assert_eq!(got, expected);
        }
        // A missing file closes the stream at once.
        let got = collect(stream_log(
            path.with_file_name("9.log"),
            LogOptions::default(),
            done.clone(),
        ))
        .await;
        assert_eq!(got, "");
    }

    fn follow() -> LogOptions {
        LogOptions {
            follow: true,
            ..LogOptions::default()
        }
    }

    #[tokio::test]
    async fn a_follower_continues_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // 49-byte entries: four per file.
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        let (done_tx, done) = watch::channel(false);
        let mut rx = stream_log(path.clone(), follow(), done);
        let mut acc = Vec::new();
        let mut expected = String::new();
        for i in 0..20 {
            let line = format!("line {i:03}\n");
            w.write(Stream::Stdout, line.as_bytes(), at(i)).unwrap();
            expected.push_str(&line);
            recv_until(&mut rx, &mut acc, &line).await;
        }
        assert_eq!(rotated_files(&path).unwrap().len(), 2);
        done_tx.send(true).unwrap();
        acc.extend(collect(rx).await.into_bytes());
        assert_eq!(String::from_utf8(acc).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_follower_reads_the_files_rotated_while_it_waited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 200, 5).unwrap();
        w.write(Stream::Stdout, b"line 000\n", at(0)).unwrap();
        let (done_tx, done) = watch::channel(false);
        let mut rx = stream_log(path.clone(), follow(), done);
        let mut acc = Vec::new();
        recv_until(&mut rx, &mut acc, "line 000\n").await;
        // Three rotations at once; the follower still has the first file open, the files
        // rotated after it are kept (four rotated files at most).
        let mut expected = "line 000\n".to_string();
        for i in 1..13 {
            let line = format!("line {i:03}\n");
            w.write(Stream::Stdout, line.as_bytes(), at(i)).unwrap();
            expected.push_str(&line);
        }
        assert_eq!(rotated_files(&path).unwrap().len(), 3);
        done_tx.send(true).unwrap();
        acc.extend(collect(rx).await.into_bytes());
        assert_eq!(String::from_utf8(acc).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_follower_starts_at_the_tail() {
        let (_dir, path) = pieces();
        let (done_tx, done) = watch::channel(false);
        let options = LogOptions {
            tail_lines: Some(2),
            ..follow()
        };
        let mut rx = stream_log(path.clone(), options, done);
        let mut acc = Vec::new();
        recv_until(&mut rx, &mut acc, "d\n").await;
        assert_eq!(acc, b"err\nd\n");
        let mut w = LogWriter::open(&path, u64::MAX, 5).unwrap();
        w.write(Stream::Stderr, b"more\nand a partial", at(10))
            .unwrap();
        done_tx.send(true).unwrap();
        acc.extend(collect(rx).await.into_bytes());
        assert_eq!(acc, b"err\nd\nmore\nand a partial");
    }

    #[tokio::test]
    async fn a_follower_stops_at_limit_bytes() {
        let (_dir, path) = file(&[(0, "stdout", "F", "12345")]);
        let (_done_tx, done) = watch::channel(false);
        let options = LogOptions {
            limit_bytes: Some(10),
            ..follow()
        };
        let mut rx = stream_log(path.clone(), options, done);
        let mut acc = Vec::new();
        recv_until(&mut rx, &mut acc, "12345\n").await;
        let mut w = LogWriter::open(&path, u64::MAX, 5).unwrap();
        w.write(Stream::Stdout, b"67890\n", at(1)).unwrap();
        // The stream closes although the container has not exited.
        acc.extend(collect(rx).await.into_bytes());
        assert_eq!(acc, b"12345\n6789");
    }

    #[tokio::test]
    async fn a_follower_waits_for_the_file_and_for_a_dropped_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("3.log");
        let (done_tx, done) = watch::channel(false);
        let mut rx = stream_log(path.clone(), follow(), done);
        // Give the follower time to find no file (not needed for correctness).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut w = LogWriter::open(&path, u64::MAX, 5).unwrap();
        w.write(Stream::Stdout, b"late\n", at(0)).unwrap();
        let mut acc = Vec::new();
        recv_until(&mut rx, &mut acc, "late\n").await;
        w.write(Stream::Stdout, b"last\n", at(1)).unwrap();
        // The instance's supervisor went away without saying: the follower ends too.
        drop(done_tx);
        acc.extend(collect(rx).await.into_bytes());
        assert_eq!(acc, b"late\nlast\n");
    }
}
