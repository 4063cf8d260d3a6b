//! One test per rule family, asserting upstream's exact messages, and a test that valid objects
//! of every kind pass.

use serde_json::{Value, json};

use super::*;

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(FieldError::message).collect()
}

fn create(group: &str, kind: &str, obj: Value) -> Vec<String> {
    messages(&validate_create(group, kind, &obj))
}

fn update(group: &str, kind: &str, old: Value, new: Value) -> Vec<String> {
    messages(&validate_update(group, kind, &old, &new))
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "resourceVersion": "1"})
}

/// A defaulted pod spec with one container.
fn pod_spec() -> Value {
    json!({
        "containers": [{"name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePolicy": "File", "resources": {}}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
    })
}

fn pod_with(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"), "spec": spec})
}

fn container_with(fields: Value) -> Value {
    let mut spec = pod_spec();
    let container = &mut spec["containers"][0];
    for (k, v) in fields.as_object().into_iter().flatten() {
        container[k] = v.clone();
    }
    pod_with(spec)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[test]
fn field_errors_print_as_upstream_does() {
    let e = field::invalid("spec.x", "a\"b\n", "bad");
    assert_eq!(e.message(), "spec.x: Invalid value: \"a\\\"b\\n\": bad");
    assert_eq!(e.reason(), "FieldValueInvalid");
    assert_eq!(
        field::invalid("n", 3, "d").message(),
        "n: Invalid value: 3: d"
    );
    assert_eq!(field::required("f", "").message(), "f: Required value");
    assert_eq!(field::forbidden("f", "no").message(), "f: Forbidden: no");
    assert_eq!(
        field::too_long("data", 1048576).message(),
        "data: Too long: must have at most 1048576 bytes"
    );
    assert_eq!(field::not_found("f", "x").message(), "f: Not found: \"x\"");
    assert_eq!(
        field::duplicate("f", "x").message(),
        "f: Duplicate value: \"x\""
    );
    assert_eq!(
        field::not_supported("f", "x", &["A", "B"]).message(),
        "f: Unsupported value: \"x\": supported values: \"A\", \"B\""
    );
    assert_eq!(
        field::invalid("f", json!(["a", "b"]), "d").message(),
        "f: Invalid value: []string{\"a\", \"b\"}: d"
    );
    assert_eq!(
        field::invalid("f", json!({"app": "x"}), "d").message(),
        "f: Invalid value: map[string]string{\"app\":\"x\"}: d"
    );
    assert_eq!(
        field::invalid("f", field::shown("1Gi"), "d").message(),
        "f: Invalid value: 1Gi: d"
    );
}

#[test]
fn invalid_status_message_and_causes_follow_new_invalid() {
    let one = vec![field::required("spec.selector", "")];
    assert_eq!(
        invalid_message("apps", "Deployment", "web", &one),
        "Deployment.apps \"web\" is invalid: spec.selector: Required value"
    );
    let two = vec![
        field::required("a", ""),
        field::invalid("b", "x", "bad"),
        field::required("a", ""),
    ];
    assert_eq!(
        invalid_message("", "Pod", "p", &two),
        "Pod \"p\" is invalid: [a: Required value, b: Invalid value: \"x\": bad]"
    );
    assert_eq!(invalid_message("", "Pod", "p", &[]), "Pod \"p\" is invalid");
    assert_eq!(
        causes(&[field::invalid("b", "x", "bad"), field::too_long("", 1)]),
        vec![
            json!({"reason": "FieldValueInvalid", "message": "Invalid value: \"x\": bad", "field": "b"}),
            json!({"reason": "FieldValueTooLong", "message": "Too long: must have at most 1 bytes"}),
        ]
    );
}

#[test]
fn names_follow_each_kinds_rule() {
    let cm = |name: &str| json!({"metadata": {"name": name, "namespace": "default"}});
    assert_eq!(
        create("", "ConfigMap", cm("Bad_Name")),
        vec![format!(
            "metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}"
        )]
    );
    assert!(create("", "ConfigMap", cm("a.b-c")).is_empty());
    assert_eq!(
        create(
            "",
            "ConfigMap",
            json!({"metadata": {"namespace": "default"}})
        ),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    let svc = json!({"metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}});
    assert_eq!(
        create("", "Service", svc),
        vec![
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert_eq!(
        create("", "Namespace", json!({"metadata": {"name": "a.b"}})),
        vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
    );
    assert_eq!(
        create(
            "",
            "Namespace",
            json!({"metadata": {"name": "team", "namespace": "x"}})
        ),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    assert_eq!(
        create(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "a/b%"}})
        ),
        vec![
            "metadata.name: Invalid value: \"a/b%\": may not contain '/'",
            "metadata.name: Invalid value: \"a/b%\": may not contain '%'",
        ]
    );
    // RBAC names may hold what DNS names may not.
    assert!(
        create(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "system:Admin"}})
        )
        .is_empty()
    );
    // A generateName's trailing dash is allowed; its name is checked too.
    assert!(
        create(
            "",
            "ConfigMap",
            json!({"metadata": {"generateName": "web-", "name": "web-x2x4z", "namespace": "d"}})
        )
        .is_empty()
    );
    assert_eq!(
        create(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "x", "namespace": "Bad"}})
        ),
        vec![
            "metadata.namespace: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
}

#[test]
fn labels_annotations_finalizers_and_owners() {
    let obj = json!({"metadata": {"name": "x", "namespace": "d",
        "labels": {"bad key": "ok", "app": "-v"},
        "annotations": {"big": "x".repeat(262_142)},
        "finalizers": ["plain", "example.com/ok"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u", "controller": true},
                            {"apiVersion": "", "kind": "Job", "name": "j", "uid": "v", "controller": true}]}});
    assert_eq!(
        create("", "ConfigMap", obj),
        vec![
            "metadata.labels: Invalid value: \"-v\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
            "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes".to_string(),
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty".to_string(),
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty".to_string(),
            "metadata.ownerReferences: Invalid value: []: Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/ and Job/j".to_string(),
            "metadata.finalizers[0]: Invalid value: \"plain\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
        ]
        .into_iter()
        .map(|m| if m.contains("Only one reference") { m.replace("[]", &owner_refs_shown()) } else { m })
        .collect::<Vec<_>>()
    );
    // Exactly at the limit is fine.
    let at_limit = json!({"metadata": {"name": "x", "namespace": "d", "annotations": {"big": "x".repeat(262_141)}}});
    assert!(create("", "ConfigMap", at_limit).is_empty());
}

fn owner_refs_shown() -> String {
    json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u", "controller": true},
           {"apiVersion": "", "kind": "Job", "name": "j", "uid": "v", "controller": true}])
    .to_string()
}

#[test]
fn container_resources() {
    let pod = container_with(
        json!({"resources": {"requests": {"cpu": "-1", "memory": "1Gi"}, "limits": {"memory": "512Mi"}}}),
    );
    assert_eq!(
        create("", "Pod", pod),
        vec![
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.containers[0].resources.requests: Invalid value: \"1Gi\": must be less than or equal to memory limit of 512Mi",
        ]
    );
    let pod =
        container_with(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}));
    assert_eq!(
        create("", "Pod", pod.clone()),
        vec![
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        ]
    );
    assert_eq!(
        invalid_message("", "Pod", "p", &validate_create("", "Pod", &pod)),
        "Pod \"p\" is invalid: spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
    );
    let pod = container_with(
        json!({"resources": {"limits": {"cpu": "-0.5", "gpu": "1", "example.com/dev": "2"}, "requests": {"example.com/dev": "1"}}}),
    );
    assert_eq!(
        create("", "Pod", pod),
        vec![
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"-500m\": must be greater than or equal to 0",
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/dev limit of 2",
        ]
    );
    // Equal requests and limits, in different spellings, are fine.
    let pod = container_with(
        json!({"resources": {"requests": {"cpu": "500m", "memory": "1024Mi"}, "limits": {"cpu": "0.5", "memory": "1Gi"}}}),
    );
    assert!(create("", "Pod", pod).is_empty());
}

#[test]
fn containers_names_images_ports_and_env() {
    let mut spec = pod_spec();
    spec["containers"] = json!([
        {"name": "app", "image": "", "ports": [{"containerPort": 70000, "name": "http"}, {"containerPort": 80, "name": "http", "protocol": "ICMP"}],
         "env": [{"name": "1BAD"}, {"name": "OK", "valueFrom": {}}]},
        {"name": "app", "image": "x"},
        {"name": "Bad_Name", "image": "x"},
    ]);
    spec["initContainers"] = json!([{"name": "app", "image": "x"}]);
    spec["ephemeralContainers"] = json!([{"name": "app", "image": "x", "targetContainerName": "nope", "ports": [{"containerPort": 1}]}]);
    assert_eq!(
        create("", "Pod", pod_with(spec)),
        vec![
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            "spec.containers[1].name: Duplicate value: \"app\"",
            "spec.containers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.initContainers[0].name: Duplicate value: \"app\"",
            "spec.ephemeralContainers[0].name: Duplicate value: \"app\"",
            "spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\"",
            "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
        ]
    );
    let mut spec = pod_spec();
    spec["containers"] = json!([]);
    assert_eq!(
        create("", "Pod", pod_with(spec)),
        vec!["spec.containers: Required value"]
    );
}

#[test]
fn volumes_and_mounts() {
    let mut spec = pod_spec();
    spec["volumes"] = json!([
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "cfg", "emptyDir": {}},
        {"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}},
        {"name": "none"},
        {"name": "claim", "persistentVolumeClaim": {}},
    ]);
    spec["containers"][0]["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "x", "mountPath": "/etc/cfg"},
        {"name": "claim", "mountPath": "/data"},
    ]);
    assert_eq!(
        create("", "Pod", pod_with(spec)),
        vec![
            "spec.volumes[1].name: Duplicate value: \"cfg\"",
            "spec.volumes[2].secret: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[3]: Required value: must specify a volume type",
            "spec.volumes[4].persistentVolumeClaim.claimName: Required value",
            "spec.containers[0].volumeMounts[1].name: Not found: \"x\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/etc/cfg\": must be unique",
            "spec.containers[0].volumeMounts[2].name: Not found: \"claim\"",
        ]
    );
}

#[test]
fn pod_policies_and_probes() {
    let mut spec = pod_spec();
    spec["restartPolicy"] = json!("Sometimes");
    spec["dnsPolicy"] = json!("Google");
    spec["activeDeadlineSeconds"] = json!(0);
    spec["containers"][0]["livenessProbe"] =
        json!({"exec": {"command": ["true"]}, "httpGet": {"port": 80}, "successThreshold": 2});
    spec["containers"][0]["readinessProbe"] =
        json!({"periodSeconds": -1, "tcpSocket": {"port": "Bad"}});
    spec["containers"][0]["startupProbe"] = json!({});
    spec["containers"][0]["restartPolicy"] = json!("Always");
    spec["initContainers"] =
        json!([{"name": "init", "image": "x", "readinessProbe": {"exec": {"command": ["a"]}}}]);
    assert_eq!(
        create("", "Pod", pod_with(spec)),
        vec![
            "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Bad\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.containers[0].startupProbe: Required value: must specify a handler type",
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        ]
    );
}

fn config_map(data: Value) -> Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm")});
    for (k, v) in data.as_object().into_iter().flatten() {
        cm[k] = v.clone();
    }
    cm
}

#[test]
fn config_map_keys_size_and_immutability() {
    assert_eq!(
        create(
            "",
            "ConfigMap",
            config_map(
                json!({"data": {"a b": "1", "..x": "2", "dup": "3"}, "binaryData": {"dup": "AA=="}})
            )
        ),
        vec![
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData",
        ]
    );
    let big = config_map(json!({"data": {"a": "x".repeat(3 * 1024 * 1024)}}));
    let errors = validate_create("", "ConfigMap", &big);
    assert_eq!(
        messages(&errors),
        vec![": Too long: must have at most 1048576 bytes"]
    );
    assert_eq!(
        invalid_message("", "ConfigMap", "cm", &errors),
        "ConfigMap \"cm\" is invalid: : Too long: must have at most 1048576 bytes"
    );
    let old = config_map(json!({"data": {"a": "1"}, "immutable": true}));
    let new = config_map(json!({"data": {"a": "2"}}));
    assert_eq!(
        update("", "ConfigMap", old.clone(), new),
        vec![
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    assert!(update("", "ConfigMap", old.clone(), old).is_empty());
}

fn secret(fields: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("s")});
    for (k, v) in fields.as_object().into_iter().flatten() {
        s[k] = v.clone();
    }
    s
}

#[test]
fn secret_types_size_and_immutability() {
    assert_eq!(
        create(
            "",
            "Secret",
            secret(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "QQ=="}}))
        ),
        vec!["data[tls.key]: Required value"]
    );
    assert_eq!(
        create(
            "",
            "Secret",
            secret(json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {"other": "x"}}))
        ),
        vec!["data[.dockerconfigjson]: Required value"]
    );
    assert_eq!(
        create(
            "",
            "Secret",
            secret(json!({"type": "kubernetes.io/service-account-token"}))
        ),
        vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    assert_eq!(
        create(
            "",
            "Secret",
            secret(json!({"type": "kubernetes.io/basic-auth", "data": {}}))
        ),
        vec![
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    assert_eq!(
        create(
            "",
            "Secret",
            secret(json!({"stringData": {"big": "x".repeat(1024 * 1024 + 1)}}))
        ),
        vec!["data: Too long: must have at most 1048576 bytes"]
    );
    let old = secret(json!({"type": "Opaque", "data": {"a": "QQ=="}, "immutable": true}));
    let new = secret(
        json!({"type": "kubernetes.io/tls", "data": {"a": "Qg==", "tls.crt": "", "tls.key": ""}, "immutable": true}),
    );
    assert_eq!(
        update("", "Secret", old.clone(), new),
        vec![
            "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    // The same data given as stringData is no change.
    let same = secret(json!({"type": "Opaque", "stringData": {"a": "A"}, "immutable": true}));
    assert!(update("", "Secret", old, same).is_empty());
}

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"), "spec": spec})
}

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": pod_spec()})
}

#[test]
fn deployment_selector_replicas_and_template() {
    let d = deployment(
        json!({"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "other"}))}),
    );
    let errors = validate_create("apps", "Deployment", &d);
    assert_eq!(
        messages(&errors),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
        ]
    );
    assert_eq!(
        invalid_message("apps", "Deployment", "web", &errors),
        "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`]"
    );
    let mut t = template(json!({"app": "web"}));
    t["spec"]["restartPolicy"] = json!("Never");
    assert_eq!(
        create(
            "apps",
            "Deployment",
            deployment(json!({"selector": {}, "template": t}))
        ),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ]
    );
    assert_eq!(
        create(
            "apps",
            "Deployment",
            deployment(json!({"template": template(json!({"app": "web"}))}))
        ),
        vec!["spec.selector: Required value"]
    );
    let old = deployment(
        json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web", "v": "2"}))}),
    );
    let new = deployment(
        json!({"selector": {"matchLabels": {"app": "web", "v": "2"}}, "template": template(json!({"app": "web", "v": "2"}))}),
    );
    assert_eq!(
        update("apps", "Deployment", old.clone(), new),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    assert!(update("apps", "Deployment", old.clone(), old).is_empty());
}

#[test]
fn other_workloads() {
    let spec = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}))});
    // Jobs need OnFailure or Never.
    let job = json!({"metadata": meta("j"), "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"})), "completions": -1, "backoffLimit": -2}});
    assert_eq!(
        create("batch", "Job", job),
        vec![
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
            "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ]
    );
    let mut job_template = template(json!({}));
    job_template["spec"]["restartPolicy"] = json!("OnFailure");
    let cron = |schedule: &str| json!({"metadata": meta("c"), "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "jobTemplate": {"spec": {"template": job_template}}}});
    assert_eq!(
        create("batch", "CronJob", cron("* * *")),
        vec!["spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: * * *"]
    );
    assert!(create("batch", "CronJob", cron("@hourly")).is_empty());
    assert!(create("batch", "CronJob", cron("*/5 1-3 * * mon")).is_empty());
    // StatefulSets may change few fields.
    let sts = |service: &str| {
        json!({"metadata": meta("db"), "spec": {"serviceName": service, "replicas": 1,
        "selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"})),
        "podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}})
    };
    assert!(create("apps", "StatefulSet", sts("db")).is_empty());
    assert_eq!(
        update("apps", "StatefulSet", sts("db"), sts("other")),
        vec![
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
    // StatefulSet names are DNS labels, and upstream leaves the template's pod spec to the pods.
    let mut dotted = sts("db");
    dotted["metadata"]["name"] = json!("db.v1");
    dotted["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "-1"}});
    assert_eq!(
        create("apps", "StatefulSet", dotted),
        vec!["metadata.name: Invalid value: \"db.v1\": must not contain dots"]
    );
    let ds = |rolling: Value| {
        json!({"metadata": meta("ds"), "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"})),
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}})
    };
    assert_eq!(
        create(
            "apps",
            "DaemonSet",
            ds(json!({"maxUnavailable": 1, "maxSurge": "10%"}))
        ),
        vec![
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 10%: may not be set when maxUnavailable is non-zero"
        ]
    );
    assert_eq!(
        create(
            "apps",
            "DaemonSet",
            ds(json!({"maxUnavailable": 0, "maxSurge": 0}))
        ),
        vec![
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        ]
    );
    let mut ds_template = template(json!({"app": "x"}));
    ds_template["spec"]["activeDeadlineSeconds"] = json!(5);
    assert_eq!(
        create(
            "apps",
            "DaemonSet",
            json!({"metadata": meta("ds"), "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": ds_template}})
        ),
        vec![
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported"
        ]
    );
    assert!(
        create(
            "apps",
            "ReplicaSet",
            json!({"metadata": meta("rs"), "spec": spec})
        )
        .is_empty()
    );
    assert_eq!(
        create(
            "",
            "ReplicationController",
            json!({"metadata": meta("rc"), "spec": {"replicas": -3, "template": template(json!({}))}})
        ),
        vec![
            "spec.selector: Required value",
            "spec.replicas: Invalid value: -3: must be greater than or equal to 0",
        ]
    );
}

#[test]
fn updates_keep_identity_and_immutable_fields() {
    let cm =
        |name: &str, ns: &str| json!({"metadata": {"name": name, "namespace": ns, "uid": "u1"}});
    assert_eq!(
        update("", "ConfigMap", cm("a", "default"), cm("b", "other")),
        vec![
            "metadata.name: Invalid value: \"b\": field is immutable",
            "metadata.namespace: Invalid value: \"other\": field is immutable",
        ]
    );
    let old = pod_with(pod_spec());
    let mut image = old.clone();
    image["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert!(update("", "Pod", old.clone(), image).is_empty());
    let mut policy = old.clone();
    policy["spec"]["dnsPolicy"] = json!("Default");
    assert_eq!(
        update("", "Pod", old, policy),
        vec![
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
        ]
    );
    let svc = |ip: &str| json!({"metadata": meta("web"), "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    assert_eq!(
        update("", "Service", svc("10.96.0.10"), svc("10.96.0.11")),
        vec!["spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable"]
    );
}

#[test]
fn services() {
    let svc = |spec: Value| json!({"metadata": meta("web"), "spec": spec});
    assert_eq!(
        create("", "Service", svc(json!({"type": "ClusterIP"}))),
        vec!["spec.ports: Required value"]
    );
    assert!(create("", "Service", svc(json!({"clusterIP": "None"}))).is_empty());
    assert!(
        create(
            "",
            "Service",
            svc(json!({"type": "ExternalName", "externalName": "db.example.com"}))
        )
        .is_empty()
    );
    assert_eq!(
        create(
            "",
            "Service",
            svc(
                json!({"type": "Magic", "ports": [{"port": 0, "protocol": "TCP", "targetPort": 70000}, {"name": "b", "port": 0, "protocol": "TCP"}]})
            )
        ),
        vec![
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:0, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ]
    );
}

#[test]
fn rbac_rules_bindings_and_role_ref() {
    let role = json!({"metadata": meta("r"), "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
    assert_eq!(
        create("rbac.authorization.k8s.io", "Role", role),
        vec![
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
        ]
    );
    let binding = |kind: &str| {
        json!({"metadata": meta("b"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "x"}, {"kind": "User", "name": ""}]})
    };
    assert_eq!(
        create("rbac.authorization.k8s.io", "RoleBinding", binding("Pod")),
        vec![
            "roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\"",
            "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            "subjects[2].name: Required value",
            "subjects[2].name: Invalid value: \"\": user name cannot be empty",
        ]
    );
    let valid = |kind: &str| {
        let mut b = binding(kind);
        b["subjects"] = json!([{"kind": "ServiceAccount", "name": "default"}]);
        b
    };
    assert_eq!(
        update(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            valid("Role"),
            valid("ClusterRole")
        ),
        vec![
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"r\"}: cannot change roleRef"
        ]
    );
    let cluster_binding = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]});
    assert_eq!(
        create(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            cluster_binding
        ),
        vec!["subjects[0].namespace: Required value"]
    );
}

#[test]
fn policy_autoscaling_scheduling_and_leases() {
    let pdb = json!({"metadata": meta("p"), "spec": {"minAvailable": 1, "maxUnavailable": "200%", "selector": {"matchLabels": {"app": "x"}}}});
    let errors = messages(&validate_create("policy", "PodDisruptionBudget", &pdb));
    assert_eq!(errors.len(), 2);
    assert!(errors[0].ends_with("minAvailable and maxUnavailable cannot be both set"));
    assert_eq!(
        errors[1],
        "spec.maxUnavailable: Invalid value: 200%: must not be greater than 100%"
    );
    let hpa = json!({"metadata": meta("h"), "spec": {"minReplicas": 5, "maxReplicas": 2, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment"}}});
    assert_eq!(
        create("autoscaling", "HorizontalPodAutoscaler", hpa),
        vec![
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
            "spec.scaleTargetRef.name: Required value",
        ]
    );
    assert_eq!(
        create(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 2_000_000_000i64})
        ),
        vec!["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    assert_eq!(
        create(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "system-mine"}, "value": 1})
        ),
        vec![
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
        ]
    );
    assert!(
        create(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000i64})
        )
        .is_empty()
    );
    assert_eq!(
        update(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 1}),
            json!({"metadata": {"name": "high"}, "value": 2})
        ),
        vec!["value: Forbidden: may not be changed in an update."]
    );
    assert_eq!(
        create(
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})
        ),
        vec![
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
}

#[test]
fn networking() {
    let ingress = json!({"metadata": meta("i"), "spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [
        {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "svc"}}},
        {"path": "/", "backend": {"service": {"name": "svc", "port": {"number": 80}}}},
        {"path": "/a//b", "pathType": "Exact", "backend": {"service": {"name": "Svc", "port": {"name": "http"}}}},
    ]}}]}});
    assert_eq!(
        create("networking.k8s.io", "Ingress", ingress),
        vec![
            "spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
            "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[2].path: Invalid value: \"/a//b\": must not contain '//'",
            "spec.rules[0].http.paths[2].backend.service.name: Invalid value: \"Svc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
    assert_eq!(
        create(
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": meta("i"), "spec": {}})
        ),
        vec![
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
        ]
    );
    let policy = json!({"metadata": meta("n"), "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Sideways"],
        "ingress": [{"from": [{}], "ports": [{"protocol": "ICMP", "port": 80, "endPort": 70}]}]}});
    assert_eq!(
        create("networking.k8s.io", "NetworkPolicy", policy),
        vec![
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            "spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
        ]
    );
}

#[test]
fn claims_quotas_and_limit_ranges() {
    let pvc = json!({"metadata": meta("c"), "spec": {"accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"], "resources": {"requests": {}}}});
    assert_eq!(
        create("", "PersistentVolumeClaim", pvc),
        vec![
            "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
            "spec.resources[storage]: Required value",
        ]
    );
    let sized = |size: &str| json!({"metadata": meta("c"), "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    assert_eq!(
        create("", "PersistentVolumeClaim", sized("0")),
        vec!["spec.resources[storage]: Invalid value: \"0\": must be greater than zero"]
    );
    assert_eq!(
        update("", "PersistentVolumeClaim", sized("2Gi"), sized("1Gi")),
        vec![
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ]
    );
    let quota = json!({"metadata": meta("q"), "spec": {"hard": {"pods": "-1", "widgets": "3", "requests.cpu": "2"}}});
    assert_eq!(
        create("", "ResourceQuota", quota),
        vec![
            "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
        ]
    );
    let limits = json!({"metadata": meta("lr"), "spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"memory": "500m"}},
        {"type": "Container"},
        {"type": "Pod", "default": {"cpu": "1"}},
    ]}});
    assert_eq!(
        create("", "LimitRange", limits),
        vec![
            "spec.limits[0].min[cpu]: Invalid value: 2: min value 2 is greater than max value 1",
            "spec.limits[0].maxLimitRequestRatio[memory]: Invalid value: 500m: ratio 500m is less than 1",
            "spec.limits[1].type: Duplicate value: \"Container\"",
            "spec.limits[2].default: Forbidden: may not be specified when `type` is 'Pod'",
        ]
    );
}

/// Valid objects of every kind covered, defaulted as the API defaults them: no errors.
#[test]
fn valid_objects_of_every_kind_pass() {
    let labels = json!({"app": "web"});
    let selector = json!({"matchLabels": labels});
    let mut job_template = template(labels.clone());
    job_template["spec"]["restartPolicy"] = json!("OnFailure");
    let mut full_pod = pod_spec();
    full_pod["volumes"] = json!([{"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.conf"}]}},
                                  {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]);
    full_pod["containers"][0] = json!({"name": "app", "image": "nginx:1.27",
        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "MY_ENV.NAME", "value": "x"}, {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        "envFrom": [{"configMapRef": {"name": "c"}}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "subPath": "a.conf"}, {"name": "data", "mountPath": "/data"}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "livenessProbe": {"httpGet": {"path": "/", "port": "http", "scheme": "HTTP"}, "periodSeconds": 10, "successThreshold": 1},
        "readinessProbe": {"tcpSocket": {"port": 80}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}});
    full_pod["initContainers"] = json!([{"name": "migrate", "image": "busybox", "command": ["true"]},
                                        {"name": "sidecar", "image": "envoy", "restartPolicy": "Always", "startupProbe": {"grpc": {"port": 9000}}}]);
    full_pod["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    full_pod["tolerations"] = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "",
            "Pod",
            json!({"metadata": {"name": "web-0", "namespace": "default", "labels": labels, "annotations": {"Example.com/Note": "x"},
            "finalizers": ["example.com/cleanup"], "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "1", "controller": true}]},
            "spec": full_pod}),
        ),
        (
            "",
            "ConfigMap",
            config_map(
                json!({"data": {"app.conf": "x", "KEY_NAME": "y"}, "binaryData": {"logo.png": "iVBORw0K"}}),
            ),
        ),
        (
            "",
            "Secret",
            secret(
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "QQ==", "tls.key": "Qg=="}}),
            ),
        ),
        (
            "",
            "Secret",
            secret(
                json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\":{}}"}}),
            ),
        ),
        (
            "",
            "Secret",
            secret(
                json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "namespace": "d", "annotations": {"kubernetes.io/service-account.name": "default"}}}),
            ),
        ),
        (
            "",
            "Service",
            json!({"metadata": meta("web"), "spec": {"type": "NodePort", "selector": labels, "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}}, "spec": {"finalizers": ["kubernetes"]}}),
        ),
        ("", "ServiceAccount", json!({"metadata": meta("builder")})),
        (
            "",
            "ReplicationController",
            json!({"metadata": meta("rc"), "spec": {"replicas": 1, "selector": labels, "template": template(labels.clone())}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp2", "volumeMode": "Filesystem", "resources": {"requests": {"storage": "10Gi"}}}}),
        ),
        (
            "",
            "ResourceQuota",
            json!({"metadata": meta("q"), "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi", "count/deployments.apps": "5", "requests.nvidia.com/gpu": "1"}}}),
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": meta("lr"), "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"}, "max": {"cpu": "2"}, "min": {"cpu": "100m"}, "maxLimitRequestRatio": {"cpu": "4"}}]}}),
        ),
        (
            "apps",
            "Deployment",
            deployment(
                json!({"replicas": 3, "selector": selector, "template": template(labels.clone()),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
            ),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"metadata": meta("rs"), "spec": {"replicas": 0, "selector": selector, "template": template(labels.clone())}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": meta("db"), "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": template(labels.clone()), "podManagementPolicy": "Parallel", "updateStrategy": {"type": "OnDelete"}}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": meta("ds"), "spec": {"selector": selector, "template": template(labels.clone()),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": meta("j"), "spec": {"selector": selector, "template": job_template.clone(), "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed"}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": meta("nightly"), "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": meta("reader"), "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "system:reader"}, "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": meta("rb"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}, {"kind": "User", "name": "jane@example.com", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "Group", "name": "devs"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": meta("pdb"), "spec": {"minAvailable": "50%", "selector": selector}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("hpa"), "spec": {"minReplicas": 1, "maxReplicas": 5,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "targetCPUUtilizationPercentage": 80}}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": meta("ing"), "spec": {"ingressClassName": "alb", "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}],
            "rules": [{"host": "app.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                                                                      {"path": "/api", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]}}),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"metadata": meta("np"), "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}]}],
            "egress": [{"to": [{"podSelector": {}}]}]}}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "gp2"}, "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 1_000_000, "globalDefault": false, "preemptionPolicy": "Never"}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": meta("leader"), "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}),
        ),
    ];
    for (group, kind, obj) in cases {
        let errors = validate_create(group, kind, &obj);
        assert!(errors.is_empty(), "{kind}: {:?}", messages(&errors));
        let again = validate_update(group, kind, &obj, &obj);
        assert!(again.is_empty(), "{kind} update: {:?}", messages(&again));
    }
    // Kinds not covered validate to nothing.
    assert!(validate_create("example.com", "Widget", &json!({})).is_empty());
}

#[test]
fn namespace_spec_finalizers() {
    assert_eq!(
        create(
            "",
            "Namespace",
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["cleanup", "kubernetes"]}})
        ),
        vec![
            "spec.finalizers: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
}
