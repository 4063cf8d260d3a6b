//! Writing and rotating one container instance's log file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;

use super::{MAX_PIECE_BYTES, Stream, append_timestamp};

/// One container instance's CRI log file, e.g. `<dir>/<restartCount>.log`, written from the
/// chunks read from the container's stdout and stderr pipes.
///
/// Writes are plain blocking `write(2)` calls, one per [`write`](Self::write) (and per
/// rotation): nothing is buffered in memory, so readers see each chunk as soon as `write`
/// returns. Call it from a blocking context (a thread or `spawn_blocking`) if latency of the
/// disk matters.
///
/// # Rotation
///
/// Before an entry would make the file larger than `max_bytes`, the file is renamed to
/// `<path>.<UTC time of the write, YYYYmmdd-HHMMSS>` (the kubelet's suffix; `-1`, `-2`, … is
/// appended when that name is taken, e.g. several rotations in one second), a new empty file
/// is created at `path` and writing continues there. Of the rotated files the newest
/// `max_files - 1` are kept and older ones deleted, so with the current file there are at most
/// `max_files`. Rotated files are not compressed (the kubelet gzips all but the newest). A
/// single entry larger than `max_bytes` still goes whole into a fresh file. When rotating fails
/// (the rename, say), a warning is logged and writing goes on in the same file, to be tried
/// again after another `max_bytes`: output is not dropped for it.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    max_bytes: u64,
    max_files: usize,
    /// Entries rendered but not yet written.
    buf: Vec<u8>,
}

impl LogWriter {
    /// Opens `path` for appending, creating it (mode 0640) and its parent directory if needed.
    /// An existing file is continued, as for a container adopted after a restart of
    /// localfargate. `max_bytes` and `max_files` are the kubelet's `containerLogMaxSize` and
    /// `containerLogMaxFiles` ([`DEFAULT_MAX_BYTES`](super::DEFAULT_MAX_BYTES),
    /// [`DEFAULT_MAX_FILES`](super::DEFAULT_MAX_FILES)).
    pub fn open(path: &Path, max_bytes: u64, max_files: usize) -> io::Result<LogWriter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
            buf: Vec::new(),
        })
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one chunk read from the container's `stream` pipe at `now`.
    ///
    /// The chunk is split at each `\n`: every complete line becomes an `F` entry (an empty line
    /// too; a `\r` before the newline stays in the text), and a trailing piece without a newline
    /// becomes a `P` entry that the next chunk's first entry continues, as containerd writes it
    /// when a line is cut, so nothing is held back. Lines longer than
    /// [`MAX_PIECE_BYTES`] are split into `P` pieces of that size. All entries of a chunk carry
    /// `now`. May rotate the file first (see the type's documentation).
    pub fn write(&mut self, stream: Stream, chunk: &[u8], now: SystemTime) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let time = Timestamp::try_from(now).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log time out of range: {e}"),
            )
        })?;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (line, full, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true, &rest[i + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            if line.is_empty() {
                // Only a complete line can be empty here.
                self.entry(stream, time, false, b"")?;
            }
            let mut pieces = line.chunks(MAX_PIECE_BYTES).peekable();
            while let Some(piece) = pieces.next() {
                let partial = !full || pieces.peek().is_some();
                self.entry(stream, time, partial, piece)?;
            }
            rest = next;
        }
        self.write_buf()
    }

    /// Writes out anything not yet written (nothing is kept between calls to `write`, so this
    /// only flushes the file handle; it does not `fsync`).
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buf()?;
        self.file.flush()
    }

    /// Renders one entry into the buffer, rotating first if it would not fit.
    fn entry(
        &mut self,
        stream: Stream,
        time: Timestamp,
        partial: bool,
        text: &[u8],
    ) -> io::Result<()> {
        let start = self.buf.len();
        append_timestamp(time, &mut self.buf);
        self.buf.push(b' ');
        self.buf.extend_from_slice(stream.as_str().as_bytes());
        self.buf
            .extend_from_slice(if partial { b" P " } else { b" F " });
        self.buf.extend_from_slice(text);
        self.buf.push(b'\n');
        let len = (self.buf.len() - start) as u64;
        let before = self.size + start as u64;
        if before > 0 && before.saturating_add(len) > self.max_bytes {
            self.write_out(start)?;
            if let Err(e) = self.rotate(time) {
                // Losing the container's output would be worse than a large file: go on
                // writing here and try again after another `max_bytes`.
                tracing::warn!(path = %self.path.display(), error = %e, "failed to rotate container log");
                self.size = 0;
            }
        }
        Ok(())
    }

    /// Writes everything buffered.
    fn write_buf(&mut self) -> io::Result<()> {
        self.write_out(self.buf.len())
    }

    /// Writes the first `upto` bytes of the buffer and drops them from it. On error the whole
    /// buffer is dropped.
    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        if upto == 0 {
            return Ok(());
        }
        match self.file.write_all(&self.buf[..upto]) {
            Ok(()) => {
                self.size += upto as u64;
                self.buf.drain(..upto);
                Ok(())
            }
            Err(e) => {
                self.buf.clear();
                // Part of it may have been written.
                if let Ok(m) = self.file.metadata() {
                    self.size = m.len();
                }
                Err(e)
            }
        }
    }

    /// Renames the current file aside, starts a new one and deletes the oldest rotated files.
    fn rotate(&mut self, time: Timestamp) -> io::Result<()> {
        let stamp = time.strftime("%Y%m%d-%H%M%S").to_string();
        let mut target = suffixed(&self.path, &stamp);
        let mut n = 0u32;
        while fs::symlink_metadata(&target).is_ok() {
            n += 1;
            target = suffixed(&self.path, &format!("{stamp}-{n}"));
        }
        match fs::rename(&self.path, &target) {
            Ok(()) => {}
            // Someone removed the file: just start a new one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        let keep = self.max_files.saturating_sub(1);
        match rotated_files(&self.path) {
            Ok(rotated) => {
                for old in &rotated[..rotated.len().saturating_sub(keep)] {
                    if let Err(e) = fs::remove_file(old) {
                        tracing::warn!(path = %old.display(), error = %e, "failed to remove old rotated container log");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "failed to list rotated container logs");
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// `<path>.<suffix>`.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The rotated files of `path` (`<path>.YYYYmmdd-HHMMSS` and `<path>.YYYYmmdd-HHMMSS-N`), oldest
/// first. Other files, such as another instance's log, are not included.
pub(super) fn rotated_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(b'.');
    let mut keyed: Vec<(String, u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(suffix) = file_name.as_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        if let Some((stamp, n)) = parse_rotation_suffix(suffix) {
            keyed.push((stamp, n, entry.path()));
        }
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, _, p)| p).collect())
}

/// `YYYYmmdd-HHMMSS` or `YYYYmmdd-HHMMSS-N` → (stamp, N), N = 0 without it.
fn parse_rotation_suffix(suffix: &[u8]) -> Option<(String, u64)> {
    let (stamp, rest) = suffix.split_at_checked(15)?;
    let shape_ok = stamp.iter().enumerate().all(|(i, &b)| {
        if i == 8 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    if !shape_ok {
        return None;
    }
    let n = match rest {
        [] => 0,
        [b'-', digits @ ..] if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits).ok()?.parse().ok()?
        }
        _ => return None,
    };
    Some((String::from_utf8_lossy(stamp).into_owned(), n))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, Entry, parse_line, read_log};
    use super::*;
    use crate::LogOptions;

    /// 2026-12-04T20:52:02Z
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_417_522)
    }

    fn entries(bytes: &[u8]) -> Vec<Entry<'_>> {
        bytes
            .split_inclusive(|&b| b == b'\n')
            .map(|l| parse_line(l).unwrap())
            .collect()
    }

    fn tags(bytes: &[u8]) -> Vec<(Stream, bool, Vec<u8>)> {
        entries(bytes)
            .into_iter()
            .map(|e| (e.stream, e.partial, e.text.to_vec()))
            .collect()
    }

    fn writer(dir: &Path) -> (PathBuf, LogWriter) {
        let path = dir.join("0.log");
        let w = LogWriter::open(&path, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES).unwrap();
        (path, w)
    }

    #[test]
    fn tags_full_partial_and_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut w) = writer(dir.path());
        w.write(Stream::Stdout, b"one\ntwo\n", t0()).unwrap();
        w.write(Stream::Stderr, b"\n\nhalf", t0()).unwrap();
        w.write(Stream::Stderr, b" done\r\nnext", t0()).unwrap();
        w.write(Stream::Stdout, b"", t0()).unwrap();
        w.flush().unwrap();
        let bytes = fs::read(&path).unwrap();
        use Stream::*;
        assert_eq!(
            tags(&bytes),
            vec![
                (Stdout, false, b"one".to_vec()),
                (Stdout, false, b"two".to_vec()),
                (Stderr, false, b"".to_vec()),
                (Stderr, false, b"".to_vec()),
                (Stderr, true, b"half".to_vec()),
                (Stderr, false, b" done\r".to_vec()),
                (Stderr, true, b"next".to_vec()),
            ]
        );
        let first = bytes.split(|&b| b == b'\n').next().unwrap();
        assert_eq!(first, b"2026-12-04T20:52:02.000000000Z stdout F one");
        assert!(
            bytes
                .windows(b"stderr F \n".len())
                .any(|w| w == b"stderr F \n"),
            "an empty line keeps the delimiter after its tag"
        );
    }

    #[test]
    fn splits_long_lines_into_16k_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut w) = writer(dir.path());
        let long: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut chunk = long.clone();
        chunk.push(b'\n');
        w.write(Stream::Stdout, &chunk, t0()).unwrap();
        // Exactly one piece long: a single F entry.
        let exact = vec![b'x'; MAX_PIECE_BYTES];
        w.write(Stream::Stdout, &[&exact[..], b"\n"].concat(), t0())
            .unwrap();
        // A trailing partial longer than a piece: all P.
        w.write(Stream::Stdout, &long[..20_000], t0()).unwrap();
        let bytes = fs::read(&path).unwrap();
        let got: Vec<(bool, usize)> = entries(&bytes)
            .iter()
            .map(|e| (e.partial, e.text.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (true, 16_384),
                (true, 16_384),
                (false, 40_000 - 32_768),
                (false, 16_384),
                (true, 16_384),
                (true, 20_000 - 16_384),
            ]
        );
        let joined: Vec<u8> = entries(&bytes)[..3]
            .iter()
            .flat_map(|e| e.text.to_vec())
            .collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/1.log");
        let mut w = LogWriter::open(&path, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES).unwrap();
        w.write(Stream::Stdout, b"before\n", t0()).unwrap();
        drop(w);
        let mut w = LogWriter::open(&path, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES).unwrap();
        w.write(Stream::Stdout, b"after\n", t0()).unwrap();
        let out = read_log(&path, &LogOptions::default()).unwrap();
        assert_eq!(out, b"before\nafter\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn entries_round_trip_with_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut w) = writer(dir.path());
        let now = t0() + Duration::from_nanos(123_456_789);
        w.write(Stream::Stderr, b"x y z\n", now).unwrap();
        let bytes = fs::read(&path).unwrap();
        let e = parse_line(&bytes).unwrap();
        assert_eq!(e.system_time(), now);
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.text, b"x y z");
    }

    /// Every rotated file of `path` and the current one, oldest first, concatenated.
    fn all_text(path: &Path) -> Vec<u8> {
        let mut files = rotated_files(path).unwrap();
        files.push(path.to_path_buf());
        let mut out = Vec::new();
        for f in files {
            for e in entries(&fs::read(f).unwrap()) {
                out.extend_from_slice(e.text);
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn rotates_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Another instance's files must not be touched.
        fs::write(dir.path().join("10.log"), b"").unwrap();
        fs::write(dir.path().join("0.log.gz"), b"").unwrap();
        // Each entry is 30 + 10 + 9 = 49 bytes: 4 fit in 200.
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        let mut expected = Vec::new();
        for i in 0..30u64 {
            // Two writes per second: same-second rotations get -N suffixes.
            let now = t0() + Duration::from_millis(100 * i);
            let line = format!("line {i:03}\n");
            w.write(Stream::Stdout, line.as_bytes(), now).unwrap();
            expected.extend_from_slice(line.as_bytes());
            assert!(fs::metadata(&path).unwrap().len() <= 200);
        }
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(dir.path().join("10.log").exists());
        assert!(dir.path().join("0.log.gz").exists());
        let names: Vec<String> = rotated
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n.starts_with("0.log.20261204-2052")),
            "{names:?}"
        );
        // The retained files are the newest ones, in order, without gaps.
        let text = all_text(&path);
        assert!(
            expected.ends_with(&text),
            "{}",
            String::from_utf8_lossy(&text)
        );
        assert_eq!(text.len(), 10 * 9);
        // The reader shows the current file only.
        let out = read_log(&path, &LogOptions::default()).unwrap();
        assert_eq!(out, b"line 028\nline 029\n");
    }

    #[test]
    fn names_rotated_files_by_the_write_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2.log");
        let mut w = LogWriter::open(&path, 60, 5).unwrap();
        w.write(Stream::Stdout, b"first\n", t0()).unwrap();
        w.write(Stream::Stdout, b"second\n", t0() + Duration::from_secs(3))
            .unwrap();
        w.write(Stream::Stdout, b"third\n", t0() + Duration::from_secs(3))
            .unwrap();
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(
            rotated,
            vec![
                dir.path().join("2.log.20261204-205205"),
                dir.path().join("2.log.20261204-205205-1"),
            ]
        );
        assert_eq!(all_text(&path), b"first\nsecond\nthird\n");
    }

    #[test]
    fn one_file_keeps_no_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 100, 1).unwrap();
        for i in 0..10 {
            w.write(Stream::Stdout, format!("{i}\n").as_bytes(), t0())
                .unwrap();
        }
        assert!(rotated_files(&path).unwrap().is_empty());
        assert_eq!(read_log(&path, &LogOptions::default()).unwrap(), b"8\n9\n");
    }

    #[test]
    fn an_entry_larger_than_max_bytes_goes_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 50, 5).unwrap();
        w.write(Stream::Stdout, b"a\n", t0()).unwrap();
        w.write(Stream::Stdout, &[b'b'; 100], t0()).unwrap();
        w.write(Stream::Stdout, b"\n", t0()).unwrap();
        assert_eq!(rotated_files(&path).unwrap().len(), 2);
        assert_eq!(
            all_text(&path),
            [&b"a\n"[..], &[b'b'; 100], b"\n\n"].concat()
        );
    }

    #[test]
    fn parses_rotation_suffixes() {
        assert_eq!(
            parse_rotation_suffix(b"20261204-205202"),
            Some(("20261204-205202".to_string(), 0))
        );
        assert_eq!(
            parse_rotation_suffix(b"20261204-205202-12"),
            Some(("20261204-205202".to_string(), 12))
        );
        for bad in [
            &b"20261204-205202.gz"[..],
            b"20261204-205202-",
            b"20261204205202",
            b"2026120x-205202",
            b"tmp",
        ] {
            assert_eq!(parse_rotation_suffix(bad), None);
        }
    }
}
