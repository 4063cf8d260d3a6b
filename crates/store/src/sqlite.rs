//! SQLite backend: one connection behind a mutex (writes are serialized anyway), WAL journal so a
//! committed write survives the process being killed, and an event log for watches.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::compact::{Cache, Entry, Packer, type_prefix, type_reached_by};
use crate::live::{Fanout, LiveReceiver};
use crate::{
    Event, EventType, Object, Refill, Result, Revision, Selection, Store, StoreError, Tx, Watcher,
};

/// How many events are kept for watches that start in the past.
const DEFAULT_RETAINED_EVENTS: u64 = 100_000;
/// Live events queued for a watcher before it counts as lagging (and catches up from the log).
/// Queued events hold their objects, so this bounds what one slow watcher keeps alive.
const LIVE_BUFFER: usize = 1024;
/// Logged events read at a time by a watcher starting in the past or catching up.
const LOG_PAGE: usize = 256;
/// Revisions of the log one read looks through at most.
const LOG_WINDOW: u64 = 16 * LOG_PAGE as u64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY,
    type INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

struct Inner {
    conn: Connection,
    revision: Revision,
    writes_since_compaction: u64,
    /// Packs committed objects for the cache; only the writer (holding this lock) packs.
    packer: Packer,
}

pub struct SqliteStore {
    /// Checkpoints the WAL of a store in a file (declared before the lock file, so it stops
    /// before the lock is let go).
    _checkpointer: Option<Checkpointer>,
    /// Held for the store's life: one process per data directory.
    _lock_file: Option<std::fs::File>,
    inner: Arc<Mutex<Inner>>,
    /// Every committed object, packed (see `compact`): reads never touch SQLite.
    cache: RwLock<Cache>,
    live: Arc<Fanout>,
    retained: u64,
    /// Kinds (by prefix) whose objects the cache keeps decoded too.
    decoded_kinds: Vec<String>,
    /// Types of object (`core/events/`) kept only in SQLite, and read from it.
    uncached: Uncached,
}

/// Types of object (by their keys' first two segments), of kinds starting with `kinds`, that the
/// memory cache does not keep.
#[derive(Clone, Default)]
struct Uncached {
    kinds: String,
    types: Vec<String>,
}

impl Uncached {
    fn holds(&self, kind: &str, key: &str) -> bool {
        let ty = type_prefix(key);
        !self.types.is_empty()
            && kind.starts_with(&self.kinds)
            && !ty.is_empty()
            && self.types.iter().any(|u| u == ty)
    }

    /// The uncached types that keys of `kind` starting with `prefix` can be of.
    fn reached_by<'a>(
        &'a self,
        kind: &str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        let of_kind = kind.starts_with(&self.kinds);
        self.types
            .iter()
            .filter(move |u| of_kind && type_reached_by(u, prefix))
    }
}

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::backend(e)
}

/// How often the WAL is checkpointed.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A thread with its own connection that checkpoints the WAL now and then, passively: it copies
/// what it can without waiting for the writer, which keeps committing meanwhile.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self> {
        let conn =
            Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .map_err(backend)?;
        // It reads no objects: a small page cache.
        conn.pragma_update(None, "cache_size", 16)
            .map_err(backend)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".to_string())
            .spawn(move || {
                // Until the store is dropped (its sender with it).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "WAL checkpoint; trying again later");
                    }
                }
                // A last one, so a clean stop leaves little WAL behind.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            })
            .map_err(backend)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    /// A store in a file, created if absent.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        let lock_path = path.with_extension("lock");
        let lock_file = std::fs::File::create(&lock_path)
            .map_err(|e| backend(format!("{}: {e}", lock_path.display())))?;
        if lock_file.try_lock().is_err() {
            return Err(backend(format!(
                "{} is in use by another localfargate process; stop it or choose another data directory",
                path.display()
            )));
        }
        let conn =
            Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        // WAL: commits are appended and survive a killed process; NORMAL skips the per-commit
        // fsync that only power loss would need.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        // Checkpoints (copying the WAL into the database, and its fsyncs) run on their own
        // connection and thread, not inside whichever write crosses the WAL's threshold while
        // holding the store's lock.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        let mut store = Self::with_connection(conn)?;
        store._checkpointer = Some(Checkpointer::start(path)?);
        store._lock_file = Some(lock_file);
        Ok(store)
    }

    /// Every committed object, read once at start.
    fn load_cache(conn: &Connection, packer: &mut Packer, revision: Revision) -> Result<Cache> {
        let mut cache = Cache::default();
        cache.revision = revision;
        let mut stmt = conn
            .prepare("SELECT kind, key, value, revision, created FROM objects")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (kind, key, value, rev, created) = row.map_err(backend)?;
            let body = packer.pack(&kind, &key, value.as_bytes());
            cache.insert(
                &kind,
                &key,
                Entry {
                    revision: rev as Revision,
                    created: created as Revision,
                    body,
                    decoded: None,
                },
            );
        }
        Ok(cache)
    }

    /// A store that lives and dies with the process.
    pub fn in_memory() -> Result<Self> {
        Self::with_connection(Connection::open_in_memory().map_err(backend)?)
    }

    fn with_connection(conn: Connection) -> Result<Self> {
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let from_events: Option<i64> = conn
            .query_row("SELECT MAX(revision) FROM events", [], |r| r.get(0))
            .map_err(backend)?;
        let from_meta: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        let revision = from_events.unwrap_or(0).max(from_meta.unwrap_or(0)) as Revision;
        let mut packer = Packer::new();
        let cache = Self::load_cache(&conn, &mut packer, revision)?;
        Ok(SqliteStore {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                revision,
                writes_since_compaction: 0,
                packer,
            })),
            cache: RwLock::new(cache),
            _checkpointer: None,
            _lock_file: None,
            live: Arc::new(Fanout::new(LIVE_BUFFER)),
            retained: DEFAULT_RETAINED_EVENTS,
            decoded_kinds: Vec::new(),
            uncached: Uncached::default(),
        })
    }

    /// Keep objects of these types (the first two segments of their keys, `core/events/`), of
    /// kinds starting with `kinds`, only in SQLite: many objects, written once and seldom read
    /// (Kubernetes Events, which kube-apiserver does not keep in its watch cache either). Reads
    /// of them query SQLite, under the writers' lock: a `Store` read of them inside a
    /// transaction's closure would wait on itself (read through the `Tx` there, as everywhere).
    pub fn with_uncached_types(mut self, kinds: &str, types: &[&str]) -> Self {
        let types: Vec<String> = types
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| t.to_string())
            .collect();
        let cache = self
            .cache
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.remove_types(kinds, &types);
        self.uncached = Uncached {
            kinds: kinds.to_string(),
            types,
        };
        self
    }

    /// Keep objects of kinds starting with these prefixes decoded in the cache as well: for few
    /// objects read often (the EKS API's records), where a decode per read would cost more than
    /// the memory. Everything else is only packed.
    pub fn with_decoded_kinds(mut self, prefixes: &[&str]) -> Result<Self> {
        self.decoded_kinds = prefixes.iter().map(|p| p.to_string()).collect();
        self.cache
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keep_decoded(&self.decoded_kinds)?;
        Ok(self)
    }

    /// What the memory cache holds, per type of object.
    pub fn footprint(&self) -> Vec<crate::Footprint> {
        self.read_cache().footprint()
    }

    /// Each object of `kind` under `prefix`, in key order. Copied out (packed) under the cache's
    /// lock, decoded outside it: a long scan does not hold up writers. Objects only in SQLite are
    /// read (not parsed) under the writers' lock.
    fn visit(&self, kind: &str, prefix: &str, f: &mut dyn FnMut(Arc<Object>)) -> Result<Revision> {
        if self.uncached.reached_by(kind, prefix).next().is_none() {
            let (entries, revision) = {
                let cache = self.read_cache();
                (cache.range(kind, prefix), cache.revision)
            };
            for (key, e) in entries {
                f(e.object(kind, &key)?);
            }
            return Ok(revision);
        }
        // Some of the objects are only in SQLite. Read under the writers' lock, so the rows and
        // the cache are at one revision; their texts are parsed after it is let go.
        let (entries, rows, revision) = {
            let inner = self.lock()?;
            let cache = self.read_cache();
            let mut rows = Vec::new();
            for ty in self.uncached.reached_by(kind, prefix) {
                let from = if prefix.len() > ty.len() {
                    prefix
                } else {
                    ty.as_str()
                };
                rows.extend(query_rows(&inner.conn, kind, from)?);
            }
            (cache.range(kind, prefix), rows, inner.revision)
        };
        // Both in key order, merged.
        let mut rows = rows;
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rows = rows.into_iter().peekable();
        let mut entries = entries.into_iter().peekable();
        loop {
            let take_row = match (rows.peek(), entries.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(r), Some(e)) => r.0.as_str() < &*e.0,
            };
            if take_row {
                if let Some((key, value, rev, created)) = rows.next() {
                    f(Arc::new(row_to_object(kind, &key, &value, rev, created)?));
                }
            } else if let Some((key, e)) = entries.next() {
                f(e.object(kind, &key)?);
            }
        }
        Ok(revision)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keep only this many events for watches from the past (tests use a small number).
    pub fn with_retained_events(mut self, retained: u64) -> Self {
        self.retained = retained.max(1);
        self
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        // A panic inside a transaction closure rolled the transaction back when it unwound: the
        // connection is fine to use again.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn oldest_watchable(inner: &Inner) -> Result<Revision> {
        let oldest: Option<i64> = inner
            .conn
            .query_row("SELECT MIN(revision) FROM events", [], |r| r.get(0))
            .map_err(backend)?;
        // With no events retained, everything after the current revision is watchable.
        Ok(oldest.map_or(inner.revision + 1, |o| o as Revision))
    }
}

/// Objects of `kind` under `prefix`, from SQLite, in key order.
fn query_prefix(conn: &Connection, kind: &str, prefix: &str) -> Result<Vec<Arc<Object>>> {
    query_rows(conn, kind, prefix)?
        .into_iter()
        .map(|(key, value, rev, created)| {
            Ok(Arc::new(row_to_object(kind, &key, &value, rev, created)?))
        })
        .collect()
}

/// One object of `kind` from SQLite.
fn query_one(conn: &Connection, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
    parse_one(kind, key, query_one_row(conn, kind, key)?)
}

/// An object from its row (`query_one_row`).
fn parse_one(
    kind: &str,
    key: &str,
    row: Option<(String, i64, i64)>,
) -> Result<Option<Arc<Object>>> {
    row.map(|(value, rev, created)| Ok(Arc::new(row_to_object(kind, key, &value, rev, created)?)))
        .transpose()
}

/// An object's revision and creating revision, from SQLite, without its text.
fn query_revisions(
    conn: &Connection,
    kind: &str,
    key: &str,
) -> Result<Option<(Revision, Revision)>> {
    conn.prepare_cached("SELECT revision, created FROM objects WHERE kind = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![kind, key], |r| {
                Ok((
                    r.get::<_, i64>(0)? as Revision,
                    r.get::<_, i64>(1)? as Revision,
                ))
            })
            .optional()
        })
        .map_err(backend)
}

/// One object's text, revision and creating revision, unparsed.
fn query_one_row(conn: &Connection, kind: &str, key: &str) -> Result<Option<(String, i64, i64)>> {
    conn.prepare_cached("SELECT value, revision, created FROM objects WHERE kind = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![kind, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(backend)
}

/// A stored row: key, text, revision, creating revision.
type Row = (String, String, i64, i64);

/// The rows of `kind` under `prefix`, in key order, unparsed.
fn query_rows(conn: &Connection, kind: &str, prefix: &str) -> Result<Vec<Row>> {
    // Keys in [prefix, prefix + U+10FFFF): a range scan of the primary key.
    let upper = format!("{prefix}\u{10FFFF}");
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, value, revision, created FROM objects
             WHERE kind = ?1 AND key >= ?2 AND key < ?3 ORDER BY key",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![kind, prefix, upper], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(backend)?;
    rows.collect::<std::result::Result<_, _>>().map_err(backend)
}

/// A page of the logged events the selection takes in after `after`, how far the page reached
/// in the log, and, when the page reaches the end of the log, a live receiver subscribed under
/// the same lock (writers publish under it too, so nothing falls between the two).
fn open_watch(
    inner: &Inner,
    live: &Fanout,
    selection: &Selection,
    after: Revision,
) -> Result<(Vec<LoggedEvent>, Option<LiveReceiver>, Revision)> {
    let oldest = SqliteStore::oldest_watchable(inner)?;
    if after.saturating_add(1) < oldest && after < inner.revision {
        return Err(StoreError::Expired {
            requested: after,
            oldest,
        });
    }
    // The selection's exceptions are left out by SQLite, so a page is a page of changes taken
    // in; a query looks at no more than `LOG_WINDOW` revisions, so one taking in few of them
    // does not hold the lock for long.
    let horizon = after.saturating_add(LOG_WINDOW);
    let mut sql = String::from(
        "SELECT revision, type, key, value, created FROM events
         WHERE revision > ?1 AND revision <= ?2 AND kind = ?3 AND key >= ?4 AND key < ?5",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![
        (after as i64).into(),
        (horizon.min(i64::MAX as u64) as i64).into(),
        selection.kind.clone().into(),
        selection.prefix.clone().into(),
        format!("{}\u{10FFFF}", selection.prefix).into(),
    ];
    if !selection.any_of.is_empty() {
        let mut ranges = Vec::new();
        for prefix in &selection.any_of {
            ranges.push(format!(
                "(key >= ?{} AND key < ?{})",
                args.len() + 1,
                args.len() + 2
            ));
            args.push(prefix.clone().into());
            args.push(format!("{prefix}\u{10FFFF}").into());
        }
        sql.push_str(&format!(" AND ({})", ranges.join(" OR ")));
    }
    for except in &selection.except {
        sql.push_str(&format!(
            " AND NOT (key >= ?{} AND key < ?{})",
            args.len() + 1,
            args.len() + 2
        ));
        args.push(except.clone().into());
        args.push(format!("{except}\u{10FFFF}").into());
    }
    sql.push_str(&format!(" ORDER BY revision LIMIT ?{}", args.len() + 1));
    args.push((LOG_PAGE as i64).into());
    let mut stmt = inner.conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(backend)?;
    let page = rows
        .collect::<std::result::Result<Vec<LoggedEvent>, _>>()
        .map_err(backend)?;
    if page.len() == LOG_PAGE {
        // More to read after this page's last change.
        let reached = page.last().map_or(after, |row| row.0 as Revision);
        return Ok((page, None, reached));
    }
    if horizon < inner.revision {
        // More to read past the window.
        return Ok((page, None, horizon));
    }
    let receiver = live.subscribe(selection.clone());
    Ok((page, Some(receiver), inner.revision.max(after)))
}

/// A row of the event log: revision, type code, key, text, creating revision.
type LoggedEvent = (i64, i64, String, String, i64);

/// A page of the log as events. Parsed after the store's lock is let go: a watcher catching up
/// must not hold up writers while it parses a thousand objects.
fn decode_log(kind: &str, page: Vec<LoggedEvent>) -> Result<VecDeque<Event>> {
    page.into_iter()
        .map(|(rev, code, key, value, created)| {
            let event_type = match code {
                0 => EventType::Added,
                1 => EventType::Modified,
                _ => EventType::Deleted,
            };
            Ok(Event {
                event_type,
                object: Arc::new(row_to_object(kind, &key, &value, rev, created)?),
            })
        })
        .collect()
}

struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
    /// The committed objects. Writes hold the store's lock, so the cache cannot change under a
    /// transaction; with `written` on top it is what the transaction sees, without reading or
    /// parsing rows.
    cache: &'a RwLock<Cache>,
    /// Types the cache does not hold: read from SQLite.
    uncached: &'a Uncached,
    written: HashMap<(String, String), Option<Arc<Object>>>,
    revision: Revision,
    /// The changes, each with the text written for it (none for a deletion).
    events: Vec<(Event, Option<String>)>,
}

fn row_to_object(
    kind: &str,
    key: &str,
    value: &str,
    revision: i64,
    created: i64,
) -> Result<Object> {
    Ok(Object {
        kind: kind.to_string(),
        key: key.to_string(),
        value: serde_json::from_str(value).map_err(backend)?,
        revision: revision as Revision,
        created: created as Revision,
    })
}

impl SqliteTx<'_> {
    /// Write the object's row (`None`: delete it) and its event, and remember both.
    fn record(
        &mut self,
        event_type: EventType,
        object: Arc<Object>,
        text: Option<String>,
    ) -> Result<()> {
        let code = match event_type {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        };
        let (kind, key) = (object.kind.as_str(), object.key.as_str());
        let rev = object.revision as i64;
        match (event_type, &text) {
            (EventType::Added, Some(text)) => self
                .tx
                .prepare_cached(
                    "INSERT INTO objects (kind, key, value, revision, created) VALUES (?1, ?2, ?3, ?4, ?4)",
                )
                .and_then(|mut st| st.execute(params![kind, key, text, rev])),
            (EventType::Modified, Some(text)) => self
                .tx
                .prepare_cached(
                    "UPDATE objects SET value = ?3, revision = ?4 WHERE kind = ?1 AND key = ?2",
                )
                .and_then(|mut st| st.execute(params![kind, key, text, rev])),
            _ => self
                .tx
                .prepare_cached("DELETE FROM objects WHERE kind = ?1 AND key = ?2")
                .and_then(|mut st| st.execute(params![kind, key])),
        }
        .map_err(backend)?;
        // A deletion's event carries the last value; it is serialized only here.
        let owned;
        let logged = match &text {
            Some(t) => t,
            None => {
                owned = serde_json::to_string(&object.value).map_err(backend)?;
                &owned
            }
        };
        self.tx
            .prepare_cached(
                "INSERT INTO events (revision, type, kind, key, value, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![rev, code, kind, key, logged, object.created as i64])
            })
            .map_err(backend)?;
        let seen = (event_type != EventType::Deleted).then(|| object.clone());
        self.written
            .insert((object.kind.clone(), object.key.clone()), seen);
        self.events.push((Event { event_type, object }, text));
        Ok(())
    }

    /// The revision and creating revision of an object that must exist (at `expected`, when
    /// given), without decoding it.
    fn current(
        &mut self,
        kind: &str,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, Revision)> {
        let found = match self.written.get(&(kind.to_string(), key.to_string())) {
            Some(w) => w.as_ref().map(|o| (o.revision, o.created)),
            None if self.uncached.holds(kind, key) => query_revisions(&self.tx, kind, key)?,
            None => self
                .cache
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(kind, key)
                .map(|e| (e.revision, e.created)),
        };
        let (revision, created) = found.ok_or_else(|| StoreError::NotFound {
            kind: kind.to_string(),
            key: key.to_string(),
        })?;
        if let Some(expected) = expected
            && revision != expected
        {
            return Err(StoreError::Conflict {
                kind: kind.to_string(),
                key: key.to_string(),
                expected,
                actual: revision,
            });
        }
        Ok((revision, created))
    }
}

impl Tx for SqliteTx<'_> {
    fn get(&mut self, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
        if let Some(w) = self.written.get(&(kind.to_string(), key.to_string())) {
            return Ok(w.clone());
        }
        if self.uncached.holds(kind, key) {
            return query_one(&self.tx, kind, key);
        }
        // Decoded under the read lock: writers wait on this transaction's lock anyway.
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get(kind, key)
            .map(|e| e.object(kind, key))
            .transpose()
    }

    fn revision_of(&mut self, kind: &str, key: &str) -> Result<Option<Revision>> {
        match self.current(kind, key, None) {
            Ok((revision, _)) => Ok(Some(revision)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&mut self, kind: &str, prefix: &str) -> Result<Vec<Arc<Object>>> {
        query_prefix(&self.tx, kind, prefix)
    }

    fn create(&mut self, kind: &str, key: &str, value: &Value) -> Result<Arc<Object>> {
        if self.revision_of(kind, key)?.is_some() {
            return Err(StoreError::AlreadyExists {
                kind: kind.to_string(),
                key: key.to_string(),
            });
        }
        self.revision += 1;
        let object = Arc::new(Object {
            kind: kind.to_string(),
            key: key.to_string(),
            value: value.clone(),
            revision: self.revision,
            created: self.revision,
        });
        let text = serde_json::to_string(value).map_err(backend)?;
        self.record(EventType::Added, object.clone(), Some(text))?;
        Ok(object)
    }

    fn update(
        &mut self,
        kind: &str,
        key: &str,
        value: &Value,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>> {
        let (_, created) = self.current(kind, key, expected)?;
        self.revision += 1;
        let object = Arc::new(Object {
            kind: kind.to_string(),
            key: key.to_string(),
            value: value.clone(),
            revision: self.revision,
            created,
        });
        let text = serde_json::to_string(value).map_err(backend)?;
        self.record(EventType::Modified, object.clone(), Some(text))?;
        Ok(object)
    }

    fn delete(&mut self, kind: &str, key: &str, expected: Option<Revision>) -> Result<Arc<Object>> {
        self.current(kind, key, expected)?;
        // A deletion's event carries the object as it was: read it.
        let existing = self.get(kind, key)?.ok_or_else(|| StoreError::NotFound {
            kind: kind.to_string(),
            key: key.to_string(),
        })?;
        self.revision += 1;
        let gone = Arc::new(Object {
            kind: existing.kind.clone(),
            key: existing.key.clone(),
            value: existing.value.clone(),
            revision: self.revision,
            created: existing.created,
        });
        self.record(EventType::Deleted, gone.clone(), None)?;
        Ok(gone)
    }

    fn revision(&self) -> Revision {
        self.revision
    }
}

impl SqliteStore {
    /// Run `f` in a transaction, commit, compact the event log now and then, and publish.
    fn run(&self, f: impl FnOnce(&mut SqliteTx<'_>) -> Result<()>) -> Result<()> {
        let mut guard = self.lock()?;
        let inner = &mut *guard;
        let start = inner.revision;
        let (revision, events) = {
            let tx = inner.conn.transaction().map_err(backend)?;
            let mut stx = SqliteTx {
                tx,
                cache: &self.cache,
                uncached: &self.uncached,
                written: HashMap::new(),
                revision: start,
                events: Vec::new(),
            };
            f(&mut stx)?;
            let SqliteTx {
                tx,
                revision,
                events,
                ..
            } = stx;
            if revision != start {
                tx.prepare_cached(
                    "INSERT INTO meta (name, value) VALUES ('revision', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut st| st.execute(params![revision as i64]))
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            (revision, events)
        };
        inner.revision = revision;
        // The write is committed: the cache follows before anything else can fail. Texts are
        // packed before the cache is locked, so readers wait only for the swap.
        let packed: Vec<Option<Entry>> = events
            .iter()
            .map(|(e, text)| {
                if self.uncached.holds(&e.object.kind, &e.object.key) {
                    return None;
                }
                text.as_ref().map(|t| Entry {
                    revision: e.object.revision,
                    created: e.object.created,
                    body: inner
                        .packer
                        .pack(&e.object.kind, &e.object.key, t.as_bytes()),
                    decoded: self
                        .decoded_kinds
                        .iter()
                        .any(|p| e.object.kind.starts_with(p.as_str()))
                        .then(|| e.object.clone()),
                })
            })
            .collect();
        let events: Vec<Event> = events.into_iter().map(|(e, _)| e).collect();
        {
            let mut cache = self
                .cache
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (e, entry) in events.iter().zip(packed) {
                match entry {
                    Some(entry) => cache.insert(&e.object.kind, &e.object.key, entry),
                    None => cache.remove(&e.object.kind, &e.object.key),
                }
            }
            cache.revision = revision;
        }
        inner.writes_since_compaction += events.len() as u64;
        if inner.writes_since_compaction >= 1000.min(self.retained) {
            inner.writes_since_compaction = 0;
            let floor = revision.saturating_sub(self.retained) as i64;
            // Compaction only trims watch history; failing it must not fail the write.
            if let Err(e) = inner
                .conn
                .execute("DELETE FROM events WHERE revision <= ?1", params![floor])
            {
                tracing::warn!(error = %e, "event log compaction failed");
            }
        }
        // Published under the lock, so live events reach watchers in revision order.
        self.live.publish(&events);
        Ok(())
    }
}

impl Store for SqliteStore {
    fn get(&self, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
        if self.uncached.holds(kind, key) {
            // Parsed after the writers' lock is let go.
            let row = query_one_row(&self.lock()?.conn, kind, key)?;
            return parse_one(kind, key, row);
        }
        // One object is decoded under the read lock; a writer waits that long at most.
        self.read_cache()
            .get(kind, key)
            .map(|e| e.object(kind, key))
            .transpose()
    }

    fn list(&self, kind: &str, prefix: &str) -> Result<(Vec<Arc<Object>>, Revision)> {
        let mut objects = Vec::new();
        let revision = self.visit(kind, prefix, &mut |o| objects.push(o))?;
        Ok((objects, revision))
    }

    fn scan(&self, kind: &str, prefix: &str, f: &mut dyn FnMut(Object)) -> Result<Revision> {
        self.visit(kind, prefix, &mut |o| {
            f(Arc::try_unwrap(o).unwrap_or_else(|shared| (*shared).clone()))
        })
    }

    fn transact(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(|tx| f(tx))
    }

    fn watch_selection(&self, selection: Selection, after: Revision) -> Result<Watcher> {
        let inner = self.lock()?;
        let (page, live, reached) = open_watch(&inner, &self.live, &selection, after)?;
        drop(inner);
        let backlog = decode_log(&selection.kind, page)?;
        // A watcher that falls behind the live buffer catches up from the event log.
        let shared = self.inner.clone();
        let fanout = self.live.clone();
        let refill: Refill = Arc::new(move |selection: &Selection, after: Revision| {
            let inner = shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (page, live, reached) = open_watch(&inner, &fanout, selection, after)?;
            drop(inner);
            Ok((decode_log(&selection.kind, page)?, live, reached))
        });
        // Nothing to deliver from the log: the watch starts where the log was read to.
        let last = if backlog.is_empty() { reached } else { after };
        Ok(Watcher {
            selection,
            backlog,
            live,
            last,
            read_to: reached,
            expired: false,
            refill: Some(refill),
        })
    }

    fn revision(&self) -> Result<Revision> {
        Ok(self.lock()?.revision)
    }

    fn oldest_watchable(&self) -> Result<Revision> {
        let inner = self.lock()?;
        SqliteStore::oldest_watchable(&inner)
    }

    fn reset(&self) -> Result<()> {
        self.run(|tx| {
            let keys: Vec<(String, String)> = {
                let mut stmt = tx
                    .tx
                    .prepare("SELECT kind, key FROM objects")
                    .map_err(backend)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .map_err(backend)?;
                rows.collect::<std::result::Result<_, _>>()
                    .map_err(backend)?
            };
            for (kind, key) in keys {
                tx.delete(&kind, &key, None)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..200 {
            crate::StoreExt::create(&store, "k", &format!("o{i}"), &serde_json::json!({"i": i}))
                .unwrap();
        }
        // Writers no longer checkpoint; the store's thread does within a second or so. Until it
        // has, the database file alone (without its WAL) lacks the writes.
        let copy = dir.path().join("copy.db");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            std::fs::copy(&path, &copy).unwrap();
            let rows: i64 = Connection::open(&copy)
                .unwrap()
                .query_row("SELECT COUNT(*) FROM objects", [], |r| r.get(0))
                .unwrap_or(0); // no table yet: even the schema is only in the WAL
            if rows == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{rows} of 200 objects checkpointed into the database file"
            );
        }
        drop(store);
        // Stopped with the store: the directory can be opened again at once.
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.get("k", "o199").unwrap().unwrap().value["i"], 199);
    }
}
