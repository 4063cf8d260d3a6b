//! Live changes, fanned out to watchers as they commit.
//!
//! Each watcher has its own bounded queue, filtered by kind and key prefix when the change is
//! published, so a change is held only until every watcher that wants it has taken it (a shared
//! ring buffer would keep the last N changes, and the objects in them, alive for good). A watcher
//! whose queue is full is cut off: it drains what it has, then reads as lagging and catches up
//! from the event log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::{Event, Selection};

struct Subscriber {
    selection: Selection,
    queue: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

/// The publishing side: every subscriber's queue.
pub struct Fanout {
    subscribers: Mutex<Vec<Subscriber>>,
    capacity: usize,
}

/// What a live receiver got.
#[derive(Debug)]
pub enum Live {
    Event(Event),
    /// Changes were dropped because this receiver's queue was full.
    Lagged,
    /// The store is gone.
    Closed,
}

/// One watcher's queue of live changes.
pub struct LiveReceiver {
    queue: mpsc::Receiver<Event>,
    lagged: Arc<AtomicBool>,
}

impl LiveReceiver {
    pub async fn recv(&mut self) -> Live {
        match self.queue.recv().await {
            Some(e) => Live::Event(e),
            None => self.let_go(),
        }
    }

    /// A change that is already queued, without waiting: `None` when there is none.
    pub fn try_recv(&mut self) -> Option<Live> {
        match self.queue.try_recv() {
            Ok(e) => Some(Live::Event(e)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(self.let_go()),
        }
    }

    /// The publisher let go of this queue: because it overflowed, or because it is gone.
    fn let_go(&self) -> Live {
        if self.lagged.load(Ordering::Acquire) {
            Live::Lagged
        } else {
            Live::Closed
        }
    }
}

impl Fanout {
    /// Queues hold at most `capacity` changes each.
    pub fn new(capacity: usize) -> Self {
        Fanout {
            subscribers: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A queue for changes to the objects `selection` takes in. Only changes published after
    /// this call arrive in it.
    pub fn subscribe(&self, selection: Selection) -> LiveReceiver {
        let (queue, rx) = mpsc::channel(self.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().push(Subscriber {
            selection,
            queue,
            lagged: lagged.clone(),
        });
        LiveReceiver { queue: rx, lagged }
    }

    /// Hand committed changes, in revision order, to every watcher that wants them.
    pub fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        self.lock().retain(|s| {
            for e in events {
                if !s.selection.wants(&e.object.kind, &e.object.key) {
                    continue;
                }
                match s.queue.try_send(e.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            // A watcher that was dropped is forgotten at the next change.
            !s.queue.is_closed()
        });
    }

    /// How many watchers are subscribed (tests).
    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Object};

    fn event(kind: &str, key: &str, revision: u64) -> Event {
        Event {
            event_type: EventType::Added,
            object: Arc::new(Object {
                kind: kind.to_string(),
                key: key.to_string(),
                value: serde_json::json!({}),
                revision,
                created: revision,
            }),
        }
    }

    #[tokio::test]
    async fn filters_by_kind_and_prefix() {
        let fanout = Fanout::new(8);
        let mut rx = fanout.subscribe(Selection::new("k", "pods/"));
        fanout.publish(&[
            event("k", "nodes/a", 1),
            event("other", "pods/a", 2),
            event("k", "pods/a", 3),
        ]);
        match rx.recv().await {
            Live::Event(e) => assert_eq!(e.revision(), 3),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drains_then_reads_as_lagging() {
        let fanout = Fanout::new(2);
        let mut rx = fanout.subscribe(Selection::new("k", ""));
        fanout.publish(&[event("k", "a", 1), event("k", "b", 2), event("k", "c", 3)]);
        assert_eq!(fanout.subscribers(), 0, "the overflowing queue is let go");
        for want in [1, 2] {
            match rx.recv().await {
                Live::Event(e) => assert_eq!(e.revision(), want),
                other => panic!("expected event {want}, got {other:?}"),
            }
        }
        assert!(matches!(rx.recv().await, Live::Lagged));
    }

    #[test]
    fn try_recv_takes_what_is_queued_without_waiting() {
        let fanout = Fanout::new(1);
        let mut rx = fanout.subscribe(Selection::new("k", ""));
        assert!(rx.try_recv().is_none());
        fanout.publish(&[event("k", "a", 1)]);
        assert!(matches!(rx.try_recv(), Some(Live::Event(_))));
        assert!(rx.try_recv().is_none());
        fanout.publish(&[event("k", "b", 2), event("k", "c", 3)]);
        assert!(matches!(rx.try_recv(), Some(Live::Event(_))));
        assert!(matches!(rx.try_recv(), Some(Live::Lagged)));
    }

    #[tokio::test]
    async fn dropped_receivers_are_forgotten_and_a_dropped_fanout_closes() {
        let fanout = Fanout::new(4);
        drop(fanout.subscribe(Selection::new("k", "")));
        let mut rx = fanout.subscribe(Selection::new("k", ""));
        fanout.publish(&[event("k", "a", 1)]);
        assert_eq!(fanout.subscribers(), 1);
        drop(fanout);
        assert!(matches!(rx.recv().await, Live::Event(_)));
        assert!(matches!(rx.recv().await, Live::Closed));
    }

    #[tokio::test]
    async fn consumed_changes_are_released() {
        let fanout = Fanout::new(16);
        let mut rx = fanout.subscribe(Selection::new("k", ""));
        let e = event("k", "a", 1);
        let object = e.object.clone();
        fanout.publish(&[e]);
        assert_eq!(Arc::strong_count(&object), 2, "queued");
        drop(rx.recv().await);
        assert_eq!(
            Arc::strong_count(&object),
            1,
            "nothing keeps a taken change"
        );
    }
}
