use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use localfargate_core::validation::FieldError;
use serde_json::{Value, json};

use super::report::go_float;
use super::{Structural, structural_errors};

fn props(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).expect("schema")
}

fn structural(v: Value) -> Structural {
    Structural::new(props(v))
}

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(FieldError::message).collect()
}

/// The CronTab of the Kubernetes documentation's CRD walkthrough.
fn cron_tab() -> Structural {
    structural(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10}
                }
            }
        }
    }))
}

/// A cert-manager-like Certificate schema: required fields, enums, durations, an int-or-string,
/// a map-list, defaults and a preserved `status`.
fn certificate() -> Structural {
    structural(json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["issuerRef", "secretName"],
                "properties": {
                    "secretName": {"type": "string", "minLength": 1, "maxLength": 253},
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "duration": {"type": "string"},
                    "isCA": {"type": "boolean", "default": false},
                    "revisionHistoryLimit": {"type": "integer", "format": "int32", "minimum": 1},
                    "usages": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["digital signature", "key encipherment", "server auth", "client auth"]}
                    },
                    "privateKey": {
                        "type": "object",
                        "properties": {
                            "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"], "default": "RSA"},
                            "size": {"type": "integer"},
                            "rotationPolicy": {"type": "string", "default": "Never"}
                        }
                    },
                    "issuerRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "default": "Issuer"},
                            "group": {"type": "string"}
                        }
                    },
                    "keystores": {
                        "type": "object",
                        "properties": {
                            "pkcs12": {
                                "type": "object",
                                "required": ["create"],
                                "properties": {"create": {"type": "boolean"}, "passwordSecretRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                            }
                        }
                    },
                    "renewBefore": {"x-kubernetes-int-or-string": true},
                    "secretTemplate": {
                        "type": "object",
                        "properties": {
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
                        }
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}
                        }
                    }
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    }))
}

// --- validation ---------------------------------------------------------------------------

#[test]
fn a_string_for_an_integer_is_a_type_error_with_upstreams_words() {
    let errors = cron_tab().validate(&json!({"spec": {"replicas": "string"}}));
    assert_eq!(
        messages(&errors),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert_eq!(errors[0].reason(), "FieldValueTypeInvalid");
}

#[test]
fn cron_tab_pattern_and_maximum_fail_as_in_the_kubernetes_docs() {
    let errors = cron_tab().validate(&json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "my-new-cron-object"},
        "spec": {"cronSpec": "* * * *", "image": "my-awesome-cron-image", "replicas": 15}
    }));
    assert_eq!(
        messages(&errors),
        [
            r#"spec.cronSpec: Invalid value: "* * * *": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10",
        ]
    );
    assert!(
        cron_tab()
            .validate(&json!({"spec": {"cronSpec": "* * * * */5", "replicas": 1}}))
            .is_empty()
    );
    assert_eq!(
        messages(&cron_tab().validate(&json!({"spec": {"replicas": 0}}))),
        [
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        ]
    );
}

#[test]
fn enum_required_and_lengths_use_upstreams_error_types() {
    let s = structural(json!({
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 2, "maxLength": 5},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "size": {"type": "integer", "enum": [1, 2]}
            }
        }}
    }));
    assert_eq!(messages(&s.validate(&json!({}))), ["spec: Required value"]);
    let errors = s.validate(&json!({"spec": {"color": "pink", "size": 3}}));
    assert_eq!(
        messages(&errors),
        [
            r#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#,
            r#"spec.size: Unsupported value: 3: supported values: "1", "2""#,
            "spec.name: Required value",
        ]
    );
    assert_eq!(errors[0].reason(), "FieldValueNotSupported");
    assert_eq!(errors[2].reason(), "FieldValueRequired");
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"name": "toolong"}}))),
        ["spec.name: Too long: may not be longer than 5"]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"name": "a"}}))),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
}

#[test]
fn numbers_follow_go_int64_and_float64_rules() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "ratio": {"type": "number", "maximum": 1.5, "exclusiveMinimum": true, "minimum": 0},
            "count": {"type": "integer", "multipleOf": 5},
            "port": {"type": "integer", "format": "int32"},
            "big": {"type": "number", "maximum": 1000000}
        }}}
    }));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"ratio": 2.5, "big": 2000000.5}}))),
        [
            "spec.big: Invalid value: 2.0000005e+06: spec.big in body should be less than or equal to 1e+06",
            "spec.ratio: Invalid value: 2.5: spec.ratio in body should be less than or equal to 1.5",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"ratio": 0}}))),
        ["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"count": 7}}))),
        ["spec.count: Invalid value: 7: spec.count in body should be a multiple of 5"]
    );
    // A float where an integer is expected: the type error, the range check's own error (kube-
    // openapi reports it against no field), then the multipleOf check on the float.
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"count": 2.5}}))),
        [
            r#"spec.count: Invalid value: "number": spec.count in body must be of type integer: "number""#,
            r#": Invalid value: "": Checked value must be of type integer (default format) in spec.count"#,
            "spec.count: Invalid value: 2.5: spec.count in body should be a multiple of 5",
        ]
    );
    // Numeric formats are stripped from custom resource schemas upstream: int32 bounds nothing.
    assert!(
        s.validate(&json!({"spec": {"port": 3_000_000_000_i64}}))
            .is_empty()
    );
    assert!(
        s.validate(&json!({"spec": {"count": 10, "port": 443, "ratio": 1.5}}))
            .is_empty()
    );
}

#[test]
fn go_prints_floats_shortest_with_exponents_from_1e6() {
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(10.0), "10");
    assert_eq!(go_float(123456.0), "123456");
    assert_eq!(go_float(1_000_000.0), "1e+06");
    assert_eq!(go_float(1_234_567.0), "1.234567e+06");
    assert_eq!(go_float(0.0001), "0.0001");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(-2.25), "-2.25");
}

#[test]
fn arrays_and_maps_count_items_and_properties() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "maxProperties": 1, "minProperties": 1, "additionalProperties": {"type": "string"}}
        }}}
    }));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"items": ["a", "b", 3]}}))),
        [
            r#"spec.items[2]: Invalid value: "integer": spec.items[2] in body must be of type string: "integer""#,
            "spec.items: Too many: 3: must have at most 2 items",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"items": [], "labels": {}}}))),
        [
            "spec.items: Invalid value: 0: spec.items in body should have at least 1 items",
            "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"labels": {"a": "x", "b": 5}}}))),
        [
            "spec.labels: Too many: 2: must have at most 1 items",
            r#"spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer""#,
        ]
    );
}

#[test]
fn nullable_int_or_string_and_formats() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "note": {"type": "string", "nullable": true},
            "name": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": true},
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"}
        }}}
    }));
    assert!(
        s.validate(&json!({"spec": {"note": null, "port": 8080, "when": "2024-01-02T03:04:05Z"}}))
            .is_empty()
    );
    assert!(
        s.validate(&json!({"spec": {"port": "50%", "id": "123e4567-e89b-12d3-a456-426614174000"}}))
            .is_empty()
    );
    // A string format on a non-string: kube-openapi names the format and the value's format.
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"when": 5}}))),
        [
            r#"spec.when: Invalid value: "int64": spec.when in body must be of type date-time: "int64""#
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"name": null, "port": true, "when": "yesterday"}}))),
        [
            r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#,
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#,
        ]
    );
}

#[test]
fn junctors_report_upstreams_composite_messages() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "integer", "not": {"enum": [13]}}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}]
        }}
    }));
    assert!(s.validate(&json!({"spec": {"a": "x"}})).is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"a": "x", "b": "y"}}))),
        [
            r#": Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"n": 13}}))),
        [
            r#": Invalid value: "": "spec" must validate at least one schema (anyOf)"#,
            "spec.a: Required value",
            r#": Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid"#,
            "spec.a: Required value",
            r#": Invalid value: "": "spec.n" must not validate the schema (not)"#,
        ]
    );
}

#[test]
fn embedded_resources_need_api_version_kind_and_valid_metadata() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
        }}}
    }));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {"template": {"spec": {}}}}))),
        [
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value",
        ]
    );
    let errors = s.validate(&json!({"spec": {"template": {
        "apiVersion": "a/b/c", "kind": "Bad_Kind",
        "metadata": {"name": "x", "labels": {"bad key!": "v"}}
    }}}));
    assert_eq!(errors.len(), 3, "{:?}", messages(&errors));
    assert_eq!(
        errors[0].message(),
        r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#
    );
    assert!(errors[1].message().starts_with(
        r#"spec.template.kind: Invalid value: "Bad_Kind": may have mixed case, but should otherwise match: a DNS-1035 label"#
    ));
    assert!(
        errors[2]
            .message()
            .starts_with(r#"spec.template.metadata.labels: Invalid value: "bad key!""#)
    );
    assert!(s
        .validate(&json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}}))
        .is_empty());
    assert_eq!(
        messages(&s.validate(
            &json!({"spec": {"template": {"apiVersion": "", "kind": "Pod", "metadata": "p"}}})
        )),
        [
            "spec.template.apiVersion: Required value",
            r#"spec.template.metadata: Invalid value: "p": json: cannot unmarshal string into Go value of type v1.ObjectMeta"#,
        ]
    );
}

#[test]
fn list_sets_and_maps_report_duplicates_as_go_prints_them() {
    let c = certificate();
    let errors = c.validate(&json!({"spec": {
        "issuerRef": {"name": "ca"}, "secretName": "s",
        "dnsNames": ["a.example.com", "b.example.com", "a.example.com", "a.example.com"],
        "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]
    }}));
    assert_eq!(
        messages(&errors),
        [
            r#"spec.dnsNames[2]: Duplicate value: "a.example.com""#,
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}"#,
        ]
    );
    assert_eq!(errors[0].reason(), "FieldValueDuplicate");
    let multi = structural(json!({
        "type": "object",
        "properties": {"ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}
        }}
    }));
    assert_eq!(
        messages(&multi.validate(&json!({"ports": [
            {"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, "x"
        ]}))),
        [
            r#"ports[3]: Invalid value: "string": ports[3] in body must be of type object: "string""#,
            r#"ports[3]: Invalid value: "x": must be an object for an array of list-type map"#,
        ]
    );
    assert_eq!(
        messages(&multi.validate(&json!({"ports": [
            {"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}
        ]}))),
        [r#"ports[2]: Duplicate value: map[string]interface {}{"port":53, "protocol":"UDP"}"#]
    );
}

// --- pruning and defaulting -----------------------------------------------------------------

#[test]
fn pruning_drops_unknown_fields_but_keeps_type_and_object_meta() {
    let mut obj = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "x", "labels": {"a": "b"}},
        "extra": true,
        "spec": {"image": "i", "unknown": {"deep": 1}, "replicas": 2}
    });
    cron_tab().prune(&mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"image": "i", "replicas": 2}
        })
    );
}

#[test]
fn preserve_unknown_fields_keeps_unknowns_but_prunes_specified_children() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
        }}
    }));
    let mut obj = json!({"spec": {"free": {"x": 1}, "known": {"a": "1", "b": "2"}}});
    s.prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"free": {"x": 1}, "known": {"a": "1"}}})
    );
}

#[test]
fn embedded_resources_keep_their_meta_and_int_or_string_is_left_alone() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object", "properties": {"image": {"type": "string"}}}}},
            "port": {"x-kubernetes-int-or-string": true}
        }}}
    }));
    let mut obj = json!({"spec": {
        "port": "http",
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "junk": 1,
                     "spec": {"image": "nginx", "junk": 2}}
    }});
    s.prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {
            "port": "http",
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"image": "nginx"}}
        }})
    );
}

#[test]
fn nulls_are_dropped_unless_nullable_and_defaults_replace_them() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "nullable": true},
            "c": {"type": "string", "default": "dflt"}
        }}}
    }));
    let mut obj = json!({"spec": {"a": null, "b": null, "c": null}});
    assert!(s.admit(&mut obj).is_empty());
    assert_eq!(obj, json!({"spec": {"b": null, "c": "dflt"}}));
}

#[test]
fn defaults_fill_existing_objects_items_and_map_values() {
    let s = structural(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1},
            "containers": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "pull": {"type": "string", "default": "IfNotPresent"}
            }}},
            "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "max": {"type": "integer", "default": 10}
            }}},
            "policy": {"type": "object", "default": {"mode": "strict", "unknown": true}, "properties": {
                "mode": {"type": "string"}, "level": {"type": "integer", "default": 3}
            }}
        }}}
    }));
    let mut empty = json!({});
    s.default(&mut empty);
    assert_eq!(
        empty,
        json!({"spec": {"replicas": 1, "policy": {"mode": "strict", "level": 3}}})
    );
    let mut obj = json!({"spec": {
        "replicas": 3,
        "containers": [{"name": "a"}, {"name": "b", "pull": "Always"}],
        "limits": {"cpu": {}, "mem": {"max": 2}}
    }});
    s.default(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {
            "replicas": 3,
            "containers": [{"name": "a", "pull": "IfNotPresent"}, {"name": "b", "pull": "Always"}],
            "limits": {"cpu": {"max": 10}, "mem": {"max": 2}},
            "policy": {"mode": "strict", "level": 3}
        }})
    );
}

#[test]
fn admit_prunes_defaults_and_validates_a_certificate() {
    let c = certificate();
    let mut obj = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "secretName": "web-tls", "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "ca", "extra": "dropped"},
            "privateKey": {"size": 2048},
            "renewBefore": "360h",
            "ports": [{"name": "https", "port": 443}],
            "unknownField": 1
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    assert!(c.admit(&mut obj).is_empty());
    assert_eq!(
        obj["spec"],
        json!({
            "secretName": "web-tls", "dnsNames": ["web.example.com"],
            "isCA": false,
            "issuerRef": {"name": "ca", "kind": "Issuer"},
            "privateKey": {"size": 2048, "algorithm": "RSA", "rotationPolicy": "Never"},
            "renewBefore": "360h",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]
        })
    );
    assert_eq!(obj["status"]["conditions"][0]["type"], "Ready");

    let mut bad = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "spec": {"secretName": "", "issuerRef": {}, "privateKey": {"algorithm": "DSA"},
                 "revisionHistoryLimit": 0, "keystores": {"pkcs12": {}}, "usages": ["teleport"]}});
    assert_eq!(
        messages(&c.admit(&mut bad)),
        [
            r#"spec.issuerRef.name: Required value"#,
            r#"spec.keystores.pkcs12.create: Required value"#,
            r#"spec.privateKey.algorithm: Unsupported value: "DSA": supported values: "RSA", "ECDSA", "Ed25519""#,
            "spec.revisionHistoryLimit: Invalid value: 0: spec.revisionHistoryLimit in body should be greater than or equal to 1",
            r#"spec.secretName: Invalid value: "": spec.secretName in body should be at least 1 chars long"#,
            r#"spec.usages[0]: Unsupported value: "teleport": supported values: "digital signature", "key encipherment", "server auth", "client auth""#,
        ]
    );
}

// --- structural checks ----------------------------------------------------------------------

const ROOT: &str = "spec.versions[0].schema.openAPIV3Schema";

fn structural_messages(v: Value) -> Vec<String> {
    messages(&structural_errors(&props(v), ROOT))
}

#[test]
fn fields_items_and_the_root_need_a_type() {
    assert_eq!(
        structural_messages(
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}})
        ),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
    assert_eq!(
        structural_messages(
            json!({"properties": {"l": {"type": "array", "items": {}}, "m": {"type": "array"}}})
        ),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[l].items.type: Required value: must not be empty for specified array items",
            "spec.versions[0].schema.openAPIV3Schema.properties[m].items: Required value: must be specified",
            "spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root",
        ]
    );
    assert_eq!(
        structural_messages(json!({"type": "string"})),
        [
            r#"spec.versions[0].schema.openAPIV3Schema.type: Invalid value: "string": must be object at the root"#
        ]
    );
    assert_eq!(
        structural_messages(json!({"type": "object", "nullable": true})),
        [
            "spec.versions[0].schema.openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root"
        ]
    );
}

#[test]
fn openapi_restrictions_are_forbidden_with_upstreams_reasons() {
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {
            "l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "r": {"type": "object", "$ref": "#/definitions/x"},
            "n": {"type": "null"}
        }})),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            "spec.versions[0].schema.openAPIV3Schema.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            r#"spec.versions[0].schema.openAPIV3Schema.properties[n].type: Unsupported value: "null": supported values: "array", "boolean", "integer", "number", "object", "string""#,
            "spec.versions[0].schema.openAPIV3Schema.properties[n].type: Forbidden: type cannot be set to null, use nullable as an alternative",
            "spec.versions[0].schema.openAPIV3Schema.properties[r].$ref: Forbidden: $ref is not supported",
        ]
    );
    assert_eq!(
        structural_messages(json!({"type": "object", "additionalProperties": {"type": "string"}})),
        [
            "spec.versions[0].schema.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root"
        ]
    );
}

#[test]
fn root_metadata_may_only_restrict_name_and_generate_name() {
    assert!(structural_messages(json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}
    }})).is_empty());
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
        }})),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ]
    );
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "default": {"name": "x"}}
        }})),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata"
        ]
    );
}

#[test]
fn extension_rules() {
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {
            "e": {"x-kubernetes-embedded-resource": true},
            "i": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true},
            "p": {"type": "object", "x-kubernetes-preserve-unknown-fields": false}
        }})),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            "spec.versions[0].schema.openAPIV3Schema.properties[e].type: Required value: must be object if x-kubernetes-embedded-resource is true",
            "spec.versions[0].schema.openAPIV3Schema.properties[i].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            "spec.versions[0].schema.openAPIV3Schema.properties[p].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
        ]
    );
    // The int-or-string anyOf pattern is allowed; other typed junctors are not structural.
    assert!(
        structural_messages(json!({"type": "object", "properties": {"port": {
            "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]
        }}}))
        .is_empty()
    );
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {"a": {
            "type": "string", "anyOf": [{"type": "string", "description": "d"}]
        }}})),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[a].anyOf[0].description: Forbidden: must be empty to be structural",
            "spec.versions[0].schema.openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
        ]
    );
    assert_eq!(
        structural_messages(
            json!({"type": "object", "properties": {"a": {"type": "string"}},
            "allOf": [{"properties": {"b": {"maxLength": 3}}}]})
        ),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[b]: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.allOf[0].properties[b]"
        ]
    );
}

#[test]
fn list_type_and_map_keys_must_agree() {
    assert_eq!(
        structural_messages(json!({"type": "object", "properties": {
            "a": {"type": "object", "x-kubernetes-list-type": "set"},
            "b": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "c": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "d": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "e": {"type": "array", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "string"}}
        }})),
        [
            r#"spec.versions[0].schema.openAPIV3Schema.properties[a].type: Invalid value: "object": must be array if x-kubernetes-list-type is specified"#,
            "spec.versions[0].schema.openAPIV3Schema.properties[b].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
            r#"spec.versions[0].schema.openAPIV3Schema.properties[c].x-kubernetes-list-map-keys: Invalid value: []string{"id"}: entries must all be names of item properties"#,
            "spec.versions[0].schema.openAPIV3Schema.properties[d].items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            "spec.versions[0].schema.openAPIV3Schema.properties[e].x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty",
        ]
    );
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    let errors = structural_errors(
        &props(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": "one"},
                "policy": {"type": "object", "properties": {"mode": {"type": "string"}}, "default": {"mode": "a", "junk": 1}}
            }}}}),
        ),
        ROOT,
    );
    assert_eq!(
        messages(&errors),
        [
            r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[policy].default: Invalid value: map[string]interface {}{"junk":1, "mode":"a"}: must not have unknown fields"#,
            r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#,
        ]
    );
}

#[test]
fn built_from_the_stored_json_it_validates_the_same() {
    let from_json = Structural::from_value(&json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "maximum": 10}}}
    }}))
    .expect("a schema");
    assert_eq!(
        messages(&from_json.validate(&json!({"spec": {"replicas": 11}}))),
        [
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
        ]
    );
    assert!(Structural::from_value(&json!({"type": 5})).is_err());
}

#[test]
fn the_certificate_and_cron_tab_schemas_are_structural() {
    assert!(structural_errors(certificate().schema(), ROOT).is_empty());
    assert!(structural_errors(cron_tab().schema(), ROOT).is_empty());
}
