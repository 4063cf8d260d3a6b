//! How a level-triggered controller waits: on one long-lived watch of its cluster's objects,
//! woken by changes (handed over, so it can keep indexes up to date without relisting), no more
//! often than its minimum interval, and at least every so often for time-based work.

use std::time::Duration;

use localfargate_store::{Event, Selection, Store, Watcher};
use tokio::time::Instant;

/// A cluster's objects as the controllers watch them: all but Events.
pub fn controlled(store_kind: &str) -> Selection {
    Selection::new(store_kind, "").except(localfargate_registry::resources::EVENTS_KEY_PREFIX)
}

pub struct Wake {
    selection: Selection,
    watcher: Option<Watcher>,
    min_interval: Duration,
    max_wait: Duration,
    last: Instant,
}

/// What a wake brought: the changes since the last one, or `Relist` when the watch fell behind
/// (the caller rebuilds whatever it derived from events).
pub enum Woken {
    Changes(Vec<Event>),
    Relist,
}

impl Wake {
    /// Woken by changes to any of the cluster's objects but Events.
    pub fn new(kind: &str, min_interval: Duration, max_wait: Duration) -> Self {
        Self::on(controlled(kind), min_interval, max_wait)
    }

    /// Woken only by changes to objects under `prefixes`: a controller that cares about a few
    /// kinds is not handed every pod write (which, while it reconciles, would fill its queue and
    /// make it re-read the change log).
    pub fn watching(
        kind: &str,
        prefixes: &[String],
        min_interval: Duration,
        max_wait: Duration,
    ) -> Self {
        Self::on(Selection::any_of(kind, prefixes), min_interval, max_wait)
    }

    fn on(selection: Selection, min_interval: Duration, max_wait: Duration) -> Self {
        Wake {
            selection,
            watcher: None,
            min_interval,
            max_wait,
            last: Instant::now(),
        }
    }

    /// Start watching from `revision` (the one the caller's initial list was read at).
    pub fn start(&mut self, store: &dyn Store, revision: u64) {
        self.watcher = store.watch_selection(self.selection.clone(), revision).ok();
    }

    /// Wait for changes (or `max_wait`), then take every change that is ready.
    pub async fn wait(&mut self, store: &dyn Store) -> Woken {
        let Some(watcher) = self.watcher.as_mut() else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.last = Instant::now();
            return Woken::Relist;
        };
        let mut changes = Vec::new();
        let mut relist = false;
        // Changes are taken as they come while the minimum interval runs out: left queued, a
        // busy cluster's changes would overflow the watch, to be read back from the log.
        let earliest = self.last + self.min_interval;
        while !relist && Instant::now() < earliest {
            match tokio::time::timeout_at(earliest, watcher.next()).await {
                Ok(Ok(e)) => changes.push(e),
                Ok(Err(_)) => relist = true,
                Err(_) => break,
            }
        }
        if changes.is_empty() && !relist {
            match tokio::time::timeout(self.max_wait, watcher.next()).await {
                Ok(Ok(e)) => changes.push(e),
                Ok(Err(_)) => relist = true,
                Err(_) => {}
            }
        }
        while !relist {
            match watcher.try_next() {
                Some(Ok(e)) => changes.push(e),
                Some(Err(_)) => relist = true,
                None => break,
            }
        }
        self.last = Instant::now();
        if relist {
            let revision = store.revision().unwrap_or(0);
            self.start(store, revision);
            return Woken::Relist;
        }
        Woken::Changes(changes)
    }
}

impl Wake {
    /// Waits until a change `matters` to the caller, the watch fell behind (it is restarted;
    /// the caller's next read is a fresh one anyway), or `max_wait` passed without changes: for
    /// controllers that reconcile from a fresh read each time and care about a few kinds.
    pub async fn until(&mut self, store: &dyn Store, matters: impl Fn(&Event) -> bool) {
        loop {
            match self.wait(store).await {
                Woken::Relist => return,
                Woken::Changes(changes) if changes.is_empty() || changes.iter().any(&matters) => {
                    return;
                }
                Woken::Changes(_) => {}
            }
        }
    }
}

/// A change to an object whose key starts with one of `prefixes`, for [`Wake::until`].
pub fn under(prefixes: &[String]) -> impl Fn(&Event) -> bool + '_ {
    move |e| {
        prefixes
            .iter()
            .any(|p| e.object.key.starts_with(p.as_str()))
    }
}
