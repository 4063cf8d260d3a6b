//! SQLite backend: one connection behind a mutex (writes are serialized anyway), WAL journal so a
//! committed write survives the process being killed, and an event log for watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::{Event, EventType, Object, Refill, Result, Revision, Store, StoreError, Tx, Watcher};

/// How many events are kept for watches that start in the past.
const DEFAULT_RETAINED_EVENTS: u64 = 100_000;
/// Live events buffered per watcher before it counts as lagging.
const LIVE_BUFFER: usize = 32_768;

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
}

/// Committed objects by kind and key, and the revision they are at: reads never touch SQLite.
#[derive(Default)]
struct Cache {
    objects: HashMap<String, BTreeMap<String, Arc<Object>>>,
    revision: Revision,
}

pub struct SqliteStore {
    /// Held for the store's life: one process per data directory.
    _lock_file: Option<std::fs::File>,
    inner: Arc<Mutex<Inner>>,
    cache: RwLock<Cache>,
    live: broadcast::Sender<Arc<Event>>,
    /// Key prefixes whose objects are read from SQLite instead of being kept in memory: large,
    /// numerous and rarely read (Kubernetes Events).
    uncached: Arc<Vec<String>>,
    retained: u64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
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
        let mut store = Self::with_connection(conn)?;
        store._lock_file = Some(lock_file);
        Ok(store)
    }

    /// Every committed object, read once at start.
    fn load_cache(conn: &Connection, revision: Revision) -> Result<Cache> {
        let mut cache = Cache {
            revision,
            ..Default::default()
        };
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
            let object = row_to_object(&kind, &key, &value, rev, created)?;
            cache
                .objects
                .entry(kind)
                .or_default()
                .insert(key, Arc::new(object));
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
        let cache = Self::load_cache(&conn, revision)?;
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Ok(SqliteStore {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                revision,
                writes_since_compaction: 0,
            })),
            cache: RwLock::new(cache),
            _lock_file: None,
            live,
            uncached: Arc::new(Vec::new()),
            retained: DEFAULT_RETAINED_EVENTS,
        })
    }

    /// Keep objects under these key prefixes (any kind) out of the memory cache.
    pub fn with_uncached_prefixes(mut self, prefixes: &[&str]) -> Self {
        self.uncached = Arc::new(prefixes.iter().map(|p| p.to_string()).collect());
        let cache = self
            .cache
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for objects in cache.objects.values_mut() {
            objects.retain(|k, _| !prefixes.iter().any(|p| k.starts_with(p)));
        }
        self
    }

    fn is_uncached(&self, key: &str) -> bool {
        self.uncached.iter().any(|p| key.starts_with(p.as_str()))
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
    let mut out = Vec::new();
    for row in rows {
        let (key, value, rev, created) = row.map_err(backend)?;
        out.push(Arc::new(row_to_object(kind, &key, &value, rev, created)?));
    }
    Ok(out)
}

/// One object from SQLite.
fn query_one(conn: &Connection, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
    let row = conn
        .prepare_cached("SELECT value, revision, created FROM objects WHERE kind = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![kind, key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })
        .map_err(backend)?;
    row.map(|(v, rev, created)| row_to_object(kind, key, &v, rev, created).map(Arc::new))
        .transpose()
}

/// The logged events of `kind` under `prefix` after `after`, a live receiver subscribed while
/// the log was read (so nothing is missed between them), and the revision the log was read at.
fn open_watch(
    inner: &Inner,
    live: &broadcast::Sender<Arc<Event>>,
    kind: &str,
    prefix: &str,
    after: Revision,
) -> Result<(VecDeque<Event>, broadcast::Receiver<Arc<Event>>, Revision)> {
    let receiver = live.subscribe();
    let oldest = SqliteStore::oldest_watchable(inner)?;
    if after.saturating_add(1) < oldest && after < inner.revision {
        return Err(StoreError::Expired {
            requested: after,
            oldest,
        });
    }
    let upper = format!("{prefix}\u{10FFFF}");
    let mut stmt = inner
        .conn
        .prepare_cached(
            "SELECT revision, type, key, value, created FROM events
             WHERE revision > ?1 AND kind = ?2 AND key >= ?3 AND key < ?4 ORDER BY revision",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![after as i64, kind, prefix, upper], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(backend)?;
    let mut backlog = VecDeque::new();
    for row in rows {
        let (rev, code, key, value, created) = row.map_err(backend)?;
        let event_type = match code {
            0 => EventType::Added,
            1 => EventType::Modified,
            _ => EventType::Deleted,
        };
        backlog.push_back(Event {
            event_type,
            object: Arc::new(row_to_object(kind, &key, &value, rev, created)?),
        });
    }
    Ok((backlog, receiver, inner.revision.max(after)))
}

struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
    /// The committed objects. Writes hold the store's lock, so the cache cannot change under a
    /// transaction; with `written` on top it is what the transaction sees, without reading or
    /// parsing rows.
    cache: &'a RwLock<Cache>,
    uncached: &'a [String],
    written: HashMap<(String, String), Option<Arc<Object>>>,
    revision: Revision,
    events: Vec<Event>,
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
        text: Option<&str>,
    ) -> Result<()> {
        let code = match event_type {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        };
        let (kind, key) = (object.kind.as_str(), object.key.as_str());
        let rev = object.revision as i64;
        match (event_type, text) {
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
        let text = match text {
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
                st.execute(params![rev, code, kind, key, text, object.created as i64])
            })
            .map_err(backend)?;
        let seen = (event_type != EventType::Deleted).then(|| object.clone());
        self.written
            .insert((object.kind.clone(), object.key.clone()), seen);
        self.events.push(Event { event_type, object });
        Ok(())
    }

    fn current(
        &mut self,
        kind: &str,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>> {
        let existing = self.get(kind, key)?.ok_or_else(|| StoreError::NotFound {
            kind: kind.to_string(),
            key: key.to_string(),
        })?;
        if let Some(expected) = expected
            && existing.revision != expected
        {
            return Err(StoreError::Conflict {
                kind: kind.to_string(),
                key: key.to_string(),
                expected,
                actual: existing.revision,
            });
        }
        Ok(existing)
    }
}

impl Tx for SqliteTx<'_> {
    fn get(&mut self, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
        if let Some(w) = self.written.get(&(kind.to_string(), key.to_string())) {
            return Ok(w.clone());
        }
        if self.uncached.iter().any(|p| key.starts_with(p.as_str())) {
            return query_one(&self.tx, kind, key);
        }
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(cache.objects.get(kind).and_then(|o| o.get(key)).cloned())
    }

    fn list(&mut self, kind: &str, prefix: &str) -> Result<Vec<Arc<Object>>> {
        query_prefix(&self.tx, kind, prefix)
    }

    fn create(&mut self, kind: &str, key: &str, value: &Value) -> Result<Arc<Object>> {
        let uncached = self.uncached.iter().any(|p| key.starts_with(p.as_str()));
        // Uncached keys are not looked up first: the primary key refuses a duplicate row.
        let exists = if uncached
            && !self
                .written
                .contains_key(&(kind.to_string(), key.to_string()))
        {
            false
        } else {
            self.get(kind, key)?.is_some()
        };
        if exists {
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
        match self.record(EventType::Added, object.clone(), Some(&text)) {
            Err(StoreError::Backend(e)) if uncached && e.contains("UNIQUE constraint") => {
                self.revision -= 1;
                Err(StoreError::AlreadyExists {
                    kind: kind.to_string(),
                    key: key.to_string(),
                })
            }
            other => other.map(|()| object),
        }
    }

    fn update(
        &mut self,
        kind: &str,
        key: &str,
        value: &Value,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>> {
        let existing = self.current(kind, key, expected)?;
        self.revision += 1;
        let object = Arc::new(Object {
            kind: existing.kind.clone(),
            key: existing.key.clone(),
            value: value.clone(),
            revision: self.revision,
            created: existing.created,
        });
        let text = serde_json::to_string(value).map_err(backend)?;
        self.record(EventType::Modified, object.clone(), Some(&text))?;
        Ok(object)
    }

    fn delete(&mut self, kind: &str, key: &str, expected: Option<Revision>) -> Result<Arc<Object>> {
        let existing = self.current(kind, key, expected)?;
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
        // The write is committed: the cache follows before anything else can fail.
        {
            let mut cache = self
                .cache
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for e in &events {
                let objects = cache.objects.entry(e.object.kind.clone()).or_default();
                match e.event_type {
                    EventType::Deleted => {
                        objects.remove(&e.object.key);
                    }
                    _ if self.is_uncached(&e.object.key) => {}
                    _ => {
                        objects.insert(e.object.key.clone(), e.object.clone());
                    }
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
        for e in events {
            let _ = self.live.send(Arc::new(e));
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn get(&self, kind: &str, key: &str) -> Result<Option<Arc<Object>>> {
        if self.is_uncached(key) {
            return query_one(&self.lock()?.conn, kind, key);
        }
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(cache.objects.get(kind).and_then(|o| o.get(key)).cloned())
    }

    fn list(&self, kind: &str, prefix: &str) -> Result<(Vec<Arc<Object>>, Revision)> {
        // Uncached objects under this prefix come from SQLite, read under the write lock (taken
        // before the cache's, as writers do) so both parts are at one revision.
        let mut from_db = Vec::new();
        let _inner = if self
            .uncached
            .iter()
            .any(|u| u.starts_with(prefix) || prefix.starts_with(u.as_str()))
        {
            let inner = self.lock()?;
            for u in self.uncached.iter() {
                if prefix.starts_with(u.as_str()) {
                    from_db.extend(query_prefix(&inner.conn, kind, prefix)?);
                } else if u.starts_with(prefix) {
                    from_db.extend(query_prefix(&inner.conn, kind, u)?);
                }
            }
            Some(inner)
        } else {
            None
        };
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let objects = cache
            .objects
            .get(kind)
            .map(|o| {
                o.range::<str, _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect()
            })
            .unwrap_or_default();
        let mut objects: Vec<Arc<Object>> = objects;
        if !from_db.is_empty() {
            objects.extend(from_db);
            objects.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok((objects, cache.revision))
    }

    fn transact(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(|tx| f(tx))
    }

    fn watch(&self, kind: &str, prefix: &str, after: Revision) -> Result<Watcher> {
        let inner = self.lock()?;
        let (backlog, live, last) = open_watch(&inner, &self.live, kind, prefix, after)?;
        drop(inner);
        // A watcher that falls behind the live buffer catches up from the event log.
        let shared = self.inner.clone();
        let sender = self.live.clone();
        let refill: Refill = Arc::new(move |kind: &str, prefix: &str, after: Revision| {
            let inner = shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            open_watch(&inner, &sender, kind, prefix, after)
        });
        Ok(Watcher {
            kind: kind.to_string(),
            prefix: prefix.to_string(),
            backlog,
            live,
            last,
            expired: false,
            refill: Some(refill),
        })
    }

    fn revision(&self) -> Result<Revision> {
        Ok(self.lock()?.revision)
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
