use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[derive(Default)]
struct Refs {
    config_maps: HashMap<(String, String), Value>,
    secrets: HashMap<(String, String), Value>,
    /// Issue tokens (`token:<ns>:<sa>:<audience>:<seconds>`).
    tokens: bool,
    /// A runtime without files (the simulated one).
    no_files: bool,
}

impl Refs {
    fn cm(mut self, name: &str, data: Value) -> Self {
        self.config_maps.insert(
            ("default".into(), name.into()),
            json!({"metadata": {"name": name, "namespace": "default"}, "data": data}),
        );
        self
    }

    fn cm_value(mut self, name: &str, value: Value) -> Self {
        self.config_maps
            .insert(("default".into(), name.into()), value);
        self
    }

    /// A Secret of type Opaque; `data` holds plain text, encoded here.
    fn secret(self, name: &str, data: &[(&str, &[u8])]) -> Self {
        self.typed_secret(name, "Opaque", data)
    }

    fn typed_secret(mut self, name: &str, kind: &str, data: &[(&str, &[u8])]) -> Self {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(b64(v))))
            .collect();
        self.secrets.insert(
            ("default".into(), name.into()),
            json!({"metadata": {"name": name, "namespace": "default"}, "type": kind, "data": data}),
        );
        self
    }
}

impl PodRefs for Refs {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Value> {
        self.config_maps
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn files_are_read(&self) -> bool {
        !self.no_files
    }

    fn service_account_token(&self, r: &TokenRequest<'_>) -> Option<String> {
        assert!(
            !self.no_files,
            "no token is signed for a runtime without files"
        );
        self.tokens.then(|| {
            format!(
                "token:{}:{}:{}:{}",
                r.namespace, r.service_account, r.audience, r.expiration_seconds
            )
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn placement() -> PodPlacement {
    PodPlacement {
        ip: Ipv4Addr::new(10, 0, 1, 23),
        prefix_len: 20,
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        vcpu: 0.5,
        memory_mib: 1024,
        node_name: "fargate-ip-10-0-1-23.ec2.internal".into(),
        host_ip: "10.0.1.23".into(),
        cluster_dns: Some(Ipv4Addr::new(172, 20, 0, 10)),
        cluster_domain: "cluster.local".into(),
        region: "us-east-1".into(),
    }
}

const HOST_RESOLV: &str = "# generated\nnameserver 10.0.0.2\nsearch old.example\noptions rotate\nsearch ec2.internal. example.com\nnameserver 10.0.0.3\noptions timeout:2 attempts:3\n";

fn pod(spec: Value) -> Value {
    json!({
        "metadata": {
            "name": "web", "namespace": "default", "uid": "uid-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"team": "a \"b\"\n", "n": "1"}
        },
        "spec": spec
    })
}

fn one(container: Value) -> Value {
    pod(json!({"nodeName": "fargate-ip-10-0-1-23.ec2.internal", "containers": [container]}))
}

fn run_with(pod: &Value, refs: &Refs, place: &PodPlacement) -> Result<Resolved, ResolveError> {
    resolve(pod, place, refs, &|| Ok(HOST_RESOLV.to_string()))
}

fn run(pod: &Value, refs: &Refs) -> Resolved {
    match run_with(pod, refs, &placement()) {
        Ok(r) => r,
        Err(e) => panic!("resolve failed: {e:?}"),
    }
}

fn env_of(pod: &Value, refs: &Refs) -> Vec<(String, String)> {
    run(pod, refs).spec.containers[0].env.clone()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn config_error(pod: &Value, refs: &Refs) -> (String, String) {
    match run_with(pod, refs, &placement()) {
        Err(ResolveError::ContainerConfig { container, message }) => (container, message),
        other => panic!("expected a ContainerConfig error, got {other:?}"),
    }
}

fn volume_error(pod: &Value, refs: &Refs) -> (String, String) {
    match run_with(pod, refs, &placement()) {
        Err(ResolveError::Volume { volume, message }) => (volume, message),
        other => panic!("expected a Volume error, got {other:?}"),
    }
}

fn files(spec: &SandboxSpec, volume: &str) -> (Vec<(String, Option<u32>, String)>, u32) {
    let v = spec.volumes.iter().find(|v| v.name == volume);
    match v.map(|v| &v.source) {
        Some(VolumeSource::Files {
            files,
            default_mode,
            ..
        }) => (
            files
                .iter()
                .map(|f| {
                    (
                        f.path.clone(),
                        f.mode,
                        String::from_utf8_lossy(&f.content).into_owned(),
                    )
                })
                .collect(),
            *default_mode,
        ),
        other => panic!("volume {volume} is not Files: {other:?}"),
    }
}

// ---- identity and pod-level fields ----------------------------------------------------------

#[test]
fn identity_placement_and_defaults() {
    let p = pod(json!({
        "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
        "containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "repo/x@sha256:abc"}]
    }));
    let mut p = p;
    p["metadata"]["annotations"]["num"] = json!(3);
    let r = run(&p, &Refs::default());
    let s = r.spec;
    assert_eq!(s.pod_uid, "uid-1");
    assert_eq!((s.namespace.as_str(), s.name.as_str()), ("default", "web"));
    assert_eq!(s.ip, Ipv4Addr::new(10, 0, 1, 23));
    assert_eq!(s.prefix_len, 20);
    assert_eq!(s.gateway, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!((s.vcpu, s.memory_mib), (0.5, 1024));
    assert_eq!(s.restart_policy, RestartPolicy::Always);
    assert_eq!(s.hostname, "web");
    assert_eq!(s.subdomain, None);
    assert_eq!(s.termination_grace, Duration::from_secs(30));
    assert_eq!(s.ephemeral_storage_bytes, Some(20 * GIB));
    assert!(!s.share_process_namespace);
    // Only string annotations.
    assert_eq!(s.annotations.get("n").map(String::as_str), Some("1"));
    assert!(!s.annotations.contains_key("num"));
    let names: Vec<(&str, bool, PullPolicy)> = s
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.init, c.pull_policy))
        .collect();
    assert_eq!(
        names,
        vec![
            ("setup", true, PullPolicy::IfNotPresent),
            ("app", false, PullPolicy::Always),
            ("side", false, PullPolicy::IfNotPresent),
        ]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn pod_level_fields() {
    let p = pod(json!({
        "restartPolicy": "OnFailure",
        "hostname": "h1",
        "subdomain": "sub",
        "shareProcessNamespace": true,
        "terminationGracePeriodSeconds": 5,
        "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}],
        "containers": [{"name": "c", "image": "x:1"}]
    }));
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(s.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(s.hostname, "h1");
    assert_eq!(s.subdomain.as_deref(), Some("sub"));
    assert!(s.share_process_namespace);
    assert_eq!(s.termination_grace, Duration::from_secs(5));
    assert_eq!(
        s.host_aliases,
        vec![(
            "1.2.3.4".to_string(),
            vec!["a".to_string(), "b".to_string()]
        )]
    );
}

#[test]
fn long_hostnames_are_cut_to_63_without_a_trailing_dash_or_dot() {
    let long = format!("{}-.tail", "a".repeat(61));
    let mut p = one(json!({"name": "c", "image": "x:1"}));
    p["metadata"]["name"] = json!(long);
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(s.hostname, "a".repeat(61));
    let mut p = one(json!({"name": "c", "image": "x:1"}));
    p["metadata"]["name"] = json!("b".repeat(70));
    assert_eq!(run(&p, &Refs::default()).spec.hostname, "b".repeat(63));
}

#[test]
fn bad_restart_policy_is_invalid() {
    let p =
        pod(json!({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x:1"}]}));
    match run_with(&p, &Refs::default(), &placement()) {
        Err(ResolveError::Invalid { message }) => assert!(message.contains("Sometimes")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pod_security_context() {
    let p = pod(json!({
        "securityContext": {
            "runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": true, "fsGroup": 3000,
            "supplementalGroups": [4000, 4001], "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]
        },
        "containers": [{"name": "c", "image": "x:1"}]
    }));
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(
        s.security,
        PodSecurity {
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            run_as_non_root: Some(true),
            fs_group: Some(3000),
            supplemental_groups: vec![4000, 4001],
            seccomp: Some(SeccompProfile::RuntimeDefault),
            sysctls: vec![("net.ipv4.ip_local_port_range".into(), "1024 65000".into())],
        }
    );
}

#[test]
fn container_security_context() {
    let p = one(json!({"name": "c", "image": "x:1", "securityContext": {
        "runAsUser": 10, "runAsGroup": 20, "runAsNonRoot": false, "readOnlyRootFilesystem": true,
        "allowPrivilegeEscalation": false, "privileged": false,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "seccompProfile": {"type": "Unconfined"}
    }}));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(
        c.security,
        ContainerSecurity {
            run_as_user: Some(10),
            run_as_group: Some(20),
            run_as_non_root: Some(false),
            read_only_root_filesystem: true,
            allow_privilege_escalation: Some(false),
            privileged: false,
            capabilities_add: vec!["NET_BIND_SERVICE".into()],
            capabilities_drop: vec!["ALL".into()],
            seccomp: Some(SeccompProfile::Unconfined),
        }
    );
}

#[test]
fn seccomp_profiles_are_carried_and_bad_ones_refused_with_the_api_servers_wording() {
    let p = pod(json!({
        "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}},
        "containers": [{"name": "c", "image": "x:1"}]
    }));
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(
        s.security.seccomp,
        Some(SeccompProfile::Localhost("profiles/audit.json".into()))
    );
    assert_eq!(
        s.containers[0].security.seccomp, None,
        "unset: the pod's applies"
    );
    let p = one(json!({"name": "c", "image": "x:1", "securityContext": {
        "seccompProfile": {"type": "Localhost"}
    }}));
    match run_with(&p, &Refs::default(), &placement()) {
        Err(ResolveError::Invalid { message }) => assert_eq!(
            message,
            "spec.containers{c}.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
        ),
        other => panic!("{other:?}"),
    }
    let p = pod(json!({
        "securityContext": {"seccompProfile": {"type": "Strict"}},
        "containers": [{"name": "c", "image": "x:1"}]
    }));
    match run_with(&p, &Refs::default(), &placement()) {
        Err(ResolveError::Invalid { message }) => assert_eq!(
            message,
            "spec.securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn container_plain_fields() {
    let p = one(json!({
        "name": "c", "image": "nginx:1.27", "imagePullPolicy": "Never",
        "command": ["/bin/sh"], "args": ["-c", "echo"], "workingDir": "/w",
        "tty": true, "stdin": true, "stdinOnce": true,
        "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "FallbackToLogsOnError"
    }));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(c.image, "nginx:1.27");
    assert_eq!(c.pull_policy, PullPolicy::Never);
    assert_eq!(c.command, vec!["/bin/sh"]);
    assert_eq!(c.args, vec!["-c", "echo"]);
    assert_eq!(c.working_dir.as_deref(), Some("/w"));
    assert!(c.tty && c.stdin && c.stdin_once);
    assert_eq!(c.termination_message_path.as_deref(), Some("/tmp/msg"));
    assert_eq!(
        c.termination_message_policy,
        TerminationMessagePolicy::FallbackToLogsOnError
    );
}

// ---- resources and ephemeral storage --------------------------------------------------------

#[test]
fn resources_in_millicores_and_bytes_requests_defaulting_to_limits() {
    let p = one(json!({"name": "c", "image": "x:1", "resources": {
        "limits": {"cpu": "1.5", "memory": "1Gi"},
        "requests": {"cpu": "250m"}
    }}));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(
        c.resources,
        ContainerResources {
            cpu_limit_millis: Some(1500),
            memory_limit_bytes: Some(GIB),
            cpu_request_millis: Some(250),
            memory_request_bytes: Some(GIB),
        }
    );
    let p = one(
        json!({"name": "c", "image": "x:1", "resources": {"requests": {"cpu": 2, "memory": "500M"}}}),
    );
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(c.resources.cpu_request_millis, Some(2000));
    assert_eq!(c.resources.memory_request_bytes, Some(500_000_000));
    assert_eq!(c.resources.cpu_limit_millis, None);
}

#[test]
fn a_bad_quantity_is_invalid() {
    let p = one(json!({"name": "c", "image": "x:1", "resources": {"limits": {"memory": "lots"}}}));
    match run_with(&p, &Refs::default(), &placement()) {
        Err(ResolveError::Invalid { message }) => {
            assert!(
                message
                    .starts_with("container \"c\": resources.limits.memory: quantities must match"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ephemeral_storage_follows_fargate() {
    let storage = |requests: Value| {
        let p = pod(json!({"containers": [
            {"name": "a", "image": "x:1", "resources": {"requests": requests.clone()}},
            {"name": "b", "image": "x:1", "resources": {"requests": requests}}
        ]}));
        run(&p, &Refs::default()).spec.ephemeral_storage_bytes
    };
    // 2 × 1 GiB asked: the 20 GiB default.
    assert_eq!(storage(json!({"ephemeral-storage": "1Gi"})), Some(20 * GIB));
    // 2 × 50 GiB = 100 GiB asked: 115 GiB provisioned.
    assert_eq!(
        storage(json!({"ephemeral-storage": "50Gi"})),
        Some(115 * GIB)
    );
    // More than Fargate can give: the 175 GiB maximum.
    assert_eq!(
        storage(json!({"ephemeral-storage": "100Gi"})),
        Some(175 * GIB)
    );
    // A limit stands for a missing request; an init container counts by the larger rule.
    let p = pod(json!({
        "initContainers": [{"name": "i", "image": "x:1", "resources": {"limits": {"ephemeral-storage": "100Gi"}}}],
        "containers": [{"name": "a", "image": "x:1"}]
    }));
    assert_eq!(
        run(&p, &Refs::default()).spec.ephemeral_storage_bytes,
        Some(115 * GIB)
    );
}

// ---- environment ----------------------------------------------------------------------------

#[test]
fn env_from_then_env_later_names_replace_in_place() {
    let refs = Refs::default()
        .cm("cfg", json!({"B": "cm-b", "A": "cm-a"}))
        .secret("db", &[("user", b"admin"), ("pass", b"s3cret")]);
    let p = one(json!({"name": "c", "image": "x:1",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "db"}, "prefix": "DB_"},
            {"configMapRef": {"name": "cfg"}, "prefix": "P_"}
        ],
        "env": [
            {"name": "A", "value": "env-a"},
            {"name": "C", "value": "$(A)-$(B)-$(DB_pass)-$(NOPE)"},
            {"name": "DB_user", "value": "root"}
        ]
    }));
    assert_eq!(
        env_of(&p, &refs),
        pairs(&[
            ("A", "env-a"),
            ("B", "cm-b"),
            ("DB_pass", "s3cret"),
            ("DB_user", "root"),
            ("P_A", "cm-a"),
            ("P_B", "cm-b"),
            ("C", "env-a-cm-b-s3cret-$(NOPE)"),
        ])
    );
}

#[test]
fn env_values_expand_only_what_is_defined_before_them() {
    let p = one(json!({"name": "c", "image": "x:1", "env": [
        {"name": "X", "value": "$(Y)"},
        {"name": "Y", "value": "1"},
        {"name": "Z", "value": "$(Y)$(X)$$(Y)"},
        {"name": "E", "value": ""},
        {"name": "F", "value": "[$(E)]"}
    ]}));
    assert_eq!(
        env_of(&p, &Refs::default()),
        pairs(&[
            ("X", "$(Y)"),
            ("Y", "1"),
            ("Z", "1$(Y)$(Y)"),
            ("E", ""),
            ("F", "[]")
        ])
    );
}

#[test]
fn expansion_matches_the_upstream_table() {
    let vars: HashMap<&str, &str> = [
        ("VAR_A", "A"),
        ("VAR_B", "B"),
        ("VAR_C", "C"),
        ("VAR_REF", "$(VAR_A)"),
        ("VAR_EMPTY", ""),
    ]
    .into_iter()
    .collect();
    let lookup = |k: &str| vars.get(k).map(|v| (*v).to_string());
    for (input, expected) in [
        ("$(VAR_A)", "A"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("foo$(VAR_EMPTY)bar", "foobar"),
        ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("f00__(VAR_A)__", "f00__(VAR_A)__"),
        ("$?_boo_$!", "$?_boo_$!"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("$VAR_A)", "$VAR_A)"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_B)_______$(A", "B_______$(A"),
        ("$(VAR_C)_______$(", "C_______$("),
        ("$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("--$($($($($--", "--$($($($($--"),
        ("$($($($($--foo$(", "$($($($($--foo$("),
        ("$(foo$$var)", "$(foo$$var)"),
        ("\n", "\n"),
        ("é$(VAR_A)ü$é", "éAü$é"),
    ] {
        assert_eq!(expand(input, lookup), expected, "input {input:?}");
    }
}

#[test]
fn command_and_args_are_expanded_with_the_final_env() {
    let p = one(json!({"name": "c", "image": "x:1",
        "command": ["echo", "$(GREETING)"], "args": ["$(NAME)!", "$$(NAME)", "$(UNSET)"],
        "env": [{"name": "GREETING", "value": "hi"}, {"name": "NAME", "value": "bob"}]}));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(c.command, vec!["echo", "hi"]);
    assert_eq!(c.args, vec!["bob!", "$(NAME)", "$(UNSET)"]);
}

#[test]
fn optional_references_that_are_missing_define_nothing() {
    let refs = Refs::default()
        .cm("cfg", json!({"A": "1"}))
        .secret("s", &[("k", b"v")]);
    let p = one(json!({"name": "c", "image": "x:1",
    "envFrom": [
        {"configMapRef": {"name": "absent", "optional": true}},
        {"secretRef": {"name": "absent", "optional": true}}
    ],
    "env": [
        {"name": "M1", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "A", "optional": true}}},
        {"name": "M2", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B", "optional": true}}},
        {"name": "M3", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}},
        {"name": "M4", "valueFrom": {"secretKeyRef": {"name": "s", "key": "x", "optional": true}}},
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "A"}}},
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": false}}}
    ]}));
    assert_eq!(env_of(&p, &refs), pairs(&[("A", "1"), ("K", "v")]));
}

#[test]
fn an_optional_missing_key_keeps_an_earlier_definition() {
    let refs = Refs::default().cm("cfg", json!({"A": "from-envfrom"}));
    let p = one(json!({"name": "c", "image": "x:1",
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "missing", "optional": true}}}]}));
    assert_eq!(env_of(&p, &refs), pairs(&[("A", "from-envfrom")]));
}

#[test]
fn missing_references_fail_with_the_kubelets_messages() {
    let refs = Refs::default()
        .cm("app-config", json!({"OTHER": "x"}))
        .secret("db", &[("user", b"u")]);
    let cases = [
        (
            json!({"envFrom": [{"configMapRef": {"name": "nope"}}]}),
            "configmap \"nope\" not found",
        ),
        (
            json!({"envFrom": [{"secretRef": {"name": "nope"}}]}),
            "secret \"nope\" not found",
        ),
        (
            json!({"env": [{"name": "L", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "LOG_LEVEL"}}}]}),
            "couldn't find key LOG_LEVEL in ConfigMap default/app-config",
        ),
        (
            json!({"env": [{"name": "L", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "LOG_LEVEL"}}}]}),
            "configmap \"absent\" not found",
        ),
        (
            json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db2", "key": "password"}}}]}),
            "secret \"db2\" not found",
        ),
        (
            json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}}]}),
            "couldn't find key password in Secret default/db",
        ),
    ];
    for (fields, expected) in cases {
        let mut c = json!({"name": "app", "image": "x:1"});
        for (k, v) in fields.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        let p =
            pod(json!({"initContainers": [{"name": "init", "image": "x:1"}], "containers": [c]}));
        assert_eq!(
            config_error(&p, &refs),
            ("app".to_string(), expected.to_string())
        );
    }
}

#[test]
fn env_from_keeps_relaxed_names_and_skips_impossible_ones_with_a_warning() {
    let mut refs = Refs::default().cm_value(
        "cfg",
        json!({"metadata": {"name": "cfg"}, "data": {"app.properties": "p", "9LIVES": "9", "a=b": "x", "OK": "1"}}),
    );
    refs = refs.secret("s", &[("x=y", b"1"), ("GOOD", b"2")]);
    let p = one(json!({"name": "c", "image": "x:1", "envFrom": [
        {"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "s"}}
    ]}));
    let r = run(&p, &refs);
    assert_eq!(
        r.spec.containers[0].env,
        pairs(&[
            ("9LIVES", "9"),
            ("OK", "1"),
            ("app.properties", "p"),
            ("GOOD", "2")
        ])
    );
    assert_eq!(
        r.warnings,
        vec![
            PodWarning {
                reason: "InvalidEnvironmentVariableNames".into(),
                message: "Keys [a=b] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names.".into(),
            },
            PodWarning {
                reason: "InvalidEnvironmentVariableNames".into(),
                message: "Keys [x=y] from the EnvFrom secret default/s were skipped since they are considered invalid environment variable names.".into(),
            },
        ]
    );
}

#[test]
fn field_refs() {
    let mut p = one(json!({"name": "c", "image": "x:1", "env": [
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "LM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['missing']"}}},
        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['n']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "HIP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "HIPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
        {"name": "PIP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PIPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}}
    ]}));
    p["spec"]["serviceAccountName"] = json!("builder");
    assert_eq!(
        env_of(&p, &Refs::default()),
        pairs(&[
            ("N", "web"),
            ("NS", "default"),
            ("UID", "uid-1"),
            ("L", "web"),
            ("LM", ""),
            ("A", "1"),
            ("NODE", "fargate-ip-10-0-1-23.ec2.internal"),
            ("SA", "builder"),
            ("HIP", "10.0.1.23"),
            ("HIPS", "10.0.1.23"),
            ("PIP", "10.0.1.23"),
            ("PIPS", "10.0.1.23"),
        ])
    );
}

#[test]
fn bad_field_refs_fail_the_container() {
    for (selector, expected) in [
        (
            json!({"fieldPath": "spec.containers"}),
            "field label not supported: spec.containers",
        ),
        (
            json!({"fieldPath": "spec.restartPolicy"}),
            "unsupported fieldPath: spec.restartPolicy",
        ),
        (
            json!({"fieldPath": "metadata.name['x']"}),
            "field label does not support subscript: metadata.name['x']",
        ),
        (
            json!({"apiVersion": "v2", "fieldPath": "metadata.name"}),
            "unsupported pod version: v2",
        ),
    ] {
        let p = one(
            json!({"name": "c", "image": "x:1", "env": [{"name": "X", "valueFrom": {"fieldRef": selector}}]}),
        );
        assert_eq!(config_error(&p, &Refs::default()).1, expected);
    }
}

#[test]
fn resource_field_refs_round_up_and_default_limits_to_the_pod_size() {
    let p = pod(json!({"containers": [
        {"name": "app", "image": "x:1",
         "resources": {"limits": {"cpu": "1500m", "memory": "100Mi"}, "requests": {"cpu": "250m"}},
         "env": [
            {"name": "LCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "LCPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "RCPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
            {"name": "LMEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "LMEM_G", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1G"}}},
            {"name": "RMEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
            {"name": "ZERO_DIV", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}},
            {"name": "OTHER_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "bare", "resource": "limits.cpu"}}},
            {"name": "OTHER_MEM", "valueFrom": {"resourceFieldRef": {"containerName": "bare", "resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "OTHER_RCPU", "valueFrom": {"resourceFieldRef": {"containerName": "bare", "resource": "requests.cpu"}}},
            {"name": "EPH", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}}
         ]},
        {"name": "bare", "image": "x:1"}
    ]}));
    let rmem = (100 * MIB).to_string();
    assert_eq!(
        env_of(&p, &Refs::default()),
        pairs(&[
            ("LCPU", "2"),
            ("LCPU_M", "1500"),
            ("RCPU", "1"),
            ("LMEM", "100"),
            ("LMEM_G", "1"),
            // Defaulted from the limit.
            ("RMEM", rmem.as_str()),
            ("ZERO_DIV", "2"),
            // No limits: the pod's Fargate size (0.5 vCPU, 1024 MiB).
            ("OTHER_CPU", "1"),
            ("OTHER_MEM", "1024"),
            ("OTHER_RCPU", "0"),
            ("EPH", "20"),
        ])
    );
}

#[test]
fn bad_resource_field_refs_fail_the_container() {
    for (selector, expected) in [
        (
            json!({"resource": "limits.gpu"}),
            "unsupported container resource : limits.gpu",
        ),
        (
            json!({"resource": "cpu"}),
            "unsupported container resource : cpu",
        ),
        (
            json!({"containerName": "ghost", "resource": "limits.cpu"}),
            "container ghost not found",
        ),
    ] {
        let p = one(
            json!({"name": "c", "image": "x:1", "env": [{"name": "X", "valueFrom": {"resourceFieldRef": selector}}]}),
        );
        assert_eq!(config_error(&p, &Refs::default()).1, expected);
    }
}

#[test]
fn secret_values_are_decoded() {
    let refs = Refs::default().secret("s", &[("bin", &[0xff, b'a']), ("t", b"line1\nline2")]);
    let p = one(json!({"name": "c", "image": "x:1", "env": [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "bin"}}}
    ]}));
    let r = run(&p, &refs);
    assert_eq!(
        r.spec.containers[0].env,
        pairs(&[("T", "line1\nline2"), ("B", "\u{fffd}a")])
    );
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].reason, "InvalidEnvironmentVariableValue");
}

// ---- mounts -----------------------------------------------------------------------------------

#[test]
fn volume_mounts_with_sub_paths() {
    let refs = Refs::default().cm("cfg", json!({"a": "1"}));
    let p = pod(json!({
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
        "containers": [{"name": "c", "image": "x:1",
            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD)", "readOnly": true},
                {"name": "data", "mountPath": "/x", "subPath": "x"},
                {"name": "cfg", "mountPath": "/etc/cfg"}
            ]}]
    }));
    let c = &run(&p, &refs).spec.containers[0];
    let m = |name: &str, path: &str, ro: bool, sub: Option<&str>| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: ro,
        sub_path: sub.map(str::to_string),
    };
    assert_eq!(
        c.mounts,
        vec![
            m("data", "/data", false, None),
            m("data", "/logs", true, Some("logs/web")),
            m("data", "/x", false, Some("x")),
            // ConfigMap volumes are mounted read-only.
            m("cfg", "/etc/cfg", true, None),
        ]
    );
}

#[test]
fn bad_mounts_fail_the_container() {
    for (mount, expected) in [
        (
            json!({"name": "data", "mountPath": "/l", "subPathExpr": "$(A)/$(EMPTY)/$(B)"}),
            "missing value for B, EMPTY",
        ),
        (
            json!({"name": "data", "mountPath": "/l", "subPath": "/abs"}),
            "error SubPath `/abs` must not be an absolute path",
        ),
        (
            json!({"name": "data", "mountPath": "/l", "subPath": "a/../../b"}),
            "unable to provision SubPath `a/../../b`: must not contain '..'",
        ),
        (
            json!({"name": "ghost", "mountPath": "/g"}),
            "cannot find volume \"ghost\" to mount into container \"c\"",
        ),
    ] {
        let p = pod(json!({
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "x:1",
                "env": [{"name": "A", "value": "a"}, {"name": "EMPTY", "value": ""}],
                "volumeMounts": [mount]}]
        }));
        assert_eq!(config_error(&p, &Refs::default()).1, expected);
    }
}

// ---- probes and hooks -----------------------------------------------------------------------

#[test]
fn probes_with_defaults_and_named_ports() {
    let p = one(json!({"name": "c", "image": "x:1",
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9090}],
        "livenessProbe": {"httpGet": {"port": "http", "httpHeaders": [{"name": "X-A", "value": "1"}]},
                           "terminationGracePeriodSeconds": 7},
        "readinessProbe": {"tcpSocket": {"port": 8081}, "initialDelaySeconds": 3, "periodSeconds": 4,
                            "timeoutSeconds": 5, "successThreshold": 2, "failureThreshold": 6},
        "startupProbe": {"grpc": {"port": 9090}, "periodSeconds": 0}
    }));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    let mut liveness = Probe::new(Action::HttpGet {
        scheme: "HTTP".into(),
        host: String::new(),
        port: 8080,
        path: "/".into(),
        headers: vec![("X-A".into(), "1".into())],
    });
    liveness.termination_grace = Some(Duration::from_secs(7));
    assert_eq!(c.liveness, Some(liveness));
    let readiness = Probe {
        action: Action::TcpSocket {
            host: String::new(),
            port: 8081,
        },
        initial_delay: Duration::from_secs(3),
        period: Duration::from_secs(4),
        timeout: Duration::from_secs(5),
        success_threshold: 2,
        failure_threshold: 6,
        termination_grace: None,
    };
    assert_eq!(c.readiness, Some(readiness));
    assert_eq!(
        c.startup,
        Some(Probe::new(Action::Grpc {
            port: 9090,
            service: String::new()
        }))
    );
}

#[test]
fn probe_exec_and_http_details() {
    let p = one(json!({"name": "c", "image": "x:1",
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}},
        "readinessProbe": {"httpGet": {"scheme": "HTTPS", "host": "10.1.1.1", "path": "/healthz", "port": "8443"}},
        "startupProbe": {"grpc": {"port": 50051, "service": "liveness"}}}));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(
        c.liveness.as_ref().map(|p| &p.action),
        Some(&Action::Exec {
            command: vec!["cat".into(), "/tmp/ok".into()]
        })
    );
    assert_eq!(
        c.readiness.as_ref().map(|p| &p.action),
        Some(&Action::HttpGet {
            scheme: "HTTPS".into(),
            host: "10.1.1.1".into(),
            port: 8443,
            path: "/healthz".into(),
            headers: vec![]
        })
    );
    assert_eq!(
        c.startup.as_ref().map(|p| &p.action),
        Some(&Action::Grpc {
            port: 50051,
            service: "liveness".into()
        })
    );
}

#[test]
fn unknown_named_ports_fail_the_container() {
    let p = one(
        json!({"name": "c", "image": "x:1", "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"port": "metrics"}}}),
    );
    assert_eq!(
        config_error(&p, &Refs::default()),
        (
            "c".to_string(),
            "readinessProbe: port metrics not found".to_string()
        )
    );
    let p =
        one(json!({"name": "c", "image": "x:1", "livenessProbe": {"tcpSocket": {"port": 70000}}}));
    assert_eq!(
        config_error(&p, &Refs::default()).1,
        "livenessProbe: invalid port number: 70000"
    );
}

#[test]
fn lifecycle_hooks() {
    let p = one(
        json!({"name": "c", "image": "x:1", "ports": [{"name": "admin", "containerPort": 9000}],
        "lifecycle": {
            "postStart": {"httpGet": {"port": "admin", "path": "/started"}},
            "preStop": {"sleep": {"seconds": 5}}
        }}),
    );
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(
        c.post_start,
        Some(Action::HttpGet {
            scheme: "HTTP".into(),
            host: String::new(),
            port: 9000,
            path: "/started".into(),
            headers: vec![]
        })
    );
    assert_eq!(c.pre_stop, Some(Action::Sleep { seconds: 5 }));
    let p = one(json!({"name": "c", "image": "x:1", "lifecycle": {
        "postStart": {"exec": {"command": ["touch", "/s"]}},
        "preStop": {"tcpSocket": {"port": 80}}}}));
    let c = &run(&p, &Refs::default()).spec.containers[0];
    assert_eq!(
        c.post_start,
        Some(Action::Exec {
            command: vec!["touch".into(), "/s".into()]
        })
    );
    assert_eq!(
        c.pre_stop,
        Some(Action::TcpSocket {
            host: String::new(),
            port: 80
        })
    );
}

// ---- volumes ----------------------------------------------------------------------------------

#[test]
fn empty_dirs() {
    let p = pod(json!({"volumes": [
        {"name": "a", "emptyDir": {}},
        {"name": "b", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "c"}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let s = run(&p, &Refs::default()).spec;
    let sources: Vec<&VolumeSource> = s.volumes.iter().map(|v| &v.source).collect();
    assert_eq!(
        sources,
        vec![
            &VolumeSource::EmptyDir {
                memory: false,
                size_limit: None
            },
            &VolumeSource::EmptyDir {
                memory: true,
                size_limit: Some(64 * MIB)
            },
            &VolumeSource::EmptyDir {
                memory: false,
                size_limit: None
            },
        ]
    );
}

#[test]
fn config_map_volumes() {
    let refs = Refs::default().cm_value(
        "cfg",
        json!({"metadata": {"name": "cfg"}, "data": {"app.yaml": "a: 1", "b": "2"}, "binaryData": {"logo": b64(b"PNG")}}),
    );
    let p = pod(json!({"volumes": [
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o600,
            "items": [{"key": "app.yaml", "path": "conf/app.yaml", "mode": 0o400}, {"key": "logo", "path": "logo.png"}]}},
        {"name": "opt", "configMap": {"name": "absent", "optional": true}},
        {"name": "optkey", "configMap": {"name": "cfg", "optional": true, "items": [{"key": "nope", "path": "n"}, {"key": "b", "path": "b"}]}}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let s = run(&p, &refs).spec;
    assert_eq!(
        files(&s, "all"),
        (
            vec![
                ("app.yaml".into(), None, "a: 1".into()),
                ("b".into(), None, "2".into()),
                ("logo".into(), None, "PNG".into()),
            ],
            0o644
        )
    );
    assert_eq!(
        files(&s, "some"),
        (
            vec![
                ("conf/app.yaml".into(), Some(0o400), "a: 1".into()),
                ("logo.png".into(), None, "PNG".into()),
            ],
            0o600
        )
    );
    assert_eq!(files(&s, "opt"), (vec![], 0o644));
    assert_eq!(
        files(&s, "optkey"),
        (vec![("b".into(), None, "2".into())], 0o644)
    );
}

#[test]
fn secret_volumes() {
    let refs = Refs::default().secret("tls", &[("tls.crt", b"CERT"), ("tls.key", b"KEY")]);
    let p = pod(json!({"volumes": [
        {"name": "all", "secret": {"secretName": "tls", "defaultMode": 0o440}},
        {"name": "one", "secret": {"secretName": "tls", "items": [{"key": "tls.key", "path": "k", "mode": 0o400}]}},
        {"name": "opt", "secret": {"secretName": "absent", "optional": true}}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let s = run(&p, &refs).spec;
    assert_eq!(
        files(&s, "all"),
        (
            vec![
                ("tls.crt".into(), None, "CERT".into()),
                ("tls.key".into(), None, "KEY".into())
            ],
            0o440
        )
    );
    assert_eq!(
        files(&s, "one"),
        (vec![("k".into(), Some(0o400), "KEY".into())], 0o644)
    );
    assert_eq!(files(&s, "opt"), (vec![], 0o644));
}

#[test]
fn volumes_that_cannot_be_set_up() {
    let refs = Refs::default()
        .cm("app-config", json!({"a": "1"}))
        .secret("db", &[("user", b"u")]);
    for (volume, expected) in [
        (
            json!({"name": "cfg", "configMap": {"name": "absent"}}),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found",
        ),
        (
            json!({"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "missing", "path": "m"}]}}),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap references non-existent config key: missing",
        ),
        (
            json!({"name": "cfg", "secret": {"secretName": "nope"}}),
            "MountVolume.SetUp failed for volume \"cfg\" : secret \"nope\" not found",
        ),
        (
            json!({"name": "cfg", "secret": {"secretName": "db", "items": [{"key": "pass", "path": "p"}]}}),
            "MountVolume.SetUp failed for volume \"cfg\" : references non-existent secret key: pass",
        ),
    ] {
        let p = pod(
            json!({"volumes": [volume], "containers": [{"name": "c", "image": "x:1",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]}),
        );
        // Volumes are set up before any container's environment is made.
        assert_eq!(
            volume_error(&p, &refs),
            ("cfg".to_string(), expected.to_string())
        );
    }
}

#[test]
fn volumes_the_runtime_cannot_provide() {
    let p = pod(json!({"volumes": [
        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}},
        {"name": "efs", "persistentVolumeClaim": {"claimName": "efs-claim"}}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(
        s.volumes[0].source,
        VolumeSource::Unsupported {
            message: "Pod not supported on Fargate: volumes not supported: docker is of an unsupported volume Type".into()
        }
    );
    match &s.volumes[1].source {
        VolumeSource::Unsupported { message } => {
            assert!(
                message.starts_with("volume \"efs\" (persistentVolumeClaim) cannot be mounted"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn downward_api_volumes() {
    let mut p = pod(
        json!({"volumes": [{"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "./meta/name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "team", "fieldRef": {"fieldPath": "metadata.annotations['team']"}},
        {"path": "cpu_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
        {"path": "mem_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
    ]}}], "containers": [{"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "250m"}}}]}),
    );
    p["metadata"]["annotations"]["zz"] = json!("tab\there \u{a0}é\\");
    let s = run(&p, &Refs::default()).spec;
    assert_eq!(
        files(&s, "info"),
        (
            vec![
                (
                    "annotations".into(),
                    None,
                    "n=\"1\"\nteam=\"a \\\"b\\\"\\n\"\nzz=\"tab\\there \\u00a0é\\\\\"".into()
                ),
                ("cpu_limit".into(), None, "250".into()),
                ("labels".into(), None, "app=\"web\"\ntier=\"front\"".into()),
                ("mem_limit".into(), None, "1024".into()),
                ("meta/name".into(), Some(0o400), "web".into()),
                ("ns".into(), None, "default".into()),
                ("team".into(), None, "a \"b\"\n".into()),
                ("uid".into(), None, "uid-1".into()),
            ],
            0o444
        )
    );
}

#[test]
fn downward_api_volume_errors_are_gathered() {
    let p = pod(
        json!({"volumes": [{"name": "info", "downwardAPI": {"items": [
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
        {"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}
    ]}}], "containers": [{"name": "c", "image": "x:1"}]}),
    );
    assert_eq!(
        volume_error(&p, &Refs::default()).1,
        "MountVolume.SetUp failed for volume \"info\" : [unsupported fieldPath: spec.nodeName, container ghost not found]"
    );
}

#[test]
fn projected_volumes_merge_their_sources() {
    let refs = Refs {
        tokens: true,
        ..Refs::default()
    }
    .cm("kube-root-ca.crt", json!({"ca.crt": "CA"}))
    .secret("extra", &[("k", b"v")]);
    let mut p = pod(
        json!({"volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"serviceAccountToken": {"path": "aws-token", "audience": "sts.amazonaws.com"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": "extra"}},
        {"secret": {"name": "absent", "optional": true}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}}], "containers": [{"name": "c", "image": "x:1"}]}),
    );
    p["spec"]["serviceAccountName"] = json!("app-sa");
    let s = run(&p, &refs).spec;
    assert_eq!(
        files(&s, "kube-api-access"),
        (
            vec![
                (
                    "aws-token".into(),
                    None,
                    "token:default:app-sa:sts.amazonaws.com:3600".into()
                ),
                ("ca.crt".into(), None, "CA".into()),
                ("k".into(), None, "v".into()),
                ("namespace".into(), None, "default".into()),
                (
                    "token".into(),
                    None,
                    "token:default:app-sa:https://kubernetes.default.svc:3607".into()
                ),
            ],
            0o644
        )
    );
}

#[test]
fn projected_tokens_are_0600_when_the_volume_gets_an_owner() {
    let refs = Refs {
        tokens: true,
        ..Refs::default()
    };
    for security in [json!({"fsGroup": 2000}), json!({"runAsUser": 1000})] {
        let p = pod(json!({"securityContext": security,
            "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
            "containers": [{"name": "c", "image": "x:1"}]}));
        let (f, _) = files(&run(&p, &refs).spec, "t");
        assert_eq!(f[0].1, Some(0o600));
    }
    // Containers running as different users: no owner, the default mode.
    let p = pod(json!({"securityContext": {"runAsUser": 1000},
        "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
        "containers": [{"name": "c", "image": "x:1"}, {"name": "d", "image": "x:1", "securityContext": {"runAsUser": 5}}]}));
    let (f, _) = files(&run(&p, &refs).spec, "t");
    assert_eq!(f[0].1, None);
}

#[test]
fn projected_tokens_without_a_signer_are_left_out_with_a_warning() {
    let refs = Refs::default().cm("kube-root-ca.crt", json!({"ca.crt": "CA"}));
    let p = pod(
        json!({"volumes": [{"name": "kube-api-access", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt"}}
    ]}}], "containers": [{"name": "c", "image": "x:1"}]}),
    );
    let r = run(&p, &refs);
    assert_eq!(
        files(&r.spec, "kube-api-access").0,
        vec![("ca.crt".to_string(), None, "CA".to_string())]
    );
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].reason, "FailedServiceAccountToken");
    assert!(
        r.warnings[0].message.contains("default/default"),
        "{}",
        r.warnings[0].message
    );
}

#[test]
fn a_runtime_without_files_gets_no_signed_tokens_and_no_warning() {
    let refs = Refs {
        tokens: true,
        no_files: true,
        ..Refs::default()
    }
    .cm("kube-root-ca.crt", json!({"ca.crt": "CA"}));
    let p = pod(
        json!({"volumes": [{"name": "kube-api-access", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt"}}
    ]}}], "containers": [{"name": "c", "image": "x:1"}]}),
    );
    let r = run(&p, &refs);
    assert_eq!(
        files(&r.spec, "kube-api-access").0,
        vec![("ca.crt".to_string(), None, "CA".to_string())]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn projected_volume_errors_are_aggregated() {
    let refs = Refs::default().cm("cfg", json!({"a": "1"}));
    let p = pod(json!({"volumes": [{"name": "p", "projected": {"sources": [
        {"configMap": {"name": "absent"}},
        {"secret": {"name": "gone"}},
        {"configMap": {"name": "cfg", "items": [{"key": "b", "path": "b"}]}},
        {"configMap": {"name": "absent"}}
    ]}}], "containers": [{"name": "c", "image": "x:1"}]}));
    assert_eq!(
        volume_error(&p, &refs).1,
        "MountVolume.SetUp failed for volume \"p\" : [configmap \"absent\" not found, secret \"gone\" not found, configmap references non-existent config key: b]"
    );
    let p = pod(
        json!({"volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "absent"}}]}}],
        "containers": [{"name": "c", "image": "x:1"}]}),
    );
    assert_eq!(
        volume_error(&p, &refs).1,
        "MountVolume.SetUp failed for volume \"p\" : configmap \"absent\" not found"
    );
}

// ---- pull secrets -----------------------------------------------------------------------------

#[test]
fn image_pull_secrets() {
    let config = br#"{"auths":{"123.dkr.ecr.us-east-1.amazonaws.com":{"auth":"QVdTOnh4eA=="}}}"#;
    let legacy = br#"{"registry.example":{"auth":"dTpw","email":"a@b"}}"#;
    let refs = Refs::default()
        .typed_secret(
            "ecr",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", config)],
        )
        .typed_secret("old", "kubernetes.io/dockercfg", &[(".dockercfg", legacy)])
        .secret("opaque", &[(".dockerconfigjson", config)]);
    let p = pod(json!({"imagePullSecrets": [
        {"name": "ecr"}, {"name": "missing"}, {"name": ""}, {"name": "opaque"}, {"name": "old"}, {"name": "gone"}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let r = run(&p, &refs);
    assert_eq!(r.spec.pull_secrets.len(), 2);
    assert_eq!(r.spec.pull_secrets[0], config.to_vec());
    let converted: Value = serde_json::from_slice(&r.spec.pull_secrets[1]).unwrap_or(Value::Null);
    assert_eq!(
        converted,
        json!({"auths": {"registry.example": {"auth": "dTpw", "email": "a@b"}}})
    );
    assert_eq!(
        r.warnings,
        vec![PodWarning {
            reason: "FailedToRetrieveImagePullSecret".into(),
            message: "Unable to retrieve some image pull secrets (missing, gone); attempting to pull the image may not succeed.".into(),
        }]
    );
}

// ---- DNS --------------------------------------------------------------------------------------

fn dns_of(spec_extra: Value, place: &PodPlacement) -> Resolved {
    let mut spec = json!({"containers": [{"name": "c", "image": "x:1"}]});
    for (k, v) in spec_extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    match run_with(&pod(spec), &Refs::default(), place) {
        Ok(r) => r,
        Err(e) => panic!("{e:?}"),
    }
}

fn opts(o: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    o.iter()
        .map(|(n, v)| ((*n).to_string(), v.map(str::to_string)))
        .collect()
}

#[test]
fn cluster_first_uses_the_cluster_dns() {
    let r = dns_of(json!({}), &placement());
    assert_eq!(
        r.spec.dns,
        DnsConfig {
            nameservers: vec!["172.20.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
                "cluster.local".into(),
                "ec2.internal".into()
            ],
            options: opts(&[("ndots", Some("5"))]),
        }
    );
    let mut place = placement();
    place.region = "eu-west-1".into();
    let r = dns_of(json!({"dnsPolicy": "ClusterFirstWithHostNet"}), &place);
    assert_eq!(r.spec.dns.searches[3], "eu-west-1.compute.internal");
    assert!(r.warnings.is_empty());
}

#[test]
fn cluster_first_without_cluster_dns_falls_back_to_default() {
    let mut place = placement();
    place.cluster_dns = None;
    let r = dns_of(json!({}), &place);
    assert_eq!(
        r.spec.dns,
        DnsConfig {
            nameservers: vec!["10.0.0.2".into(), "10.0.0.3".into()],
            searches: vec!["ec2.internal".into(), "example.com".into()],
            options: opts(&[("timeout", Some("2")), ("attempts", Some("3"))]),
        }
    );
    assert_eq!(
        r.warnings,
        vec![PodWarning {
            reason: "MissingClusterDNS".into(),
            message: "pod: \"web_default(uid-1)\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.".into(),
        }]
    );
}

#[test]
fn default_policy_and_host_network_use_the_host_resolv_conf() {
    let host = DnsConfig {
        nameservers: vec!["10.0.0.2".into(), "10.0.0.3".into()],
        searches: vec!["ec2.internal".into(), "example.com".into()],
        options: opts(&[("timeout", Some("2")), ("attempts", Some("3"))]),
    };
    assert_eq!(
        dns_of(json!({"dnsPolicy": "Default"}), &placement())
            .spec
            .dns,
        host
    );
    let r = dns_of(
        json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
        &placement(),
    );
    assert_eq!(r.spec.dns, host);
    assert!(r.warnings.is_empty());
}

#[test]
fn dns_config_is_merged() {
    let r = dns_of(
        json!({"dnsConfig": {
            "nameservers": ["172.20.0.10", "1.1.1.1"],
            "searches": ["svc.cluster.local", "corp.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "timeout", "value": ""}]
        }}),
        &placement(),
    );
    assert_eq!(
        r.spec.dns,
        DnsConfig {
            nameservers: vec!["172.20.0.10".into(), "1.1.1.1".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
                "cluster.local".into(),
                "ec2.internal".into(),
                "corp.example".into()
            ],
            options: opts(&[("ndots", Some("2")), ("edns0", None), ("timeout", None)]),
        }
    );
}

#[test]
fn dns_policy_none_takes_only_the_dns_config() {
    let r = dns_of(
        json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["8.8.8.8"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "1"}]}}),
        &placement(),
    );
    assert_eq!(
        r.spec.dns,
        DnsConfig {
            nameservers: vec!["8.8.8.8".into()],
            searches: vec!["a.example".into()],
            options: opts(&[("ndots", Some("1"))]),
        }
    );
    assert_eq!(
        dns_of(json!({"dnsPolicy": "None"}), &placement()).spec.dns,
        DnsConfig::default()
    );
}

#[test]
fn dns_limits_are_applied() {
    let long = "x".repeat(254);
    let r = dns_of(
        json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
            "searches": ["a.example", long]
        }}),
        &placement(),
    );
    assert_eq!(
        r.spec.dns.nameservers,
        vec!["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    );
    assert_eq!(r.spec.dns.searches, vec!["a.example"]);
    let messages: Vec<&str> = r.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 1.1.1.1 2.2.2.2 3.3.3.3",
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: a.example",
        ]
    );
    assert!(r.warnings.iter().all(|w| w.reason == "DNSConfigForming"));
}

#[test]
fn an_unreadable_resolv_conf_gives_no_nameservers_and_a_warning() {
    let p = pod(json!({"dnsPolicy": "Default", "containers": [{"name": "c", "image": "x:1"}]}));
    let r = resolve(&p, &placement(), &Refs::default(), &|| {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"))
    });
    match r {
        Ok(r) => {
            assert_eq!(r.spec.dns, DnsConfig::default());
            assert_eq!(r.warnings.len(), 1);
        }
        Err(e) => panic!("{e:?}"),
    }
}

// ---- helpers ----------------------------------------------------------------------------------

#[test]
fn go_quoting() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(
        go_quote("\n\t\r\u{7}\u{0}\u{7f}"),
        "\"\\n\\t\\r\\a\\x00\\x7f\""
    );
    assert_eq!(go_quote("héllo 世界"), "\"héllo 世界\"");
    assert_eq!(
        go_quote("\u{a0}\u{200b}\u{feff}"),
        "\"\\u00a0\\u200b\\ufeff\""
    );
    assert_eq!(go_quote("\u{10ffff}"), "\"\\U0010ffff\"");
}

#[test]
fn base64_decoding() {
    for text in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        &[0, 255, 128],
    ] {
        assert_eq!(base64_decode(&b64(text)).as_deref(), Some(text));
    }
    assert_eq!(base64_decode("Zm9v\nYmFy").as_deref(), Some(&b"foobar"[..]));
    assert_eq!(base64_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
    assert_eq!(base64_decode("Zm9v*"), None);
    assert_eq!(base64_decode("Z"), None);
}

#[test]
fn path_cleaning() {
    assert_eq!(clean_path("./a//b/"), "a/b");
    assert_eq!(clean_path("a/./b/../c"), "a/c");
    assert_eq!(clean_path(""), ".");
}

#[test]
fn resolv_conf_parsing() {
    let (servers, searches, options) = parse_resolv_conf(HOST_RESOLV);
    assert_eq!(servers, vec!["10.0.0.2", "10.0.0.3"]);
    assert_eq!(searches, vec!["ec2.internal", "example.com"]);
    assert_eq!(options, vec!["timeout:2", "attempts:3"]);
}

#[test]
fn secret_downward_and_projected_volumes_are_kept_in_memory_config_maps_on_disk() {
    let refs = Refs::default()
        .cm("cfg", json!({"a": "1"}))
        .secret("creds", &[("password", b"p")]);
    let p = pod(json!({"volumes": [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "all", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}}
    ], "containers": [{"name": "c", "image": "x:1"}]}));
    let s = run(&p, &refs).spec;
    let in_memory = |name: &str| match &s.volumes.iter().find(|v| v.name == name).unwrap().source {
        VolumeSource::Files { memory, .. } => *memory,
        other => panic!("{other:?}"),
    };
    assert!(!in_memory("cfg"));
    assert!(in_memory("creds"));
    assert!(in_memory("info"));
    assert!(in_memory("all"));
}
