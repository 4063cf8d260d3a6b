//! The one store for every localfargate object, EKS and Kubernetes alike.
//!
//! Objects are JSON values addressed by `(kind, key)`. Every write gets the next store-wide
//! revision, which is the object's `resourceVersion`; writes can be conditioned on the revision
//! they expect (compare-and-swap), grouped in a transaction, and watched from any recent revision.
//! [`SqliteStore`] keeps them in SQLite (WAL) on disk, or in memory; the [`Store`] trait is what the
//! rest of localfargate uses, so another backend (etcd) can stand in.

mod compact;
mod live;
mod sqlite;

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

pub use compact::Footprint;
pub use live::{Fanout, Live, LiveReceiver};
pub use sqlite::SqliteStore;

pub type Revision = u64;

/// A stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: String,
    pub key: String,
    pub value: Value,
    /// The revision of the last write to this object: its `resourceVersion`.
    pub revision: Revision,
    /// The revision that created it.
    pub created: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A change. For a deletion, `object` is the object as it was, with the deleting revision.
/// Shared with the store's cache and every watcher, so an event costs no copy of the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    pub object: Arc<Object>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.object.revision
    }
}

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("{kind} {key:?} already exists")]
    AlreadyExists { kind: String, key: String },
    #[error("{kind} {key:?} not found")]
    NotFound { kind: String, key: String },
    #[error("{kind} {key:?} is at revision {actual}, not {expected}")]
    Conflict {
        kind: String,
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// A watch asked for history the store no longer keeps; list again and watch from there.
    #[error("revision {requested} is compacted; the oldest watchable revision is {oldest}")]
    Expired {
        requested: Revision,
        oldest: Revision,
    },
    /// The storage engine failed (SQLite, decoding a stored object, …); the cause is kept.
    #[error("store backend: {0}")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The caller's transaction function refused to go on; everything it wrote is rolled back.
    /// [`transaction`] turns this back into the caller's own error.
    #[error("transaction aborted by its caller")]
    Aborted,
}

impl StoreError {
    /// A backend failure with its cause.
    pub fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend(Arc::from(e.into()))
    }
}

/// Backend errors compare by what they say: their causes need not be comparable.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        use StoreError::*;
        match (self, other) {
            (AlreadyExists { kind: a, key: b }, AlreadyExists { kind: c, key: d })
            | (NotFound { kind: a, key: b }, NotFound { kind: c, key: d }) => a == c && b == d,
            (
                Conflict {
                    kind: a,
                    key: b,
                    expected: e1,
                    actual: a1,
                },
                Conflict {
                    kind: c,
                    key: d,
                    expected: e2,
                    actual: a2,
                },
            ) => a == c && b == d && e1 == e2 && a1 == a2,
            (
                Expired {
                    requested: r1,
                    oldest: o1,
                },
                Expired {
                    requested: r2,
                    oldest: o2,
                },
            ) => r1 == r2 && o1 == o2,
            (Backend(a), Backend(b)) => a.to_string() == b.to_string(),
            (Aborted, Aborted) => true,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Reads and writes inside one transaction: all of them apply, or none.
pub trait Tx {
    fn get(&mut self, kind: &str, key: &str) -> Result<Option<Arc<Object>>>;
    /// The revision an object is at, as this transaction sees it (`None`: it does not exist).
    /// Backends can answer it without reading the object.
    fn revision_of(&mut self, kind: &str, key: &str) -> Result<Option<Revision>> {
        Ok(self.get(kind, key)?.map(|o| o.revision))
    }
    /// Objects of a kind whose key starts with `prefix`, in key order.
    fn list(&mut self, kind: &str, prefix: &str) -> Result<Vec<Arc<Object>>>;
    fn create(&mut self, kind: &str, key: &str, value: &Value) -> Result<Arc<Object>>;
    /// Replace an object; with `expected`, only if it is still at that revision.
    fn update(
        &mut self,
        kind: &str,
        key: &str,
        value: &Value,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>>;
    fn delete(&mut self, kind: &str, key: &str, expected: Option<Revision>) -> Result<Arc<Object>>;
    /// The latest revision, as this transaction sees it.
    fn revision(&self) -> Revision;
}

/// A versioned object store.
pub trait Store: Send + Sync {
    /// The latest committed version of an object, outside any transaction.
    /// Shared, so reads copy nothing.
    fn get(&self, kind: &str, key: &str) -> Result<Option<Arc<Object>>>;
    /// Committed objects of a kind whose key starts with `prefix`, in key order, and the
    /// revision they were read at.
    fn list(&self, kind: &str, prefix: &str) -> Result<(Vec<Arc<Object>>, Revision)>;
    /// Like `list`, but handing each object to `f` in turn instead of holding them all: a scan
    /// of thousands of objects needs memory for one. Returns the revision they were read at.
    fn scan(&self, kind: &str, prefix: &str, f: &mut dyn FnMut(Object)) -> Result<Revision>;
    /// Run `f` in one transaction. It commits when `f` returns `Ok`, and rolls back otherwise.
    fn transact(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// Changes to objects of `kind` with keys starting with `prefix`, after revision `after`.
    fn watch(&self, kind: &str, prefix: &str, after: Revision) -> Result<Watcher> {
        self.watch_selection(Selection::new(kind, prefix), after)
    }
    /// Changes to the objects a [`Selection`] takes in, after revision `after`.
    fn watch_selection(&self, selection: Selection, after: Revision) -> Result<Watcher>;
    /// The latest revision.
    fn revision(&self) -> Result<Revision>;
    /// Delete every object (as events, so watchers see it).
    fn reset(&self) -> Result<()>;

    /// The oldest revision a watch can still start after (history before it is compacted).
    /// A list continued from an older revision cannot be consistent.
    fn oldest_watchable(&self) -> Result<Revision> {
        Ok(0)
    }
}

/// Convenience over [`Store::transact`]: a transaction that returns a value, or the caller's own
/// error. An `Err` from `f` rolls the transaction back and comes out unchanged, typed: a
/// Kubernetes `Invalid` or an EKS `ResourceInUseException` raised halfway through is not
/// flattened into a store error. Store errors become `E` through `From`.
pub fn transaction<R, E: From<StoreError>, S: Store + ?Sized>(
    store: &S,
    mut f: impl FnMut(&mut dyn Tx) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let mut out = None;
    let mut refused = None;
    let result = store.transact(&mut |tx| match f(tx) {
        Ok(v) => {
            out = Some(v);
            Ok(())
        }
        Err(e) => {
            refused = Some(e);
            Err(StoreError::Aborted)
        }
    });
    if let Some(e) = refused {
        return Err(e);
    }
    result?;
    out.ok_or_else(|| StoreError::backend("transaction returned nothing").into())
}

/// Wait until a record of `kind` under `prefix` changes after `revision` (the revision of the
/// list the caller acted on), or `limit` passes: what a supervisor that keeps something per
/// record (a listener, a set of controllers) does between passes, instead of polling.
pub async fn changed_since(
    store: &dyn Store,
    kind: &str,
    prefix: &str,
    revision: Revision,
    limit: std::time::Duration,
) {
    let Ok(mut watcher) = store.watch(kind, prefix, revision) else {
        // History compacted past the list: the caller's next list is newer anyway.
        return;
    };
    let _ = tokio::time::timeout(limit, watcher.next()).await;
}

/// Single-write helpers, each its own transaction.
pub trait StoreExt {
    fn create(&self, kind: &str, key: &str, value: &Value) -> Result<Arc<Object>>;
    fn update(
        &self,
        kind: &str,
        key: &str,
        value: &Value,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>>;
    fn delete(&self, kind: &str, key: &str, expected: Option<Revision>) -> Result<Arc<Object>>;
}

impl<S: Store + ?Sized> StoreExt for S {
    fn create(&self, kind: &str, key: &str, value: &Value) -> Result<Arc<Object>> {
        transaction(self, |tx| tx.create(kind, key, value))
    }
    fn update(
        &self,
        kind: &str,
        key: &str,
        value: &Value,
        expected: Option<Revision>,
    ) -> Result<Arc<Object>> {
        transaction(self, |tx| tx.update(kind, key, value, expected))
    }
    fn delete(&self, kind: &str, key: &str, expected: Option<Revision>) -> Result<Arc<Object>> {
        transaction(self, |tx| tx.delete(kind, key, expected))
    }
}

/// What a watch takes in: objects of one kind whose keys start with `prefix` (and, when `any_of`
/// is not empty, with one of its prefixes), except those under any of the `except` prefixes.
/// Filtered where changes are published, so a watcher that has no use for a busy type of object
/// (a controller, for Events; one that cares about Services, for pods) is not kept busy taking
/// them, and does not fall behind and re-read the log because of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: String,
    pub prefix: String,
    pub any_of: Vec<String>,
    pub except: Vec<String>,
}

impl Selection {
    pub fn new(kind: &str, prefix: &str) -> Self {
        Selection {
            kind: kind.to_string(),
            prefix: prefix.to_string(),
            any_of: Vec::new(),
            except: Vec::new(),
        }
    }

    /// Objects of `kind` whose keys start with one of `prefixes` (none: nothing at all).
    pub fn any_of(kind: &str, prefixes: &[String]) -> Self {
        Selection {
            kind: kind.to_string(),
            prefix: String::new(),
            // An empty list would take in everything; a key never starts with U+10FFFF.
            any_of: if prefixes.is_empty() {
                vec!["\u{10FFFF}".to_string()]
            } else {
                prefixes.to_vec()
            },
            except: Vec::new(),
        }
    }

    /// Leave out objects whose keys start with `prefix`.
    pub fn except(mut self, prefix: &str) -> Self {
        self.except.push(prefix.to_string());
        self
    }

    /// Whether an object of `kind` at `key` is taken in.
    pub fn wants(&self, kind: &str, key: &str) -> bool {
        kind == self.kind
            && key.starts_with(&self.prefix)
            && (self.any_of.is_empty() || self.any_of.iter().any(|p| key.starts_with(p.as_str())))
            && !self.except.iter().any(|e| key.starts_with(e.as_str()))
    }
}

/// How a watcher reads the event log, at the start and to catch up after falling behind the
/// live stream: the logged events after a revision, a page at a time, and, once the page reaches
/// the end of the log, a live receiver that continues from there (`None`: read another page).
/// The revision returned is how far the log was read (the last revision of a page, including
/// changes the selection left out; the store's revision at the end of the log).
pub type Refill = Arc<
    dyn Fn(
            &Selection,
            Revision,
        ) -> Result<(
            std::collections::VecDeque<Event>,
            Option<LiveReceiver>,
            Revision,
        )> + Send
        + Sync,
>;

/// A stream of changes: first the retained history after the requested revision, then live ones.
pub struct Watcher {
    selection: Selection,
    backlog: std::collections::VecDeque<Event>,
    /// `None` while the watcher reads the log page by page.
    live: Option<LiveReceiver>,
    /// The last revision delivered; live events at or below it were in the backlog.
    last: Revision,
    /// How far the event log was read: the next page starts after it (or after `last`).
    read_to: Revision,
    /// Set once live events were lost for good: every later `next` is `Expired`.
    expired: bool,
    /// Catches up after the live buffer overflowed; without it (or when the log no longer
    /// reaches back far enough) a lagging watcher expires.
    refill: Option<Refill>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("selection", &self.selection)
            .field("backlog", &self.backlog.len())
            .field("last", &self.last)
            .finish()
    }
}

impl Watcher {
    fn wants(&self, e: &Event) -> bool {
        self.selection.wants(&e.object.kind, &e.object.key)
    }

    /// The next change, waiting for one. `Err(Expired)` when this watcher fell too far behind
    /// the live stream: list again and watch from there.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(step) = self.ready() {
                return step;
            }
            let Some(live) = self.live.as_mut() else {
                continue;
            };
            let live = live.recv().await;
            if let Some(step) = self.take(live) {
                return step;
            }
        }
    }

    /// The next change if one is ready, without waiting: `None` when there is none now.
    pub fn try_next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(step) = self.ready() {
                return Some(step);
            }
            let Some(live) = self.live.as_mut() else {
                continue;
            };
            let live = live.try_recv()?;
            if let Some(step) = self.take(live) {
                return Some(step);
            }
        }
    }

    /// What can be answered without waiting on the live queue: expiry, the backlog, or the next
    /// page of the log. `None`: wait on the live queue.
    fn ready(&mut self) -> Option<Result<Event>> {
        loop {
            if self.expired {
                return Some(Err(StoreError::Expired {
                    requested: self.last,
                    oldest: self.last.saturating_add(1),
                }));
            }
            if let Some(e) = self.backlog.pop_front() {
                self.last = e.revision();
                return Some(Ok(e));
            }
            if self.live.is_some() {
                return None;
            }
            // Reading the log: the next page (and, at its end, the live queue).
            let from = self.last.max(self.read_to);
            match self
                .refill
                .as_ref()
                .map(|refill| refill(&self.selection, from))
            {
                Some(Ok((backlog, live, reached))) => {
                    self.read_to = reached;
                    if backlog.is_empty() {
                        self.last = self.last.max(reached);
                    }
                    self.backlog = backlog;
                    self.live = live;
                }
                // Events were lost: this watcher stays expired.
                _ => self.expired = true,
            }
        }
    }

    /// Handle one thing from the live queue: a change to deliver, or `None` to look again (a
    /// change this watcher does not want, or the queue overflowed and the log takes over).
    fn take(&mut self, live: Live) -> Option<Result<Event>> {
        match live {
            Live::Event(e) if e.revision() > self.last && self.wants(&e) => {
                self.last = e.revision();
                Some(Ok(e))
            }
            Live::Event(_) => None,
            Live::Lagged => {
                // The log has what the queue dropped: read it from the last delivered change.
                self.live = None;
                None
            }
            Live::Closed => Some(Err(StoreError::backend("store closed"))),
        }
    }

    /// The last revision this watcher delivered (or started after).
    pub fn last_revision(&self) -> Revision {
        self.last
    }
}
