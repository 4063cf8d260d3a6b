//! `?watch=true`: a long-lived chunked stream of `{"type", "object"}` lines from the store's
//! watch, filtered by the request's selectors, as objects or as Table rows.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use localfargate_registry::objects::{KubeError, with_resource_version};
use localfargate_registry::resources::ResourceType;
use localfargate_store::{EventType, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::context::Api;
use crate::request::{Query, Target, selected, selectors};
use crate::response::{TABLE_CONTENT_TYPE, table, wants_table};
use localfargate_registry::meta::resource_version_of;

/// How long a watch stays open without `timeoutSeconds`: upstream's 30 minutes. kubectl
/// `get -w` exits when the stream closes, so it must not be short.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// The annotation of the bookmark that ends a WatchList's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

fn line(event_type: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn expired(requested: u64, oldest: u64) -> Value {
    KubeError::Expired(format!("too old resource version: {requested} ({oldest})")).status()
}

struct Encoder {
    target: Target,
    rt: &'static ResourceType,
    table: bool,
    /// Length-framed protobuf `WatchEvent`s instead of JSON lines.
    protobuf: bool,
}

impl Encoder {
    /// One event in the stream's format. The objects carry their own type (`with_resource_version`
    /// keeps apiVersion and kind), which protobuf needs.
    fn frame(&self, event_type: &str, object: Value) -> Bytes {
        if !self.protobuf {
            return line(event_type, object);
        }
        match crate::protobuf::watch_frame(event_type, &object) {
            Ok(frame) => Bytes::from(frame),
            Err(e) => {
                let status = KubeError::Internal(format!("encoding a watch event: {e}")).status();
                Bytes::from(crate::protobuf::watch_frame("ERROR", &status).unwrap_or_default())
            }
        }
    }

    fn event(&self, event_type: &str, object: Value) -> Bytes {
        if self.table {
            let meta = json!({"resourceVersion": resource_version_of(&object)});
            line(event_type, table(&self.target, &[object], meta))
        } else {
            self.frame(event_type, object)
        }
    }

    fn bookmark(&self, revision: u64) -> Bytes {
        self.frame(
            "BOOKMARK",
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(),
                   "metadata": {"resourceVersion": revision.to_string()}}),
        )
    }

    /// The bookmark that ends a WatchList's initial events: client-go's reflector treats what
    /// came before it as the list, and waits for it before an informer is synced.
    fn initial_events_end(&self, revision: u64) -> Bytes {
        self.frame(
            "BOOKMARK",
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(),
                   "metadata": {"resourceVersion": revision.to_string(),
                                "creationTimestamp": null,
                                "annotations": {INITIAL_EVENTS_END: "true"}}}),
        )
    }

    fn content_type(&self) -> &'static str {
        if self.table {
            TABLE_CONTENT_TYPE
        } else if self.protobuf {
            crate::protobuf::WATCH_CONTENT_TYPE
        } else {
            "application/json"
        }
    }
}

pub fn serve(
    api: &Arc<Api>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let rt = target.rt;
    let (labels, fields) = selectors(rt, query)?;
    let table = wants_table(headers);
    let negotiated = crate::protobuf::negotiate(headers);
    let has_protobuf = crate::protobuf::has_protobuf_form(&rt.api_version(), rt.kind);
    if !table && negotiated.prefers_protobuf && !has_protobuf && !negotiated.accepts_json {
        return Ok(crate::protobuf::not_acceptable());
    }
    let encoder = Encoder {
        target: target.clone(),
        rt,
        table,
        protobuf: !table && negotiated.prefers_protobuf && has_protobuf,
    };
    let content_type = encoder.content_type();
    let requested = query.get("resourceVersion").unwrap_or("");
    let (current, revision) = api.objects.list(rt, target.namespace.as_deref())?;
    let mut visible: HashSet<String> = current
        .iter()
        .filter(|o| selected(&labels, &fields, &o.value))
        .map(|o| o.key.clone())
        .collect();
    // Unset or "0": the current state as ADDED events first, then changes after it. A
    // WatchList (`sendInitialEvents=true`, client-go's informers) asks for that whatever the
    // resourceVersion (NotOlderThan it: the store's current state is), and is told where the
    // initial events end by a bookmark; `sendInitialEvents=false` asks for changes only.
    let send_initial = query.optional_flag("sendInitialEvents");
    let watch_list = send_initial == Some(true);
    let (initial, after) =
        if watch_list || (send_initial.is_none() && (requested.is_empty() || requested == "0")) {
            let initial: Vec<Value> = api.objects.present_all(
                rt,
                current
                    .iter()
                    .filter(|o| visible.contains(&o.key))
                    .map(|o| with_resource_version(o))
                    .collect(),
            )?;
            (initial, revision)
        } else if requested.is_empty() || requested == "0" {
            (Vec::new(), revision)
        } else {
            let rv = requested.parse::<u64>().map_err(|_| {
                KubeError::BadRequest(format!("invalid resourceVersion {requested:?}"))
            })?;
            (Vec::new(), rv)
        };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
        // Past a day is "as long as the client stays": and no overflow for huge values.
        .min(Duration::from_secs(86_400));
    let bookmarks = query.flag("allowWatchBookmarks");
    let prefix = rt.key_prefix(target.namespace.as_deref());
    let watcher = api
        .objects
        .store
        .watch(api.objects.store_kind(), &prefix, after);
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let objects = api.objects.clone();
    tokio::spawn(async move {
        for object in initial {
            if tx.send(encoder.event("ADDED", object)).await.is_err() {
                return;
            }
        }
        if watch_list && tx.send(encoder.initial_events_end(after)).await.is_err() {
            return;
        }
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(StoreError::Expired { requested, oldest }) => {
                let _ = tx
                    .send(encoder.frame("ERROR", expired(requested, oldest)))
                    .await;
                return;
            }
            Err(e) => {
                let status = KubeError::Internal(e.to_string()).status();
                let _ = tx.send(encoder.frame("ERROR", status)).await;
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        loop {
            let event = tokio::select! {
                e = watcher.next() => e,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = bookmark.tick(), if bookmarks => {
                    if tx.send(encoder.bookmark(watcher.last_revision())).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let event = match event {
                Ok(e) => e,
                Err(StoreError::Expired { requested, oldest }) => {
                    let _ = tx
                        .send(encoder.frame("ERROR", expired(requested, oldest)))
                        .await;
                    return;
                }
                Err(_) => return,
            };
            let key = event.object.key.clone();
            let object = match objects.present_one(rt, with_resource_version(&event.object)) {
                Ok(o) => o,
                Err(e) => {
                    let _ = tx.send(encoder.frame("ERROR", e.status())).await;
                    return;
                }
            };
            let matches = selected(&labels, &fields, &event.object.value);
            // An object that starts or stops matching the selectors appears or disappears.
            let kind = match (event.event_type, matches, visible.contains(&key)) {
                // A deletion of a matching object is sent even when this watch never saw it
                // (one started from an older resourceVersion): `kubectl wait --for=delete`.
                (EventType::Deleted, m, v) if m || v => {
                    visible.remove(&key);
                    "DELETED"
                }
                (EventType::Deleted, _, _) => continue,
                (EventType::Added, true, _) => {
                    visible.insert(key);
                    "ADDED"
                }
                (_, true, true) => "MODIFIED",
                (_, true, false) => {
                    visible.insert(key);
                    "ADDED"
                }
                (_, false, true) => {
                    visible.remove(&key);
                    "DELETED"
                }
                (_, false, false) => continue,
            };
            if tx.send(encoder.event(kind, object)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, Infallible>))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}
