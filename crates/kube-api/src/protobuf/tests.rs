use std::collections::BTreeMap;

use axum::http::HeaderMap;
use k8s_pb::api::apps::v1::Deployment as PbDeployment;
use k8s_pb::api::core::v1::{ConfigMap, Pod as PbPod, Secret};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::*;

fn frame(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// The envelope of a body we encoded, read with k8s-pb's own types.
fn unframe(body: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(MAGIC).expect("magic")).unwrap();
    let tm = unknown.type_meta.unwrap();
    (
        tm.api_version.unwrap(),
        tm.kind.unwrap(),
        unknown.raw.unwrap(),
    )
}

fn round_trip(object: &Value) -> Value {
    decode_object(&encode(object).unwrap()).unwrap()
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "0b3c4a8e-2f0b-4a5e-9b8e-6a1c1b2d3e4f",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2026-11-23T18:14:25Z",
            "labels": {"app": "web", "empty": ""},
            "annotations": {"a": "b"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                  "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2026-11-23T18:14:25Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                                   "periodSeconds": 10, "failureThreshold": 3},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                "env": [{"name": "A", "value": "1"}],
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": 9_007_199_254_740_993_i64,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "automountServiceAccountToken": false,
            "nodeName": "fargate-ip-10-0-0-1",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "startTime": "2026-11-23T18:14:26Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T18:14:30Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27",
                                   "imageID": "", "started": true,
                                   "state": {"running": {"startedAt": "2026-11-23T18:14:29Z"}}}],
        },
    })
}

/// What Go's JSON would hold after the round trip: empty singular strings are omitempty.
fn without_empty_strings(mut v: Value) -> Value {
    v["status"]["containerStatuses"][0]
        .as_object_mut()
        .unwrap()
        .remove("imageID");
    v
}

#[test]
fn a_pod_round_trips_with_every_special_case() {
    let pod = pod();
    assert_eq!(round_trip(&pod), without_empty_strings(pod));
}

#[test]
fn an_independent_decoder_reads_what_we_encode() {
    let body = encode(&pod()).unwrap();
    let (api_version, kind, raw) = unframe(&body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
    let pod = PbPod::decode(raw.as_slice()).unwrap();
    let meta = pod.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("web-0"));
    assert_eq!(meta.labels.get("empty").map(String::as_str), Some(""));
    let created = meta.creation_timestamp.unwrap();
    assert_eq!(created.seconds, Some(1_795_457_665));
    let fields = meta.managed_fields[0].fields_v1.clone().unwrap();
    let fields: Value = serde_json::from_slice(&fields.raw.unwrap()).unwrap();
    assert_eq!(fields["f:metadata"]["f:labels"]["f:app"], json!({}));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.active_deadline_seconds, Some(9_007_199_254_740_993));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
    let limits = &c.resources.as_ref().unwrap().limits;
    assert_eq!(limits["cpu"].string.as_deref(), Some("500m"));
    let live = c.liveness_probe.as_ref().unwrap().handler.as_ref().unwrap();
    let port = live.http_get.as_ref().unwrap().port.as_ref().unwrap();
    assert_eq!((port.r#type, port.int_val), (Some(0), Some(80)));
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .handler
        .as_ref()
        .unwrap();
    let port = ready.http_get.as_ref().unwrap().port.as_ref().unwrap();
    assert_eq!(
        (port.r#type, port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
}

#[test]
fn what_kubectl_132_sends_decodes_as_its_json_would() {
    // Go always writes non-pointer fields, so kubectl's bodies carry empty strings and zero
    // times; the JSON has neither.
    let deployment = PbDeployment {
        metadata: Some(ObjectMeta {
            name: Some("web".into()),
            namespace: Some(String::new()),
            creation_timestamp: Some(Default::default()),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::apps::v1::DeploymentSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = decode(&frame("apps/v1", "Deployment", deployment.encode_to_vec())).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": 0}})
    );
}

#[test]
fn configmaps_and_secrets_as_kubectl_132_sends_them() {
    let cm = ConfigMap {
        metadata: Some(ObjectMeta {
            name: Some("cm2".into()),
            ..Default::default()
        }),
        data: BTreeMap::from([("x".into(), "y".into()), ("empty".into(), String::new())]),
        ..Default::default()
    };
    let v = decode(&frame("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm2"},
               "data": {"x": "y", "empty": ""}})
    );
    let s = Secret {
        metadata: Some(ObjectMeta {
            name: Some("s1".into()),
            ..Default::default()
        }),
        data: BTreeMap::from([("pw".into(), b"hunter2".to_vec())]),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    let v = decode(&frame("v1", "Secret", s.encode_to_vec())).unwrap();
    assert_eq!(v["data"]["pw"], "aHVudGVyMg==");
    assert_eq!(v["type"], "Opaque");
    // And back: the bytes are the secret's, not its base64.
    let (_, _, raw) = unframe(&encode(&v).unwrap());
    assert_eq!(
        Secret::decode(raw.as_slice()).unwrap().data["pw"],
        b"hunter2"
    );
}

#[test]
fn delete_options_token_requests_evictions_and_scales_decode() {
    let typed = |api_version: &str, kind: &str, object: Value| {
        let mut o = object;
        o["apiVersion"] = json!(api_version);
        o["kind"] = json!(kind);
        o
    };
    for object in [
        typed(
            "v1",
            "DeleteOptions",
            json!({"propagationPolicy": "Background", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": "u"}, "dryRun": ["All"]}),
        ),
        typed(
            "authentication.k8s.io/v1",
            "TokenRequest",
            json!({"metadata": {"name": "default"},
                   "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
                   "status": {"token": "t", "expirationTimestamp": "2026-11-23T19:14:25Z"}}),
        ),
        typed(
            "policy/v1",
            "Eviction",
            json!({"metadata": {"name": "p", "namespace": "d"},
                   "deleteOptions": {"gracePeriodSeconds": 5}}),
        ),
        typed(
            "autoscaling/v1",
            "Scale",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
                   "status": {"replicas": 2, "selector": "app=web"}}),
        ),
    ] {
        assert_eq!(round_trip(&object), object);
        let (api_version, kind) = type_meta(&object);
        assert!(has_protobuf_form(api_version, kind), "{kind}");
    }
    // drain's untyped DeleteOptions.
    let options = k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions {
        grace_period_seconds: Some(-1),
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    let v = decode(&frame("", "", options.encode_to_vec())).unwrap();
    assert_eq!(
        v,
        json!({"gracePeriodSeconds": -1, "propagationPolicy": "Foreground"})
    );
}

#[test]
fn kinds_without_protobuf_and_garbage_are_refused_clearly() {
    let e = decode(&frame("example.com/v1", "Widget", vec![])).unwrap_err();
    assert_eq!(e.code(), 415);
    assert!(e.to_string().contains("application/json"), "{e}");
    let e = decode(&frame("apps.example.com/v1", "Deployment", vec![])).unwrap_err();
    assert_eq!(e.code(), 415);
    assert_eq!(decode(b"{}").unwrap_err().code(), 400);
    assert_eq!(decode(b"k8s\0\xff\xff\xff").unwrap_err().code(), 400);
    // A Pod message that is not one.
    let e = decode(&frame("v1", "Pod", vec![0x0a, 0x05, 0x01])).unwrap_err();
    assert_eq!(e.code(), 400);
    // JSON that does not fit the schema says where.
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": 5}]}});
    let e = encode(&bad).unwrap_err().to_string();
    assert_eq!(e, "spec.containers.0.name: expected a string, got a number");
    let custom = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
    assert!(matches!(
        encode(&custom),
        Err(ProtobufError::NoProtobufForm { .. })
    ));
}

#[test]
fn lists_statuses_and_unknown_fields() {
    let mut item = pod();
    // Items in a list carry no type of their own in protobuf.
    let list = json!({"apiVersion": "v1", "kind": "PodList",
                      "metadata": {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 3},
                      "items": [item.clone()]});
    let back = round_trip(&list);
    let object = item.as_object_mut().unwrap();
    object.remove("apiVersion");
    object.remove("kind");
    assert_eq!(back["items"][0], without_empty_strings(item));
    assert_eq!(back["metadata"], list["metadata"]);
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "pods \"x\" not found", "reason": "NotFound", "code": 404,
                        "details": {"name": "x", "kind": "pods"}});
    assert_eq!(round_trip(&status), status);
    // A field a newer server knows is dropped, as a v1.33 Go client would drop it.
    let future = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "fromTheFuture": {"x": 1}});
    assert_eq!(
        round_trip(&future),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    );
}

#[test]
fn times_durations_quantities_and_embedded_objects() {
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                       "metadata": {"name": "e", "creationTimestamp": "2026-11-23T18:14:25Z"},
                       "eventTime": "2026-11-23T18:14:25.123456Z", "reportingController": "c",
                       "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal",
                       "regarding": {"kind": "Pod", "name": "p"}});
    assert_eq!(round_trip(&event), event);
    // Whole seconds for Time, microseconds for MicroTime, whatever the input had.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                       "spec": {"renewTime": "2026-11-23T18:14:25.5Z", "holderIdentity": "h"}});
    assert_eq!(
        round_trip(&lease)["spec"]["renewTime"],
        "2026-11-23T18:14:25.500000Z"
    );
    let offset = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "n", "creationTimestamp": "2026-11-23T20:14:25+02:00"}});
    assert_eq!(
        round_trip(&offset)["metadata"]["creationTimestamp"],
        "2026-11-23T18:14:25Z"
    );
    let revision = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                          "metadata": {"name": "web-1"}, "revision": 1,
                          "data": {"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}});
    assert_eq!(round_trip(&revision), revision);
    // A number where a Quantity goes is its string.
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                       "spec": {"hard": {"pods": 10, "cpu": "2"}}});
    assert_eq!(
        round_trip(&quota)["spec"]["hard"],
        json!({"pods": "10", "cpu": "2"})
    );
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (90_000_000_000, "1m30s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (3_600_000_000_000, "1h0m0s"),
        (-2_000_000_000, "-2s"),
    ] {
        assert_eq!(time::format_go_duration(nanos), text);
        assert_eq!(time::parse_go_duration(text), Ok(nanos), "{text}");
    }
    assert_eq!(time::parse_go_duration("1h30m"), Ok(5_400_000_000_000));
    assert!(time::parse_go_duration("5 minutes").is_err());
    assert!(time::parse_go_duration("").is_err());
}

#[test]
fn custom_resource_definitions_keep_their_schema_json() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {
                         "type": "object",
                         "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {
                             "spec": {"type": "object", "required": ["size"],
                                      "properties": {
                                          "size": {"type": "integer", "default": 3, "maximum": 10, "minimum": 0.5},
                                          "mode": {"type": "string", "enum": ["a", "b"]},
                                          "tags": {"type": "array", "items": {"type": "string"},
                                                   "x-kubernetes-list-type": "set"},
                                          "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                          "open": {"type": "object", "additionalProperties": false},
                                          "port": {"x-kubernetes-int-or-string": true},
                                      }},
                         },
                     }},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]},
    });
    assert_eq!(round_trip(&crd), crd);
}

#[test]
fn watch_events_are_length_framed_watch_event_messages() {
    let frame = watch_frame("ADDED", &pod()).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    let event = k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent::decode(&frame[4..]).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let raw = event.object.unwrap().raw.unwrap();
    let (api_version, kind, raw) = unframe(&raw);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
    let pod = PbPod::decode(raw.as_slice()).unwrap();
    assert_eq!(pod.metadata.unwrap().name.as_deref(), Some("web-0"));
}

#[test]
fn accept_headers_negotiate_like_kube_apiserver() {
    let negotiated = |accept: &str| {
        let mut headers = HeaderMap::new();
        if !accept.is_empty() {
            headers.insert("accept", accept.parse().unwrap());
        }
        let n = negotiate(&headers);
        (n.prefers_protobuf, n.accepts_json)
    };
    // client-go's default for built-in kinds.
    assert_eq!(
        negotiated("application/vnd.kubernetes.protobuf, application/json"),
        (true, true)
    );
    assert_eq!(
        negotiated("application/vnd.kubernetes.protobuf"),
        (true, false)
    );
    assert_eq!(negotiated("application/json"), (false, true));
    assert_eq!(negotiated(""), (false, true));
    assert_eq!(negotiated("application/json, */*"), (false, true));
    // kubectl get's Table request, and a metadata-only informer's: not plain objects.
    assert_eq!(
        negotiated(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ),
        (false, true)
    );
    assert_eq!(
        negotiated(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
        ),
        (false, true)
    );
    assert_eq!(
        negotiated("application/vnd.kubernetes.protobuf;q=0, application/json"),
        (false, true)
    );
}

#[test]
fn served_resources_have_protobuf_forms_and_custom_ones_do_not() {
    for rt in localfargate_registry::resources::RESOURCES {
        let api_version = rt.api_version();
        if !GROUPS.contains(&rt.group) {
            // localfargate's own kinds (FargateProfile) are custom resources.
            assert!(!has_protobuf_form(&api_version, rt.kind), "{}", rt.kind);
            continue;
        }
        assert!(has_protobuf_form(&api_version, rt.kind), "{}", rt.kind);
        if rt.create_only {
            // Reviews are answered, never listed: upstream has no lists of them.
            continue;
        }
        assert!(
            has_protobuf_form(&api_version, &format!("{}List", rt.kind)),
            "{}List",
            rt.kind
        );
    }
    assert!(!has_protobuf_form("example.com/v1", "Widget"));
    assert!(!has_protobuf_form("meta.k8s.io/v1", "Table"));
    assert!(!has_protobuf_form("v1", "ConfigMap.DataEntry"));
    assert!(!has_protobuf_form("v1", ""));
}

/// A sample JSON value for a message, with every field set down to `depth` levels of nested
/// messages, in the form Kubernetes' JSON has for it.
fn sample(desc: &MessageDescriptor, depth: usize) -> Option<Value> {
    let name = desc.full_name();
    let special = match name {
        "apimachinery.pkg.apis.meta.v1.Time" => Some(json!("2026-11-23T18:14:25Z")),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => Some(json!("2026-11-23T18:14:25.250000Z")),
        "apimachinery.pkg.apis.meta.v1.Duration" => Some(json!("1m30s")),
        "apimachinery.pkg.api.resource.Quantity"
        | "apimachinery.pkg.api.resource.QuantityValue" => Some(json!("250m")),
        "apimachinery.pkg.util.intstr.IntOrString" => Some(json!(if depth.is_multiple_of(2) {
            json!(8080)
        } else {
            json!("http")
        })),
        "apimachinery.pkg.runtime.RawExtension" => {
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}))
        }
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => Some(json!({"f:metadata": {}})),
        _ if name.starts_with("apiextensions_apiserver.") => match desc.name() {
            "JSON" => Some(json!({"any": [1, "json"]})),
            "JSONSchemaPropsOrArray" | "JSONSchemaPropsOrBool" | "JSONSchemaPropsOrStringArray" => {
                Some(json!({"type": "string"}))
            }
            "JSONSchemaProps" if depth == 0 => Some(json!({"type": "object"})),
            _ => None,
        },
        _ => None,
    };
    if special.is_some() {
        return special;
    }
    // Go slice types (`ExtraValue`): their items as an array.
    if matches!(desc.name(), "ExtraValue" | "Verbs") {
        return Some(json!(["s-items"]));
    }
    if depth == 0 {
        return None;
    }
    let mut out = serde_json::Map::new();
    for field in desc.fields() {
        let single = |kind: &Kind| -> Option<Value> {
            Some(match kind {
                Kind::Message(m) => sample(m, depth - 1)?,
                Kind::String => json!(format!("s-{}", field.name())),
                Kind::Bytes => json!("aGVsbG8="),
                Kind::Bool => json!(true),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!(-7),
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!(9_007_199_254_740_993_i64),
                Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => json!(7),
                Kind::Double | Kind::Float => json!(1.5),
                Kind::Enum(_) => return None,
            })
        };
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            single(&entry.map_entry_value_field().kind()).map(|v| json!({"k": v}))
        } else if field.is_list() {
            single(&field.kind()).map(|v| json!([v]))
        } else {
            single(&field.kind())
        };
        match value {
            Some(Value::Object(fields)) if transcode::is_inline(desc, &field) => out.extend(fields),
            Some(value) => {
                out.insert(transcode::json_key(desc, &field), value);
            }
            None => {}
        }
    }
    Some(Value::Object(out))
}

#[test]
fn every_kind_round_trips_through_protobuf() {
    let pool = schema::pool().unwrap();
    let mut kinds = 0;
    for desc in pool.all_messages() {
        // A kind is a message with ObjectMeta or ListMeta metadata.
        let is_kind = desc.get_field_by_name("metadata").is_some_and(|f| {
            matches!(f.kind(), Kind::Message(m) if m.name() == "ObjectMeta" || m.name() == "ListMeta")
        });
        if !is_kind || !desc.full_name().contains(".v") {
            continue;
        }
        let mut object = sample(&desc, 6).unwrap();
        let (package, kind) = desc.full_name().rsplit_once('.').unwrap();
        let version = package.rsplit('.').next().unwrap();
        object["kind"] = json!(kind);
        object["apiVersion"] = json!(version);
        // The group only chooses the package; any group whose package this is will do.
        let group = GROUPS.iter().find(|g| {
            schema::message_for(&format!("{g}/{version}"), kind)
                .is_some_and(|m| m.full_name() == desc.full_name())
        });
        let Some(group) = group else {
            continue;
        };
        if !group.is_empty() {
            object["apiVersion"] = json!(format!("{group}/{version}"));
        }
        let back = decode_object(&encode(&object).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", desc.full_name()));
        assert_eq!(
            first_difference(&back, &object, String::new()),
            None,
            "{}",
            desc.full_name()
        );
        kinds += 1;
    }
    // Kubernetes v1.33's built-in kinds and their lists, in every version the protos hold.
    assert!(kinds > 300, "only {kinds} kinds");
}

const GROUPS: &[&str] = &[
    "",
    "meta.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "internal.apiserver.k8s.io",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "admission.k8s.io",
    "admissionregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "imagepolicy.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Where two JSON values first differ, for a readable failure.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let (l, r) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(l, r, format!("{path}.{key}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}
