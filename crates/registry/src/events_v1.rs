//! `events.k8s.io/v1` Events: the same objects as core `v1` Events, stored once (as core
//! Events, under their keys) and converted on the way in and out, as kube-apiserver serves the
//! two (`pkg/apis/events/v1/conversion.go`): `regarding` is `involvedObject`, `note` is
//! `message`, `reportingController` is `reportingComponent`, and the core-only fields travel as
//! `deprecated*`.
//!
//! The conversion stays on the JSON: it renames top-level fields and must keep every other
//! field as written (a typed `Event` would drop unknown fields and re-format `eventTime`'s
//! microseconds).

use serde_json::{Map, Value};

pub const GROUP: &str = "events.k8s.io";

/// Pairs of (core field, events.k8s.io field) that only change name.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(v: &Value, from_core: bool, api_version: &str) -> Value {
    let Some(obj) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in obj {
        let renamed = RENAMED.iter().find_map(|(core, new)| {
            let (from, to) = if from_core { (core, new) } else { (new, core) };
            (k == from).then_some(*to)
        });
        out.insert(renamed.unwrap_or(k).to_string(), x.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// A stored (core) Event as `events.k8s.io/v1` shows it.
pub fn from_core(core: &Value) -> Value {
    rename(core, true, "events.k8s.io/v1")
}

/// An `events.k8s.io/v1` Event as it is stored (a core Event).
pub fn to_core(event: &Value) -> Value {
    rename(event, false, "v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_forms_convert_both_ways() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                          "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi",
                          "reason": "Started", "type": "Normal", "count": 2,
                          "source": {"component": "kubelet"}, "reportingComponent": "kubelet"});
        let v1 = from_core(&core);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "hi");
        assert_eq!(v1["deprecatedCount"], 2);
        assert_eq!(v1["reportingController"], "kubelet");
        assert!(v1.get("message").is_none());
        assert_eq!(to_core(&v1), core);
    }
}
