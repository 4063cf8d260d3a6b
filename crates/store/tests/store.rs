//! The store's contract: revisions, compare-and-swap, transactions, watch, durability.

use std::sync::Arc;

use localfargate_store::{
    EventType, Selection, SqliteStore, Store, StoreError, StoreExt, transaction,
};
use serde_json::json;

#[test]
fn revisions_increase_and_objects_carry_them() {
    let s = SqliteStore::in_memory().unwrap();
    let a = s.create("pod", "ns/a", &json!({"n": 1})).unwrap();
    let b = s.create("pod", "ns/b", &json!({"n": 2})).unwrap();
    assert_eq!((a.revision, b.revision), (1, 2));
    let a2 = s.update("pod", "ns/a", &json!({"n": 3}), None).unwrap();
    assert_eq!((a2.revision, a2.created), (3, 1));
    assert_eq!(
        s.get("pod", "ns/a").unwrap().unwrap().value.clone(),
        json!({"n": 3})
    );
    assert_eq!(s.revision().unwrap(), 3);
    assert_eq!(
        s.create("pod", "ns/a", &json!({})).unwrap_err(),
        StoreError::AlreadyExists {
            kind: "pod".into(),
            key: "ns/a".into()
        }
    );
}

#[test]
fn compare_and_swap() {
    let s = SqliteStore::in_memory().unwrap();
    let a = s.create("pod", "a", &json!(1)).unwrap();
    s.update("pod", "a", &json!(2), Some(a.revision)).unwrap();
    let err = s
        .update("pod", "a", &json!(3), Some(a.revision))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        s.delete("pod", "a", Some(1)).unwrap_err(),
        StoreError::Conflict { .. }
    ));
    assert!(matches!(
        s.delete("pod", "zz", None).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    let gone = s.delete("pod", "a", Some(2)).unwrap();
    assert_eq!(gone.revision, 3);
    assert!(s.get("pod", "a").unwrap().is_none());
}

#[test]
fn list_by_prefix_in_key_order() {
    let s = SqliteStore::in_memory().unwrap();
    for key in ["c1/b", "c1/a", "c10/a", "c2/a"] {
        s.create("fargateprofile", key, &json!(key)).unwrap();
    }
    s.create("cluster", "c1", &json!({})).unwrap();
    let (objects, rev) = s.list("fargateprofile", "c1/").unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["c1/a", "c1/b"]);
    assert_eq!(rev, 5);
    assert_eq!(s.list("fargateprofile", "").unwrap().0.len(), 4);
}

#[test]
fn failed_transactions_leave_nothing() {
    let s = SqliteStore::in_memory().unwrap();
    s.create("x", "taken", &json!(0)).unwrap();
    let err = transaction(&s, |tx| {
        tx.create("x", "new", &json!(1))?;
        tx.create("x", "taken", &json!(2))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }));
    assert!(
        s.get("x", "new").unwrap().is_none(),
        "the first create rolled back"
    );
    assert_eq!(s.revision().unwrap(), 1, "no revision consumed");
}

#[tokio::test]
async fn watch_replays_then_streams() {
    let s = SqliteStore::in_memory().unwrap();
    s.create("pod", "ns/a", &json!(1)).unwrap();
    s.create("pod", "other/b", &json!(1)).unwrap();
    s.update("pod", "ns/a", &json!(2), None).unwrap();
    let mut w = s.watch("pod", "ns/", 0).unwrap();
    let e = w.next().await.unwrap();
    assert_eq!((e.event_type, e.revision()), (EventType::Added, 1));
    let e = w.next().await.unwrap();
    assert_eq!(
        (e.event_type, e.revision(), e.object.value.clone()),
        (EventType::Modified, 3, json!(2))
    );
    s.create("svc", "ns/x", &json!(1)).unwrap();
    s.delete("pod", "ns/a", None).unwrap();
    let e = w.next().await.unwrap();
    assert_eq!(
        (e.event_type, e.revision(), e.object.value.clone()),
        (EventType::Deleted, 5, json!(2))
    );
    let mut from_now = s.watch("pod", "", s.revision().unwrap()).unwrap();
    s.create("pod", "ns/c", &json!(1)).unwrap();
    assert_eq!(from_now.next().await.unwrap().object.key, "ns/c");
}

#[tokio::test]
async fn compacted_history_is_expired() {
    let s = SqliteStore::in_memory().unwrap().with_retained_events(10);
    for i in 0..50 {
        s.create("pod", &format!("p{i}"), &json!(i)).unwrap();
    }
    assert!(matches!(
        s.watch("pod", "", 5).unwrap_err(),
        StoreError::Expired { requested: 5, .. }
    ));
    assert!(s.watch("pod", "", 45).is_ok());
    assert!(
        s.watch("pod", "", 50).is_ok(),
        "watching from now never expires"
    );
}

#[test]
fn reset_deletes_everything_and_revisions_keep_growing() {
    let s = SqliteStore::in_memory().unwrap();
    s.create("a", "1", &json!(1)).unwrap();
    s.create("b", "2", &json!(1)).unwrap();
    s.reset().unwrap();
    assert!(s.list("a", "").unwrap().0.is_empty() && s.list("b", "").unwrap().0.is_empty());
    assert_eq!(s.create("a", "1", &json!(1)).unwrap().revision, 5);
}

#[test]
fn survives_reopen_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("store.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create("cluster", "c1", &json!({"status": "CREATING"}))
            .unwrap();
        s.update("cluster", "c1", &json!({"status": "ACTIVE"}), Some(1))
            .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.revision().unwrap(), 2);
    assert_eq!(
        s.get("cluster", "c1").unwrap().unwrap().value["status"].clone(),
        "ACTIVE"
    );
    assert_eq!(s.create("cluster", "c2", &json!({})).unwrap().revision, 3);
}

#[test]
fn concurrent_writers_keep_unique_revisions() {
    let s = Arc::new(SqliteStore::in_memory().unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        s.create("k", &format!("{t}-{i}"), &json!(i))
                            .unwrap()
                            .revision
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 800);
    assert_eq!(*all.last().unwrap(), 800);
}

#[test]
fn one_process_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path)
        .err()
        .expect("a second open is refused");
    assert!(
        err.to_string()
            .contains("in use by another localfargate process"),
        "{err}"
    );
    drop(first);
    assert!(
        SqliteStore::open(&path).is_ok(),
        "free again once the first is gone"
    );
}

#[test]
fn a_panicking_transaction_does_not_wedge_the_store() {
    let s = Arc::new(SqliteStore::in_memory().unwrap());
    let s2 = s.clone();
    let _ = std::thread::spawn(move || {
        let _ = transaction(s2.as_ref(), |tx| -> localfargate_store::Result<()> {
            tx.create("x", "half", &json!(1))?;
            panic!("a bug in a caller");
        });
    })
    .join();
    assert!(s.get("x", "half").unwrap().is_none(), "rolled back");
    assert_eq!(s.create("x", "after", &json!(1)).unwrap().key, "after");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_catches_up_from_the_log() {
    let store = SqliteStore::in_memory().unwrap();
    let mut w = store.watch("k", "", 0).unwrap();
    // Far more writes than the live buffer holds, none of them read yet.
    for i in 0..10_000u64 {
        store
            .create("k", &format!("o{i:05}"), &json!({"i": i}))
            .unwrap();
        store
            .create("other", &format!("x{i:05}"), &json!({}))
            .unwrap();
    }
    let mut seen = 0u64;
    let mut last = 0;
    while seen < 10_000 {
        let e = w.next().await.unwrap();
        assert!(e.revision() > last, "in revision order");
        last = e.revision();
        assert_eq!(e.object.key, format!("o{seen:05}"));
        seen += 1;
    }
    // And it keeps streaming live.
    store.create("k", "live", &json!({})).unwrap();
    assert_eq!(w.next().await.unwrap().object.key, "live");
}

#[tokio::test]
async fn a_watch_from_the_past_reads_the_log_a_page_at_a_time_then_streams() {
    let store = SqliteStore::in_memory().unwrap();
    // More history than one page of the log, interleaved with changes the watcher does not want.
    for i in 0..2_500u64 {
        store
            .create("k", &format!("a/{i:05}"), &json!({"i": i}))
            .unwrap();
        store.create("k", &format!("b/{i:05}"), &json!({})).unwrap();
    }
    let mut w = store.watch("k", "a/", 0).unwrap();
    // Written while the watcher is still paging through the log.
    store.create("k", "a/live-1", &json!({})).unwrap();
    for i in 0..2_500u64 {
        let e = w.next().await.unwrap();
        assert_eq!(e.object.key, format!("a/{i:05}"));
    }
    assert_eq!(w.next().await.unwrap().object.key, "a/live-1");
    assert!(w.try_next().is_none(), "nothing else is ready");
    store.create("k", "a/live-2", &json!({})).unwrap();
    assert_eq!(w.try_next().unwrap().unwrap().object.key, "a/live-2");
}

#[tokio::test]
async fn a_selection_leaves_out_its_exceptions_live_and_from_the_log() {
    let store = SqliteStore::in_memory().unwrap();
    let only_pods = || Selection::new("k", "").except("events/");
    // From the past: whole pages of the log hold only changes the watcher leaves out.
    store.create("k", "pods/first", &json!({})).unwrap();
    for i in 0..1_000u64 {
        store
            .create("k", &format!("events/{i:05}"), &json!({}))
            .unwrap();
    }
    store.create("k", "pods/second", &json!({})).unwrap();
    let mut from_past = store.watch_selection(only_pods(), 0).unwrap();
    let mut lagging = store.watch_selection(only_pods(), 0).unwrap();
    let mut live = store
        .watch_selection(only_pods(), store.revision().unwrap())
        .unwrap();
    assert_eq!(from_past.next().await.unwrap().object.key, "pods/first");
    assert_eq!(from_past.next().await.unwrap().object.key, "pods/second");
    assert!(from_past.try_next().is_none());
    // Live: left out where changes are published, so a flood of them cannot overflow the queue.
    for i in 1_000..20_000u64 {
        store
            .create("k", &format!("events/{i:05}"), &json!({}))
            .unwrap();
    }
    store.create("k", "pods/third", &json!({})).unwrap();
    for w in [&mut from_past, &mut live] {
        let e = w.try_next().unwrap().unwrap();
        assert_eq!(e.object.key, "pods/third");
        assert_eq!(e.revision(), store.revision().unwrap());
        assert!(w.try_next().is_none());
    }
    // A watcher that fell behind while wanted changes were mixed in catches up from the log
    // with its exceptions still left out, and reports how far it read.
    for i in 0..2_000u64 {
        store
            .create("k", &format!("pods/p{i:05}"), &json!({}))
            .unwrap();
        store
            .create("k", &format!("events/x{i:05}"), &json!({}))
            .unwrap();
    }
    let mut keys = Vec::new();
    while let Some(e) = lagging.try_next() {
        keys.push(e.unwrap().object.key.clone());
    }
    assert_eq!(keys.len(), 3 + 2_000);
    assert!(keys.iter().all(|k| k.starts_with("pods/")), "{keys:?}");
    assert_eq!(lagging.last_revision(), store.revision().unwrap() - 1);
}

#[test]
fn a_failed_transaction_leaves_the_cache_alone() {
    let store = SqliteStore::in_memory().unwrap();
    store.create("k", "a", &json!({"v": 1})).unwrap();
    let failed = localfargate_store::transaction(&store, |tx| {
        tx.update("k", "a", &json!({"v": 2}), None)?;
        // The transaction sees its own write...
        assert_eq!(tx.get("k", "a")?.unwrap().value, json!({"v": 2}));
        tx.create("k", "a", &json!({}))
    });
    assert!(failed.is_err());
    // ...and nobody else does once it rolled back.
    assert_eq!(store.get("k", "a").unwrap().unwrap().value, json!({"v": 1}));
    assert_eq!(
        localfargate_store::transaction(&store, |tx| tx.get("k", "a"))
            .unwrap()
            .unwrap()
            .value,
        json!({"v": 1})
    );
}

#[test]
fn objects_read_back_exactly_as_written_from_the_packed_cache_and_after_reopen() {
    // Enough objects of one type that the cache packs them against each other (its dictionaries
    // are rebuilt after 1, 4, 16, 64, 256 writes), with updates and deletions among them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let pod = |i: usize, phase: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("p{i}"), "namespace": "ns",
                            "uid": format!("uid-{i:08}"), "labels": {"app": "web", "n": i}},
               "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": format!("n{i}")},
               "status": {"phase": phase, "podIP": format!("10.0.{}.{}", i / 250, i % 250)}})
    };
    let mut want = std::collections::BTreeMap::new();
    {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..600 {
            store
                .create("k", &format!("core/pods/ns/p{i:04}"), &pod(i, "Pending"))
                .unwrap();
            want.insert(format!("core/pods/ns/p{i:04}"), pod(i, "Pending"));
        }
        for i in (0..600).step_by(3) {
            store
                .update(
                    "k",
                    &format!("core/pods/ns/p{i:04}"),
                    &pod(i, "Running"),
                    None,
                )
                .unwrap();
            want.insert(format!("core/pods/ns/p{i:04}"), pod(i, "Running"));
        }
        for i in (0..600).step_by(7) {
            store
                .delete("k", &format!("core/pods/ns/p{i:04}"), None)
                .unwrap();
            want.remove(&format!("core/pods/ns/p{i:04}"));
        }
        store
            .create(
                "k",
                "core/namespaces//ns",
                &json!({"metadata": {"name": "ns"}}),
            )
            .unwrap();
        let check = |store: &SqliteStore| {
            let (pods, _) = store.list("k", "core/pods/").unwrap();
            assert_eq!(pods.len(), want.len());
            for (o, (k, v)) in pods.iter().zip(&want) {
                assert_eq!((&o.key, &o.value), (k, v));
            }
            for (k, v) in want.iter().step_by(11) {
                assert_eq!(&store.get("k", k).unwrap().unwrap().value, v);
                let in_tx = localfargate_store::transaction(store, |tx| tx.get("k", k)).unwrap();
                assert_eq!(&in_tx.unwrap().value, v);
            }
            assert_eq!(
                store
                    .get("k", "core/namespaces//ns")
                    .unwrap()
                    .unwrap()
                    .value,
                json!({"metadata": {"name": "ns"}})
            );
        };
        check(&store);
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        check(&reopened);
        // Creating an existing key is refused from the cache alone.
        assert!(matches!(
            reopened.create("k", "core/pods/ns/p0001", &json!({})),
            Err(StoreError::AlreadyExists { .. })
        ));
    }
}

#[test]
fn kinds_kept_decoded_are_shared_not_decoded_per_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = SqliteStore::open(&path)
            .unwrap()
            .with_decoded_kinds(&["eks/"])
            .unwrap();
        store.create("eks/cluster", "c", &json!({"v": 1})).unwrap();
        store
            .create("k8s/c", "core/pods/ns/p", &json!({"v": 1}))
            .unwrap();
        let a = store.get("eks/cluster", "c").unwrap().unwrap();
        let b = store.get("eks/cluster", "c").unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "kept decoded: one shared object");
        let p = store.get("k8s/c", "core/pods/ns/p").unwrap().unwrap();
        let q = store.get("k8s/c", "core/pods/ns/p").unwrap().unwrap();
        assert!(!Arc::ptr_eq(&p, &q), "packed: decoded per read");
        assert_eq!(p, q);
        store
            .update("eks/cluster", "c", &json!({"v": 2}), None)
            .unwrap();
        let (listed, _) = store.list("eks/cluster", "").unwrap();
        assert_eq!(listed[0].value, json!({"v": 2}));
    }
    // Objects loaded at start are kept decoded too.
    let store = SqliteStore::open(&path)
        .unwrap()
        .with_decoded_kinds(&["eks/"])
        .unwrap();
    let a = store.get("eks/cluster", "c").unwrap().unwrap();
    let b = store.get("eks/cluster", "c").unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.value, json!({"v": 2}));
    assert_eq!(a.revision, 3);
}

#[test]
fn uncached_types_live_in_sqlite_only_and_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let open = || {
        SqliteStore::open(&path)
            .unwrap()
            .with_uncached_types("k", &["core/events/"])
    };
    let s = open();
    s.create("k", "core/pods/ns/a", &json!({"p": 1})).unwrap();
    let e1 = s
        .create("k", "core/events/ns/e1", &json!({"e": 1}))
        .unwrap();
    s.create("k", "core/events/ns/e2", &json!({"e": 2}))
        .unwrap();
    s.create("k", "core/nodes/n", &json!({"n": 1})).unwrap();
    s.create("k", "apps/deployments/ns/d", &json!({})).unwrap();
    s.create("k", "core/configmaps/ns/c", &json!({})).unwrap();
    // Only the kinds named are left out of the cache.
    s.create("other", "core/events/ns/e", &json!({})).unwrap();
    assert!(
        s.footprint()
            .iter()
            .all(|f| f.prefix != "core/events/" || f.kind == "other"),
        "the memory cache holds no Events of the kinds named"
    );
    // Reads, writes and their checks behave as for cached objects.
    assert_eq!(
        s.get("k", "core/events/ns/e1").unwrap().unwrap().value,
        json!({"e": 1})
    );
    assert!(s.get("k", "core/events/ns/none").unwrap().is_none());
    assert!(matches!(
        s.create("k", "core/events/ns/e1", &json!({})),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.update(
            "k",
            "core/events/ns/e1",
            &json!({"e": 9}),
            Some(e1.revision + 100)
        ),
        Err(StoreError::Conflict { .. })
    ));
    let e1b = s
        .update(
            "k",
            "core/events/ns/e1",
            &json!({"e": 10}),
            Some(e1.revision),
        )
        .unwrap();
    assert_eq!(e1b.created, e1.revision);
    let seen = transaction(&s, |tx| {
        tx.update("k", "core/events/ns/e2", &json!({"e": 20}), None)?;
        Ok::<_, StoreError>(tx.get("k", "core/events/ns/e2")?.unwrap().value.clone())
    })
    .unwrap();
    assert_eq!(seen, json!({"e": 20}));
    // Lists merge both sources in key order, at one revision.
    let keys = |prefix: &str| -> Vec<String> {
        s.list("k", prefix)
            .unwrap()
            .0
            .iter()
            .map(|o| o.key.clone())
            .collect()
    };
    assert_eq!(
        keys(""),
        [
            "apps/deployments/ns/d",
            "core/configmaps/ns/c",
            "core/events/ns/e1",
            "core/events/ns/e2",
            "core/nodes/n",
            "core/pods/ns/a"
        ]
    );
    assert_eq!(
        keys("core/events/ns/e"),
        ["core/events/ns/e1", "core/events/ns/e2"]
    );
    assert_eq!(keys("core/p"), ["core/pods/ns/a"]);
    let (_, at) = s.list("k", "").unwrap();
    assert_eq!(at, s.revision().unwrap());
    s.delete("k", "core/events/ns/e2", None).unwrap();
    assert_eq!(keys("core/events/"), ["core/events/ns/e1"]);
    drop(s);
    // Kept across a restart, still out of the cache.
    let s = open();
    assert_eq!(
        s.get("k", "core/events/ns/e1").unwrap().unwrap().value,
        json!({"e": 10})
    );
    assert!(
        s.footprint()
            .iter()
            .all(|f| f.prefix != "core/events/" || f.kind == "other")
    );
}

#[test]
fn the_oldest_watchable_revision_moves_with_compaction() {
    let s = SqliteStore::in_memory().unwrap().with_retained_events(10);
    assert_eq!(s.oldest_watchable().unwrap(), 1);
    for i in 0..1100 {
        s.create("k", &format!("core/configmaps/ns/c{i}"), &json!({"i": i}))
            .unwrap();
    }
    let oldest = s.oldest_watchable().unwrap();
    assert!(
        oldest > 1000,
        "history compacted to the last events: {oldest}"
    );
    // A list continued from before that cannot be consistent; one from after it can.
    let (_, now) = s.list("k", "").unwrap();
    assert!(now >= oldest);
}

#[tokio::test]
async fn a_selection_of_several_prefixes_takes_in_only_those_live_and_from_the_log() {
    let store = SqliteStore::in_memory().unwrap();
    let chosen = || Selection::any_of("k", &["services/".to_string(), "nodes/".to_string()]);
    for (i, key) in ["services/a", "pods/a", "nodes/a", "pods/b", "servicesx"]
        .iter()
        .enumerate()
    {
        store.create("k", key, &json!({ "i": i })).unwrap();
    }
    store.create("other", "services/b", &json!({})).unwrap();
    // From the log.
    let mut from_log = store.watch_selection(chosen(), 0).unwrap();
    let mut keys = Vec::new();
    while let Some(e) = from_log.try_next() {
        keys.push(e.unwrap().object.key.clone());
    }
    assert_eq!(keys, ["services/a", "nodes/a"]);
    // Live: a flood of pod writes is left out where changes are published, so the queue does
    // not overflow and the watcher never reads the log again.
    let mut live = store
        .watch_selection(chosen(), store.revision().unwrap())
        .unwrap();
    for i in 0..5_000u64 {
        store
            .create("k", &format!("pods/p{i:05}"), &json!({}))
            .unwrap();
    }
    store.create("k", "nodes/b", &json!({})).unwrap();
    for w in [&mut from_log, &mut live] {
        let e = w.try_next().unwrap().unwrap();
        assert_eq!(e.object.key, "nodes/b");
        assert!(w.try_next().is_none());
    }
    // No prefixes: nothing at all.
    let mut none = store
        .watch_selection(Selection::any_of("k", &[]), 0)
        .unwrap();
    assert!(none.try_next().is_none());
    assert!(!Selection::any_of("k", &[]).wants("k", "pods/a"));
}
