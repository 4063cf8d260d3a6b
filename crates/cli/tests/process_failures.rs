//! End-to-end, with real kubectl on `localfargate up --runtime process`: what the kubelet does
//! around a container's run. securityContext applied for real, postStart and preStop hooks,
//! httpGet and tcpSocket probes with the kubelet's messages, `logs --since-time`, pull
//! secrets against an htpasswd-protected registry, and each way a container can fail to start
//! (an image that is not there, a name that is not one, an entrypoint of another format, a disk
//! that fills during a pull) failing that pod alone.
//!
//! Needs root, runc, busybox-static, docker-registry, skopeo and apache2-utils (`scripts/test`
//! installs them when it runs as root); skipped with the reason otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::process_cluster::{Cluster, Registry, busybox_layout, load, text};
use localfargate_runtime::image::LayoutFile;
use localfargate_runtime::test_images::busybox_layout_with;
use serde_json::Value;

/// A tmpfs mounted at a path, unmounted on drop (after the cluster that uses it is gone).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", text(&out));
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Bytes that do not compress: a layer this big stays this big on the wire and on disk.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn waiting_reason(c: &Cluster, pod: &str) -> String {
    c.pod("default", pod)["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn has_event(c: &Cluster, pod: &str, reason: &str, message: impl Fn(&str) -> bool) -> bool {
    c.events("default", pod)
        .iter()
        .any(|(r, m)| r == reason && message(m))
}

fn restarts(c: &Cluster, pod: &str) -> u64 {
    c.pod("default", pod)["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn the_kubelets_lifecycle_around_a_container_and_its_failures() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let open = Registry::start(None);
    let private = Registry::start(Some(("puller", "s3cret")));
    let busybox = busybox_layout(work.path(), "localfargate.test/busybox:1", &["sh"]);
    private.push(
        &busybox,
        "localfargate.test/busybox:1",
        "team/app:1",
        Some("puller:s3cret"),
    );
    // 40 MB that will not fit on the image store's 24 MB disk.
    let big = work.path().join("layout-big");
    busybox_layout_with(
        &big,
        "big:1",
        &["sh"],
        vec![LayoutFile::file(
            "data.bin",
            0o644,
            incompressible(40 << 20),
        )],
    )
    .unwrap();
    open.push(&big, "big:1", "team/big:1", None);
    // An entrypoint that is executable but of no format the kernel runs.
    let noformat = work.path().join("layout-noformat");
    busybox_layout_with(
        &noformat,
        "localfargate.test/noformat:1",
        &["/bin/app"],
        vec![LayoutFile::file("bin/app", 0o755, "echo not a binary\n")],
    )
    .unwrap();

    let mut flags: Vec<String> = [&open, &private]
        .iter()
        .flat_map(|r| {
            [
                "--insecure-registry".to_string(),
                format!("127.0.0.1:{}", r.port),
            ]
        })
        .collect();
    // Volume updates within a second, not the kubelet's minute.
    flags.extend(["--volume-sync-interval".to_string(), "1".to_string()]);
    // Declared before the cluster: dropped (unmounted) after it.
    let mut disk: Option<SmallDisk> = None;
    let c = Cluster::new(&flags, |data| {
        disk = Some(SmallDisk::mount(&data.join("images"), "24m"));
        load(data, &busybox);
        load(data, &noformat);
    });

    c.apply(concat!(
        // securityContext, for real: user and groups, fsGroup on a volume, a read-only root,
        // no privilege escalation, a bounding set of exactly what was added.
        "apiVersion: v1\nkind: Pod\nmetadata: {name: secure}\nspec:\n",
        "  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}\n",
        "  volumes: [{name: data, emptyDir: {}}]\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n    volumeMounts: [{name: data, mountPath: /data}]\n",
        "    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,",
        " capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}\n",
        // postStart runs beside the entrypoint; a failed liveness probe runs preStop first.
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: hooked}\nspec:\n",
        "  terminationGracePeriodSeconds: 5\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'while [ ! -f /tmp/started ]; do sleep 0.1; done; echo saw poststart; exec sleep 3600']\n",
        "    lifecycle:\n      postStart: {exec: {command: [touch, /tmp/started]}}\n",
        "      preStop: {exec: {command: [sh, -c, 'echo prestop ran > /dev/termination-log']}}\n",
        "    livenessProbe: {exec: {command: [sh, -c, 'test ! -f /tmp/dead']}, periodSeconds: 1, failureThreshold: 1}\n",
        // A postStart hook that fails kills its container.
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: badhook}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
        "    lifecycle: {postStart: {exec: {command: [sh, -c, 'exit 3']}}}\n",
        // httpGet readiness and tcpSocket liveness on busybox's httpd.
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www']\n",
        "    readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}\n",
        // Liveness tolerates a slow start on a loaded machine: what is checked is that it holds
        // while httpd listens, not how fast httpd starts.
        "    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, failureThreshold: 30}\n",
        // A tcpSocket liveness probe on a port nothing listens on.
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: refused}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
        "    livenessProbe: {tcpSocket: {port: 8081}, periodSeconds: 1, failureThreshold: 1}\n",
        // Projected service-account tokens: one for the cluster's API, one for STS (as IRSA's).
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: tokened}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
        "    volumeMounts: [{name: tokens, mountPath: /var/run/secrets/tokens}]\n",
        "  volumes:\n  - name: tokens\n    projected:\n      sources:\n",
        "      - serviceAccountToken: {path: api}\n",
        "      - serviceAccountToken: {path: sts, audience: sts.amazonaws.com, expirationSeconds: 86400}\n",
        // A ConfigMap volume, one of its keys through subPath, and the pod's labels.
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {level: debug}\n",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: watcher, labels: {tier: silver}}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'exec sleep 3600']\n",
        "    volumeMounts:\n    - {name: config, mountPath: /etc/app}\n",
        "    - {name: config, mountPath: /etc/fixed/level, subPath: level}\n",
        "    - {name: podinfo, mountPath: /etc/podinfo}\n",
        "  volumes:\n  - {name: config, configMap: {name: app-config}}\n",
        "  - name: podinfo\n    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}\n",
        // Two lines two seconds apart, for `logs --since-time`.
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: stamped}\nspec:\n",
        "  containers:\n  - name: c\n    image: localfargate.test/busybox:1\n    imagePullPolicy: Never\n",
        "    command: [sh, -c, 'echo first; sleep 2; echo second; exec sleep 3600']\n",
    ));
    c.apply(&format!(
        concat!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: neverpull}}\nspec:\n",
            "  containers: [{{name: c, image: 'localfargate.test/absent:1', imagePullPolicy: Never}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: badname}}\nspec:\n",
            "  containers: [{{name: c, image: 'Not/A/Valid:Name:1'}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: unreachable}}\nspec:\n",
            "  containers: [{{name: c, image: '127.0.0.1:1/team/app:1'}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: noformat}}\nspec:\n  restartPolicy: Never\n",
            "  containers: [{{name: c, image: 'localfargate.test/noformat:1', imagePullPolicy: Never}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: nocreds}}\nspec:\n",
            "  containers: [{{name: c, image: '127.0.0.1:{private}/team/app:1', command: [sleep, '3600']}}]\n",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: toobig}}\nspec:\n",
            "  containers: [{{name: c, image: '127.0.0.1:{open}/team/big:1', command: [sleep, '3600']}}]\n",
        ),
        private = private.port,
        open = open.port,
    ));

    // securityContext.
    c.wait_ready("default", "secure");
    let id = c.ok(&["exec", "secure", "--", "id"]);
    assert!(id.contains("uid=1000") && id.contains("gid=3000"), "{id}");
    assert!(
        id.contains("2000"),
        "fsGroup is a supplementary group: {id}"
    );
    let readonly = c.kubectl(&["exec", "secure", "--", "touch", "/rootfile"]);
    assert!(!readonly.status.success());
    assert!(
        text(&readonly).contains("Read-only file system"),
        "{}",
        text(&readonly)
    );
    c.ok(&["exec", "secure", "--", "touch", "/data/f"]);
    assert_eq!(
        c.ok(&["exec", "secure", "--", "stat", "-c", "%g", "/data"])
            .trim(),
        "2000",
        "the emptyDir belongs to the fsGroup"
    );
    let status = c.ok(&["exec", "secure", "--", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("NoNewPrivs"), "1", "{status}");
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(field("CapBnd"), "0000000000000400", "{status}");

    // postStart, and preStop before a liveness kill (its termination message survives).
    c.wait_ready("default", "hooked");
    c.eventually(
        "the entrypoint to see postStart's file",
        Duration::from_secs(30),
        || c.ok(&["logs", "hooked"]).contains("saw poststart"),
    );
    c.ok(&["exec", "hooked", "--", "touch", "/tmp/dead"]);
    c.eventually("hooked to restart", Duration::from_secs(60), || {
        restarts(&c, "hooked") >= 1
    });
    let p = c.pod("default", "hooked");
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["message"], "prestop ran\n", "{last:#}");
    assert!(has_event(&c, "hooked", "Killing", |m| {
        m == "Container c failed liveness probe, will be restarted"
    }));
    assert!(has_event(&c, "hooked", "Unhealthy", |m| {
        m.starts_with("Liveness probe failed")
    }));

    // A failed postStart: the kubelet's events, and a restart.
    c.eventually("badhook to restart", Duration::from_secs(60), || {
        restarts(&c, "badhook") >= 1
    });
    assert!(has_event(&c, "badhook", "FailedPostStartHook", |m| m
        == "PostStartHook failed"));
    assert!(has_event(&c, "badhook", "Killing", |m| m == "FailedPostStartHook"));

    // httpGet readiness follows the page; tcpSocket liveness holds while httpd listens.
    let p = c.wait_ready("default", "web");
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    c.ok(&["exec", "web", "--", "rm", "/www/ready"]);
    c.eventually("web to turn unready", Duration::from_secs(30), || {
        c.pod("default", "web")["status"]["containerStatuses"][0]["ready"] == false
    });
    assert!(has_event(&c, "web", "Unhealthy", |m| {
        m == "Readiness probe failed: HTTP probe failed with statuscode: 404"
    }));
    assert_eq!(
        restarts(&c, "web"),
        0,
        "liveness passes while httpd listens"
    );
    c.ok(&["exec", "web", "--", "sh", "-c", "echo ok > /www/ready"]);
    c.wait_ready("default", "web");
    // Pods reach each other by IP; the instance metadata service is out of reach, as on Fargate.
    // (nc, not wget: Debian's static busybox wget needs NSS libraries the image does not have.)
    let http_get =
        |host: &str, port: u16, path: &str| c.http_from("default", "secure", host, port, path, 3);
    let fetched = http_get(&ip, 8080, "/ready");
    assert!(fetched.status.success(), "{}", text(&fetched));
    let fetched = String::from_utf8_lossy(&fetched.stdout).into_owned();
    assert!(
        fetched.starts_with("HTTP/1.") && fetched.ends_with("\r\n\r\nok\n"),
        "{fetched:?}"
    );
    let imds = http_get("169.254.169.254", 80, "/latest/meta-data/");
    assert!(
        !imds.status.success() && imds.stdout.is_empty(),
        "IMDS answered: {}",
        text(&imds)
    );

    // tcpSocket liveness on a closed port: Go's dial error, and restarts.
    let refused_ip = c.wait_phase("default", "refused", &["Running"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    c.eventually("refused to restart", Duration::from_secs(60), || {
        restarts(&c, "refused") >= 1
    });
    let expected =
        format!("Liveness probe failed: dial tcp {refused_ip}:8081: connect: connection refused");
    assert!(
        has_event(&c, "refused", "Unhealthy", |m| m == expected),
        "{:?}",
        c.events("default", "refused")
    );
    assert_ne!(ip, refused_ip);

    // The tokens: kube-apiserver's claims, bound to the pod; the API accepts its own audience.
    let p = c.wait_ready("default", "tokened");
    let claims = |token: &str| -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let api_token = c.ok(&[
        "exec",
        "tokened",
        "--",
        "cat",
        "/var/run/secrets/tokens/api",
    ]);
    let sts_token = c.ok(&[
        "exec",
        "tokened",
        "--",
        "cat",
        "/var/run/secrets/tokens/sts",
    ]);
    let (api, sts) = (claims(&api_token), claims(&sts_token));
    assert_eq!(
        api["aud"],
        serde_json::json!(["https://kubernetes.default.svc"]),
        "{api:#}"
    );
    assert_eq!(
        sts["aud"],
        serde_json::json!(["sts.amazonaws.com"]),
        "{sts:#}"
    );
    assert_eq!(api["sub"], "system:serviceaccount:default:default");
    assert_eq!(api["kubernetes.io"]["pod"]["name"], "tokened");
    assert_eq!(api["kubernetes.io"]["pod"]["uid"], p["metadata"]["uid"]);
    assert_eq!(api["kubernetes.io"]["node"]["name"], p["spec"]["nodeName"]);
    assert_eq!(
        sts["exp"].as_u64().unwrap() - sts["iat"].as_u64().unwrap(),
        86400
    );
    let issuer = api["iss"].as_str().unwrap();
    assert!(
        // Portless (127.1.H.L) where the server may listen on 443, as these root runs can.
        (issuer.starts_with("https://127.1.") || issuer.starts_with("https://127.0.0.1:"))
            && issuer.contains("/id/"),
        "{issuer}"
    );
    // Tokens, like secrets, live on a tmpfs, never on the disk.
    let mounts = c.ok(&["exec", "tokened", "--", "cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("tmpfs /var/run/secrets/tokens ")),
        "{mounts}"
    );
    let with_token = |token: &str| c.kubectl(&["--token", token, "get", "pods", "-o", "name"]);
    // The token is the pod's service account, which RBAC allows nothing until it is bound.
    let forbidden = with_token(&api_token);
    assert!(
        text(&forbidden).contains(
            "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\""
        ),
        "{}",
        text(&forbidden)
    );
    c.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let allowed = with_token(&api_token);
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(text(&allowed).contains("pod/tokened"));
    let refused = with_token(&sts_token);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Unauthorized"),
        "{}",
        text(&refused)
    );

    // Volumes follow their objects (all at once, through `..data`); a subPath mount does not.
    c.wait_ready("default", "watcher");
    let cat = |path: &str| c.ok(&["exec", "watcher", "--", "cat", path]);
    assert_eq!(cat("/etc/app/level"), "debug");
    // Fargate's admission labels the pod with its profile; the downward API shows both.
    assert_eq!(
        cat("/etc/podinfo/labels"),
        "eks.amazonaws.com/fargate-profile=\"fp-default\"\ntier=\"silver\""
    );
    c.ok(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"level":"info","extra":"1"}}"#,
    ]);
    c.ok(&["label", "pod", "watcher", "tier=gold", "--overwrite"]);
    c.eventually(
        "the ConfigMap's update in the volume",
        Duration::from_secs(30),
        || cat("/etc/app/level") == "info",
    );
    assert_eq!(cat("/etc/app/extra"), "1");
    assert_eq!(
        cat("/etc/fixed/level"),
        "debug",
        "a subPath mount keeps its file"
    );
    c.eventually(
        "the label in the downward API volume",
        Duration::from_secs(30),
        || cat("/etc/podinfo/labels").ends_with("\ntier=\"gold\""),
    );
    let listing = c.ok(&["exec", "watcher", "--", "ls", "-a", "/etc/app"]);
    assert!(listing.lines().any(|l| l == "..data"), "{listing}");

    // `logs --since-time` from the second line's own timestamp; `--since` a moment later.
    c.eventually("both lines", Duration::from_secs(30), || {
        c.ok(&["logs", "stamped"]) == "first\nsecond\n"
    });
    let stamped = c.ok(&["logs", "stamped", "--timestamps"]);
    let second = stamped
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        c.ok(&["logs", "stamped", &format!("--since-time={second}")]),
        "second\n"
    );
    assert_eq!(c.ok(&["logs", "stamped", "--since=1h"]), "first\nsecond\n");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(c.ok(&["logs", "stamped", "--since=2s"]), "");

    // Images that cannot be had: each its own reason and events.
    c.eventually("ErrImageNeverPull", Duration::from_secs(30), || {
        waiting_reason(&c, "neverpull") == "ErrImageNeverPull"
    });
    let p = c.pod("default", "neverpull");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "Container image \"localfargate.test/absent:1\" is not present with pull policy of Never"
    );
    c.eventually("InvalidImageName", Duration::from_secs(30), || {
        waiting_reason(&c, "badname") == "InvalidImageName"
    });
    assert!(has_event(&c, "badname", "Failed", |m| m == "Error: InvalidImageName"));
    c.eventually("ImagePullBackOff", Duration::from_secs(60), || {
        waiting_reason(&c, "unreachable") == "ImagePullBackOff"
    });
    assert!(has_event(&c, "unreachable", "BackOff", |m| {
        m == "Back-off pulling image \"127.0.0.1:1/team/app:1\""
    }));
    assert!(has_event(&c, "unreachable", "Failed", |m| m == "Error: ErrImagePull"));

    // An entrypoint of no executable format: runc's init fails its execve after the start, as
    // with an arm64 image on an amd64 node on EKS: exit 1 and the error in the container's log.
    let p = c.wait_phase("default", "noformat", &["Failed"]);
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 1, "{t:#}");
    let logged = c.ok(&["logs", "noformat"]);
    assert!(
        logged.contains("exec /bin/app: exec format error"),
        "{logged}"
    );

    // A private registry: refused without credentials; a pull secret made by kubectl works.
    c.eventually("nocreds to fail its pull", Duration::from_secs(60), || {
        let r = waiting_reason(&c, "nocreds");
        r == "ErrImagePull" || r == "ImagePullBackOff"
    });
    assert!(
        has_event(&c, "nocreds", "Failed", |m| {
            m.starts_with(&format!(
                "Failed to pull image \"127.0.0.1:{}/team/app:1\"",
                private.port
            ))
        }),
        "{:?}",
        c.events("default", "nocreds")
    );
    c.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server=127.0.0.1:{}", private.port),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]);
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: withcreds}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers: [{{name: c, image: '127.0.0.1:{}/team/app:1', command: [sh, -c, 'echo pulled with a secret; exec sleep 3600']}}]\n",
        private.port
    ));
    c.wait_ready("default", "withcreds");
    assert_eq!(c.ok(&["logs", "withcreds"]), "pulled with a secret\n");

    // A disk that fills during a pull: that pod fails with the cause; the others run on.
    c.eventually("toobig to fail its pull", Duration::from_secs(90), || {
        let r = waiting_reason(&c, "toobig");
        r == "ErrImagePull" || r == "ImagePullBackOff"
    });
    let events = c.events("default", "toobig");
    assert!(
        events.iter().any(|(r, m)| r == "Failed"
            && m.contains(": no space left on device")
            && m.matches("Failed to pull image").count() == 1),
        "{events:?}"
    );
    for pod in ["secure", "web", "withcreds"] {
        let p: Value = c.wait_ready("default", pod);
        assert_eq!(p["status"]["phase"], "Running");
    }
    drop(c);
    drop(disk);
}

/// Whether any process's command line mentions `path`.
fn processes_under(path: &Path) -> bool {
    let out = Command::new("pgrep")
        .args(["-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    !out.stdout.is_empty()
}

#[test]
fn a_crashed_ephemeral_runs_pods_are_removed_by_the_next_run() {
    skip_unless_able!();
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(None);
    let busybox = busybox_layout(work.path(), "localfargate.test/busybox:1", &["sh"]);
    registry.push(
        &busybox,
        "localfargate.test/busybox:1",
        "team/sleeper:1",
        None,
    );
    let insecure = format!("127.0.0.1:{}", registry.port);
    let flags = [
        "--runtime",
        "process",
        "--insecure-registry",
        insecure.as_str(),
    ];
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", text(&out));
        out
    };

    // An --ephemeral run with a pod, killed as `kill -9` would.
    let first = common::up_with("0.1", &flags);
    ok(common::localfargate(
        &first,
        &["cluster", "create", "--name", "gone"],
    ));
    ok(common::localfargate(
        &first,
        &[
            "profile",
            "create",
            "--cluster",
            "gone",
            "--name",
            "fp",
            "--namespace",
            "default",
        ],
    ));
    let kubeconfig = work.path().join("kubeconfig");
    let config = ok(common::localfargate(
        &first,
        &["kubeconfig", "--cluster", "gone"],
    ));
    std::fs::write(&kubeconfig, &config.stdout).unwrap();
    let kubectl = |args: &[&str]| {
        Command::new(common::process_cluster::KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !kubectl(&["get", "namespace", "default"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the API of the first run"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(kubectl(&[
        "run",
        "sleeper",
        &format!("--image={insecure}/team/sleeper:1"),
        "--",
        "sleep",
        "3600",
    ]));
    ok(kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=90s",
    ]));
    let run_dir = std::env::temp_dir().join(format!("localfargate-{}", first.pid()));
    let ids: Vec<String> = std::fs::read_dir(run_dir.join("runtime/sandboxes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    drop(first);
    assert!(processes_under(&run_dir), "the pod outlives its run");

    // The next run removes it: processes, network namespace, cgroups, files.
    let second = common::up_with("0.1", &flags);
    let short = localfargate_runtime::net::short_id(&ids[0]);
    let netns_left = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|n| n == format!("lf-{short}"))
    };
    let cgroup_left = || {
        ["memory", "cpu", "pids", ""].iter().any(|c| {
            Path::new("/sys/fs/cgroup")
                .join(c)
                .join("localfargate")
                .join(&ids[0])
                .exists()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while run_dir.exists() || processes_under(&run_dir) || netns_left() || cgroup_left() {
        assert!(
            std::time::Instant::now() < deadline,
            "the crashed run's sandbox is still there: dir {}, processes {}, netns {}, cgroup {}",
            run_dir.exists(),
            processes_under(&run_dir),
            netns_left(),
            cgroup_left()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(second);
}
