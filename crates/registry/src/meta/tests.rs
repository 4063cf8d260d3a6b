use serde_json::{Value, json};

use super::*;

/// The JSON bytes a value is written as.
fn bytes(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn round_trip(v: &Value) -> Value {
    match DynamicObject::from_value(v.clone()) {
        Ok(o) => o.into_value(),
        Err(e) => json!({"error": e.to_string()}),
    }
}

#[test]
fn a_stored_object_round_trips_byte_for_byte() {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": "2f1e",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "deletionTimestamp": "2026-01-02T03:05:05.123456Z",
            "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web", "tier": ""},
            "annotations": {"a.example.com/x": "1"},
            "finalizers": ["example.com/hold"],
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "9a",
                "controller": true, "blockOwnerDeletion": true, "futureField": {"x": 1}
            }],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
            "selfLink": "/api/v1/x",
            "aFieldFromTheFuture": [1, 2],
            "zFieldFromTheFuture": null
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    let back = round_trip(&pod);
    assert_eq!(bytes(&back), bytes(&pod));
}

#[test]
fn keys_keep_the_order_the_api_writes() {
    // `data` sorts between `apiVersion` and `kind`; the typed fields do not move it.
    let cm = json!({"kind": "ConfigMap", "metadata": {"uid": "u", "name": "c", "labels": {"b": "2", "a": "1"}}, "data": {"k": "v"}, "apiVersion": "v1"});
    assert_eq!(
        bytes(&round_trip(&cm)),
        r#"{"apiVersion":"v1","data":{"k":"v"},"kind":"ConfigMap","metadata":{"labels":{"a":"1","b":"2"},"name":"c","uid":"u"}}"#
    );
}

#[test]
fn absent_stays_absent_and_empty_stays_empty() {
    let empty = json!({"metadata": {"name": "x", "labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": [], "managedFields": []}});
    assert_eq!(bytes(&round_trip(&empty)), bytes(&empty));
    let absent = json!({"metadata": {"name": "x"}});
    let o = DynamicObject::from_value(absent.clone()).unwrap_or_default();
    assert_eq!(o.metadata.labels, None);
    assert_eq!(o.metadata.finalizers, None);
    assert_eq!(o.api_version, None);
    assert_eq!(bytes(&o.into_value()), r#"{"metadata":{"name":"x"}}"#);
}

#[test]
fn values_of_another_type_are_kept_as_written() {
    let odd = json!({
        "apiVersion": 1,
        "metadata": {
            "name": 5,
            "labels": {"a": 1},
            "annotations": null,
            "generation": 1.5,
            "finalizers": ["ok", 2],
            "ownerReferences": [{"uid": 3, "controller": "yes"}],
        }
    });
    let o = DynamicObject::from_value(odd.clone()).unwrap_or_default();
    assert_eq!(o.api_version, None);
    assert_eq!(o.metadata.name, None);
    assert_eq!(o.metadata.labels, None);
    assert_eq!(o.metadata.generation, None);
    assert_eq!(o.metadata.finalizers, None);
    let refs = o.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].uid, None);
    assert_eq!(refs[0].controller, None);
    assert_eq!(bytes(&o.into_value()), bytes(&odd));
}

#[test]
fn typed_fields_write_over_and_clear_removes_what_was_written() {
    let mut o = DynamicObject::from_value(
        json!({"kind": 7, "metadata": {"name": 5, "uid": null, "selfLink": "/x"}}),
    )
    .unwrap_or_default();
    o.set_kind("Pod".into());
    o.metadata.name = Some("p".into());
    o.metadata.clear(Field::Uid);
    o.metadata.clear(Field::SelfLink);
    assert_eq!(
        bytes(&o.into_value()),
        r#"{"kind":"Pod","metadata":{"name":"p"}}"#
    );
}

#[test]
fn carry_copies_a_field_as_it_is_in_the_other_metadata() {
    let old = ObjectMeta::of(
        &json!({"metadata": {"uid": "u1", "generation": 4, "creationTimestamp": null}}),
    );
    let mut new = ObjectMeta::from_map(
        json!({"uid": "forged", "creationTimestamp": "2026-01-01T00:00:00Z", "deletionTimestamp": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    for field in [
        Field::Uid,
        Field::Generation,
        Field::CreationTimestamp,
        Field::DeletionTimestamp,
    ] {
        new.carry(field, &old);
    }
    assert_eq!(
        Value::Object(new.into_map()),
        json!({"uid": "u1", "generation": 4, "creationTimestamp": null})
    );
}

#[test]
fn metadata_absent_or_null_reads_as_empty_and_is_written() {
    assert_eq!(
        round_trip(&json!({"kind": "X"})),
        json!({"kind": "X", "metadata": {}})
    );
    assert_eq!(
        round_trip(&json!({"metadata": null})),
        json!({"metadata": {}})
    );
}

#[test]
fn only_objects_with_object_metadata_are_read() {
    assert_eq!(
        DynamicObject::from_value(json!([1])),
        Err(ShapeError::NotAnObject)
    );
    assert_eq!(
        DynamicObject::from_value(json!({"metadata": "m"})),
        Err(ShapeError::MetadataNotAnObject)
    );
}

#[test]
fn finalizers_and_accessors() {
    let mut meta = ObjectMeta::of(&json!({"metadata": {
        "finalizers": ["a"],
        "labels": {"app": "web"},
        "annotations": {"note": "n"},
        "ownerReferences": [{"uid": "1"}, {"uid": "2", "controller": true}]
    }}));
    assert!(meta.has_finalizer("a"));
    assert_eq!(meta.label("app"), Some("web"));
    assert_eq!(meta.annotation("note"), Some("n"));
    assert_eq!(meta.controller().map(OwnerReference::uid), Some("2"));
    meta.set_finalizers(vec![]);
    assert_eq!(meta.finalizers, None);
    assert!(meta.finalizers().is_empty());
    assert!(!meta.is_deleting());
}

#[test]
fn labels_and_annotations_are_set_as_indexing_the_json_set_them() {
    // Typed, absent, null or not an object: the typed map gets it (what was written goes).
    for (written, expected) in [
        (json!({"a": "1"}), json!({"a": "1", "k": "v"})),
        (json!(null), json!({"k": "v"})),
        (json!("nope"), json!({"k": "v"})),
    ] {
        let mut o = DynamicObject::from_value(json!({"metadata": {"labels": written.clone(),
            "annotations": written}}))
        .unwrap();
        o.metadata.insert_label("k", "v".into());
        o.metadata.insert_annotation("k", "v".into());
        let v = o.into_value();
        assert_eq!(v["metadata"]["labels"], expected);
        assert_eq!(v["metadata"]["annotations"], expected);
    }
    // An object with a wrong-typed value: set into it as written, so validation still sees it.
    let mut o = DynamicObject::from_value(json!({"metadata": {"labels": {"bad": 1}}})).unwrap();
    o.metadata.insert_label("k", "v".into());
    assert_eq!(
        o.into_value()["metadata"]["labels"],
        json!({"bad": 1, "k": "v"})
    );
}

#[test]
fn body_fields_read_and_write_as_indexing_the_json() {
    let mut o = DynamicObject::from_value(json!({"spec": {"a": 1}})).unwrap();
    assert_eq!(o.spec()["a"], 1);
    assert!(o.status().is_null());
    assert!(o.field("data").is_null());
    o.field_mut("status")["phase"] = json!("Pending");
    o.field_mut("spec")["b"] = json!(2);
    assert_eq!(
        o.into_value(),
        json!({"metadata": {}, "spec": {"a": 1, "b": 2}, "status": {"phase": "Pending"}})
    );
}

#[test]
fn a_raw_value_is_typed_when_it_has_the_fields_type() {
    let mut meta = ObjectMeta::default();
    meta.set_raw(Field::Labels, json!({"a": "1"}));
    assert_eq!(meta.label("a"), Some("1"));
    meta.set_raw(Field::Labels, json!({"a": 1}));
    assert_eq!(meta.labels, None);
    assert_eq!(meta.other["labels"], json!({"a": 1}));
}

#[test]
fn borrowed_reads_of_a_stored_objects_metadata() {
    let v = json!({"metadata": {"name": "p", "resourceVersion": "7", "generation": 3,
                                "creationTimestamp": "2026-01-01T00:00:00Z",
                                "labels": {"a": "b"}, "annotations": {"n": "1"},
                                "ownerReferences": [{"uid": "u1", "controller": true}]}});
    assert_eq!(resource_version_of(&v), Some("7"));
    assert_eq!(creation_timestamp_of(&v), Some("2026-01-01T00:00:00Z"));
    assert_eq!(generation_of(&v), Some(3));
    assert_eq!(metadata_of(&v)["name"], "p");
    assert_eq!(
        (label_of(&v, "a"), annotation_of(&v, "n")),
        (Some("b"), Some("1"))
    );
    assert_eq!(controller_uid_of(&v), Some("u1"));
    let bare = json!({});
    assert_eq!(
        (resource_version_of(&bare), generation_of(&bare)),
        (None, None)
    );
    assert!(metadata_of(&bare).is_null());
    assert!(labels_of(&bare).is_none());
}

#[test]
fn a_status_field_is_set_and_the_rest_of_the_status_kept() {
    let mut o = DynamicObject::from_value(json!({"metadata": {"name": "s"},
        "status": {"conditions": [{"type": "A"}]}}))
    .unwrap();
    o.set_status_field("loadBalancer", json!({"ingress": [{"ip": "127.0.0.1"}]}));
    assert_eq!(
        o.status(),
        &json!({"conditions": [{"type": "A"}], "loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})
    );
    let mut bare = DynamicObject::from_value(json!({"metadata": {}, "status": null})).unwrap();
    bare.set_status_field("x", json!(1));
    assert_eq!(bare.status(), &json!({"x": 1}));
}
