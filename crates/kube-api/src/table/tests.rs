use super::*;
use serde_json::json;

const NOW: &str = "2026-11-23T18:20:00Z";
/// Five minutes before [`NOW`].
const CREATED: &str = "2026-11-23T18:15:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn cells_of(group: &str, resource: &str, object: Value) -> Vec<Value> {
    let cells = cells(group, resource, &object, now());
    assert_eq!(
        cells.len(),
        columns(group, resource).len(),
        "{group}/{resource}: one cell per column"
    );
    cells
}

fn names(group: &str, resource: &str, priority: u64) -> Vec<String> {
    columns(group, resource)
        .iter()
        .filter(|c| c["priority"] == priority)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn secs(s: u64) -> String {
    human_duration(Duration::from_secs(s))
}

#[test]
fn human_duration_boundaries() {
    const M: u64 = 60;
    const H: u64 = 60 * M;
    const D: u64 = 24 * H;
    let cases = [
        (0, "0s"),
        (1, "1s"),
        (119, "119s"),
        (120, "2m"),
        (121, "2m1s"),
        (5 * M, "5m"),
        (10 * M - 1, "9m59s"),
        (10 * M, "10m"),
        (3 * H - 1, "179m"),
        (3 * H, "3h"),
        (3 * H + 30 * M + 59, "3h30m"),
        (8 * H - 1, "7h59m"),
        (8 * H, "8h"),
        (48 * H - 1, "47h"),
        (48 * H, "2d"),
        (49 * H, "2d1h"),
        (8 * D - 1, "7d23h"),
        (8 * D, "8d"),
        (730 * D - 1, "729d"),
        (730 * D, "2y"),
        (731 * D, "2y1d"),
        (8 * 365 * D - 1, "7y364d"),
        (8 * 365 * D, "8y"),
        (3000 * D, "8y"),
    ];
    for (s, want) in cases {
        assert_eq!(secs(s), want, "{s}s");
    }
    assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
}

#[test]
fn clock_skew_reads_as_upstream_does() {
    assert_eq!(human_nanos(-1_500_000_000), "0s");
    assert_eq!(human_nanos(-1_000_000_000), "0s");
    assert_eq!(human_nanos(-2_000_000_000), "<invalid>");
    let future = json!({"metadata": {"name": "x", "creationTimestamp": "2026-11-23T18:30:00Z"}});
    assert_eq!(cells_of("", "configmaps", future)[2], "<invalid>");
}

#[test]
fn column_definitions_follow_upstream() {
    let pod = columns("", "pods");
    assert_eq!(
        pod[0],
        json!({"name": "Name", "type": "string", "format": "name",
               "description": NAME_DOC, "priority": 0})
    );
    assert_eq!(pod[3]["name"], "Restarts");
    assert_eq!(pod[3]["type"], "string");
    assert_eq!(
        names("", "pods", 0),
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
    assert_eq!(
        names("", "pods", 1),
        ["IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    assert_eq!(
        names("", "nodes", 0),
        ["Name", "Status", "Roles", "Age", "Version"]
    );
    assert_eq!(
        names("", "nodes", 1),
        [
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    assert_eq!(
        names("", "events", 0),
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
    assert_eq!(
        names("", "events", 1),
        ["Subobject", "Source", "First Seen", "Count", "Name"]
    );
    assert_eq!(names("", "namespaces", 0), ["Name", "Status", "Age"]);
    assert_eq!(names("", "configmaps", 0), ["Name", "Data", "Age"]);
    assert_eq!(names("", "secrets", 0), ["Name", "Type", "Data", "Age"]);
    assert_eq!(names("", "serviceaccounts", 0), ["Name", "Secrets", "Age"]);
    assert_eq!(
        names("apps", "deployments", 0),
        ["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(
        names("apps", "deployments", 1),
        ["Containers", "Images", "Selector"]
    );
    assert_eq!(
        names("apps", "replicasets", 0),
        ["Name", "Desired", "Current", "Ready", "Age"]
    );
    assert_eq!(
        names("apps", "daemonsets", 0),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age"
        ]
    );
    assert_eq!(names("apps", "statefulsets", 0), ["Name", "Ready", "Age"]);
    assert_eq!(names("apps", "statefulsets", 1), ["Containers", "Images"]);
    assert_eq!(
        names("batch", "jobs", 0),
        ["Name", "Status", "Completions", "Duration", "Age"]
    );
    assert_eq!(
        names("batch", "cronjobs", 0),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age"
        ]
    );
    assert_eq!(
        names("eks.localfargate.io", "fargateprofiles", 0),
        ["Name", "Status", "Selectors", "Pods", "Age"]
    );
    assert_eq!(
        names("eks.localfargate.io", "fargateprofiles", 1),
        ["Pod Execution Role ARN", "Subnets"]
    );
    assert_eq!(names("example.com", "widgets", 0), ["Name", "Age"]);
    assert!(names("example.com", "widgets", 1).is_empty());
    // Every column has all five fields, and exactly one is the name.
    for (g, r) in [
        ("", "events"),
        ("apps", "daemonsets"),
        ("batch", "cronjobs"),
    ] {
        let cols = columns(g, r);
        assert!(cols.iter().all(|c| c.as_object().unwrap().len() == 5));
        assert_eq!(cols.iter().filter(|c| c["format"] == "name").count(), 1);
    }
}

fn pod(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "p1", "namespace": "default", "creationTimestamp": CREATED},
           "spec": spec, "status": status})
}

fn one_container() -> Value {
    json!({"containers": [{"name": "c", "image": "nginx"}]})
}

#[test]
fn running_pod_with_ip_node_and_restarts() {
    let p = pod(
        json!({"nodeName": "fargate-ip-10-0-1-7.ec2.internal",
               "containers": [{"name": "web", "image": "nginx"}, {"name": "log", "image": "busybox"}]}),
        json!({"phase": "Running", "podIP": "10.0.1.7", "podIPs": [{"ip": "10.0.1.7"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [
                   {"name": "web", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-11-23T18:15:30Z"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                 "finishedAt": "2026-11-23T18:15:00Z"}}},
                   {"name": "log", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-23T18:14:00Z"}}}]}),
    );
    assert_eq!(
        cells_of("", "pods", p),
        json!([
            "p1",
            "2/2",
            "Running",
            "2 (5m ago)",
            "5m",
            "10.0.1.7",
            "fargate-ip-10-0-1-7.ec2.internal",
            "<none>",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn pending_pod_without_statuses() {
    // The captured `kubectl get pods -o wide` row of the reference run.
    let p = pod(
        one_container(),
        json!({"phase": "Pending", "qosClass": "BestEffort"}),
    );
    assert_eq!(
        cells_of("", "pods", p),
        json!([
            "p1", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn waiting_pods_show_the_waiting_reason() {
    let waiting = |reason: &str| {
        pod(
            json!({"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}),
            json!({"phase": "Pending",
                   "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                                          "state": {"waiting": {"reason": reason}}}]}),
        )
    };
    for reason in ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"] {
        let c = cells_of("", "pods", waiting(reason));
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], reason);
        assert_eq!(c[3], "0");
        assert_eq!(c[6], "n1");
    }
    let crash = pod(
        one_container(),
        json!({"phase": "Running",
               "containerStatuses": [{"name": "c", "ready": false, "restartCount": 4,
                                      "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                      "lastState": {"terminated": {"exitCode": 1,
                                          "finishedAt": "2026-11-23T18:19:20Z"}}}]}),
    );
    let c = cells_of("", "pods", crash);
    assert_eq!(c[2], "CrashLoopBackOff");
    assert_eq!(c[3], "4 (40s ago)");
}

#[test]
fn completed_and_failed_pods() {
    let done = |state: Value, phase: &str| {
        pod(
            one_container(),
            json!({"phase": phase,
                   "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                                          "state": {"terminated": state}}]}),
        )
    };
    let completed = done(json!({"exitCode": 0, "reason": "Completed"}), "Succeeded");
    let c = cells_of("", "pods", completed);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "Completed");
    assert_eq!(c[3], "0");
    assert_eq!(
        cells_of(
            "",
            "pods",
            done(json!({"exitCode": 1, "reason": "Error"}), "Failed")
        )[2],
        "Error"
    );
    assert_eq!(
        cells_of("", "pods", done(json!({"exitCode": 3}), "Failed"))[2],
        "ExitCode:3"
    );
    assert_eq!(
        cells_of(
            "",
            "pods",
            done(json!({"exitCode": 137, "signal": 9}), "Failed")
        )[2],
        "Signal:9"
    );
}

#[test]
fn evicted_and_terminating_pods() {
    let evicted = pod(
        one_container(),
        json!({"phase": "Failed", "reason": "Evicted"}),
    );
    assert_eq!(cells_of("", "pods", evicted)[2], "Evicted");

    let mut terminating = pod(
        one_container(),
        json!({"phase": "Running",
               "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                                      "state": {"running": {}}}]}),
    );
    terminating["metadata"]["deletionTimestamp"] = json!("2026-11-23T18:19:00Z");
    let c = cells_of("", "pods", terminating.clone());
    assert_eq!(c[1], "1/1");
    assert_eq!(c[2], "Terminating");

    // A finished pod keeps its final status while it is deleted; a lost node reads Unknown.
    let mut finished = pod(one_container(), json!({"phase": "Succeeded"}));
    finished["metadata"]["deletionTimestamp"] = json!("2026-11-23T18:19:00Z");
    assert_eq!(cells_of("", "pods", finished)[2], "Succeeded");
    terminating["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells_of("", "pods", terminating)[2], "Unknown");
}

#[test]
fn init_containers() {
    let spec = json!({"initContainers": [{"name": "init", "image": "busybox"}],
                      "containers": [{"name": "c", "image": "nginx"}]});
    let initializing = pod(
        spec.clone(),
        json!({"phase": "Pending",
               "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 0,
                                          "state": {"running": {}}}],
               "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                                      "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    let c = cells_of("", "pods", initializing);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "Init:0/1");

    let crashing = pod(
        spec.clone(),
        json!({"phase": "Pending",
               "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 3,
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
    );
    let c = cells_of("", "pods", crashing);
    assert_eq!(c[2], "Init:CrashLoopBackOff");
    assert_eq!(c[3], "3");

    let failed = pod(
        spec.clone(),
        json!({"phase": "Failed",
               "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 2}}}]}),
    );
    assert_eq!(cells_of("", "pods", failed)[2], "Init:ExitCode:2");

    // Done initializing: the app containers decide.
    let done = pod(
        spec,
        json!({"phase": "Running",
               "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
               "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                                      "state": {"running": {}}}]}),
    );
    let c = cells_of("", "pods", done);
    assert_eq!(c[1], "1/1");
    assert_eq!(c[2], "Running");
}

#[test]
fn sidecars_count_toward_ready_and_gates_are_counted() {
    let p = pod(
        json!({"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
               "containers": [{"name": "c", "image": "nginx"}],
               "readinessGates": [{"conditionType": "example.com/lb"},
                                  {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running",
               "conditions": [{"type": "Initialized", "status": "True"},
                              {"type": "example.com/lb", "status": "True"},
                              {"type": "example.com/dns", "status": "False"}],
               "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                                          "restartCount": 1, "state": {"running": {}}}],
               "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                                      "state": {"running": {}}}]}),
    );
    let c = cells_of("", "pods", p);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[2], "Running");
    // No last termination time: the count alone.
    assert_eq!(c[3], "1");
    assert_eq!(c[8], "1/2");
}

#[test]
fn deployment_row() {
    let d = json!({
        "metadata": {"name": "web", "namespace": "demo", "creationTimestamp": "2026-11-21T18:20:00Z"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                                      {"name": "log", "image": "busybox"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    });
    assert_eq!(
        cells_of("apps", "deployments", d),
        json!([
            "web",
            "2/2",
            2,
            2,
            "2d",
            "web,log",
            "nginx:1.27,busybox",
            "app=web"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    // Freshly created: nothing ready yet, replicas defaulting to 1.
    let fresh = json!({"metadata": {"name": "d1", "creationTimestamp": CREATED},
                       "spec": {"template": {"spec": {"containers": []}}}});
    let c = cells_of("apps", "deployments", fresh);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], 0);
    assert_eq!(c[7], "");
}

#[test]
fn replicaset_daemonset_statefulset_rows() {
    let rs = json!({"metadata": {"name": "web-5d4f", "creationTimestamp": CREATED},
                    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                             "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                    "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        cells_of("apps", "replicasets", rs),
        json!([
            "web-5d4f",
            3,
            3,
            1,
            "5m",
            "web",
            "nginx",
            "app=web,pod-template-hash=5d4f"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let ds = json!({"metadata": {"name": "agent", "creationTimestamp": CREATED},
                    "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["agent"]}]},
                             "template": {"spec": {"nodeSelector": {"zone": "a", "kubernetes.io/os": "linux"},
                                                   "containers": [{"name": "a", "image": "agent:1"}]}}},
                    "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                               "updatedNumberScheduled": 2, "numberAvailable": 1}});
    assert_eq!(
        cells_of("apps", "daemonsets", ds),
        json!([
            "agent",
            2,
            2,
            1,
            2,
            1,
            "kubernetes.io/os=linux,zone=a",
            "5m",
            "a",
            "agent:1",
            "app in (agent)"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let sts = json!({"metadata": {"name": "db", "creationTimestamp": CREATED},
                     "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}},
                     "status": {"readyReplicas": 2}});
    assert_eq!(
        cells_of("apps", "statefulsets", sts),
        json!(["db", "2/3", "5m", "pg", "postgres:16"])
            .as_array()
            .unwrap()
            .clone()
    );
    let no_selector = json!({"metadata": {"name": "x"}, "spec": {}});
    let c = cells_of("apps", "replicasets", no_selector);
    assert_eq!(c[4], "<unknown>");
    assert_eq!(c[7], "<none>");
}

#[test]
fn job_rows() {
    let complete = json!({
        "metadata": {"name": "pi", "creationTimestamp": CREATED},
        "spec": {"completions": 1, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "a1b2"}},
                 "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}},
        "status": {"succeeded": 1, "startTime": "2026-11-23T18:15:00Z",
                   "completionTime": "2026-11-23T18:15:42Z",
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        cells_of("batch", "jobs", complete),
        json!([
            "pi",
            "Complete",
            "1/1",
            "42s",
            "5m",
            "pi",
            "perl:5.34",
            "batch.kubernetes.io/controller-uid=a1b2"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let running = json!({
        "metadata": {"name": "work", "creationTimestamp": CREATED},
        "spec": {"parallelism": 3, "template": {"spec": {"containers": []}}},
        "status": {"succeeded": 1, "startTime": "2026-11-23T18:16:00Z"}
    });
    let c = cells_of("batch", "jobs", running);
    assert_eq!(c[1], "Running");
    assert_eq!(c[2], "1/1 of 3");
    assert_eq!(c[3], "4m");
    let failed = json!({"metadata": {"name": "f"}, "spec": {"completions": 2},
                        "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
    let c = cells_of("batch", "jobs", failed);
    assert_eq!(c[1], "Failed");
    assert_eq!(c[2], "0/2");
    assert_eq!(c[3], "");
    let suspended = json!({"metadata": {"name": "s"}, "spec": {},
                           "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(cells_of("batch", "jobs", suspended)[1], "Suspended");
    let mut deleting = json!({"metadata": {"name": "d", "deletionTimestamp": NOW}, "spec": {}});
    assert_eq!(
        cells_of("batch", "jobs", deleting.clone())[1],
        "Terminating"
    );
    deleting["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    assert_eq!(cells_of("batch", "jobs", deleting)[1], "Complete");
}

#[test]
fn cronjob_row() {
    let cj = json!({
        "metadata": {"name": "nightly", "creationTimestamp": "2026-11-20T18:20:00Z"},
        "spec": {"schedule": "0 3 * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "backup:2"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2026-11-23T18:00:00Z"}
    });
    assert_eq!(
        cells_of("batch", "cronjobs", cj),
        json!([
            "nightly",
            "0 3 * * *",
            "<none>",
            "False",
            1,
            "20m",
            "3d",
            "b",
            "backup:2",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let suspended = json!({"metadata": {"name": "s"},
                           "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": true}});
    let c = cells_of("batch", "cronjobs", suspended);
    assert_eq!(c[2], "Etc/UTC");
    assert_eq!(c[3], "True");
    assert_eq!(c[4], 0);
    assert_eq!(c[5], "<none>");
}

#[test]
fn node_rows() {
    let node = json!({
        "metadata": {"name": "fargate-ip-10-0-1-7.ec2.internal", "creationTimestamp": CREATED,
                     "labels": {"eks.amazonaws.com/compute-type": "fargate"}},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.1.7"},
                                 {"type": "Hostname", "address": "ip-10-0-1-7.ec2.internal"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.3-eks-473151a",
                                "osImage": "Amazon Linux 2023", "kernelVersion": "6.1.0",
                                "containerRuntimeVersion": "containerd://1.7.27"}}
    });
    assert_eq!(
        cells_of("", "nodes", node),
        json!([
            "fargate-ip-10-0-1-7.ec2.internal",
            "Ready",
            "<none>",
            "5m",
            "v1.32.3-eks-473151a",
            "10.0.1.7",
            "<none>",
            "Amazon Linux 2023",
            "6.1.0",
            "containerd://1.7.27"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let cordoned = json!({
        "metadata": {"name": "n2", "labels": {"node-role.kubernetes.io/worker": "",
                                              "node-role.kubernetes.io/control-plane": "",
                                              "kubernetes.io/role": "edge"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
    });
    let c = cells_of("", "nodes", cordoned);
    assert_eq!(c[1], "NotReady,SchedulingDisabled");
    assert_eq!(c[2], "control-plane,edge,worker");
    assert_eq!(c[4], "");
    assert_eq!(c[7], "<unknown>");
    let bare = json!({"metadata": {"name": "n3"}, "spec": {"unschedulable": true}});
    assert_eq!(cells_of("", "nodes", bare)[1], "Unknown,SchedulingDisabled");
}

#[test]
fn event_row() {
    let event = json!({
        "metadata": {"name": "p1.1879a2b3c4d5e6f7", "namespace": "default", "creationTimestamp": CREATED},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default",
                           "fieldPath": "spec.containers{c}"},
        "reason": "Pulled", "type": "Normal",
        "message": "Successfully pulled image \"nginx\" in 1.2s\n",
        "source": {"component": "kubelet", "host": "fargate-ip-10-0-1-7.ec2.internal"},
        "firstTimestamp": "2026-11-23T18:10:00Z", "lastTimestamp": "2026-11-23T18:19:00Z",
        "count": 3
    });
    assert_eq!(
        cells_of("", "events", event),
        json!([
            "60s",
            "Normal",
            "Pulled",
            "pod/p1",
            "spec.containers{c}",
            "kubelet, fargate-ip-10-0-1-7.ec2.internal",
            "Successfully pulled image \"nginx\" in 1.2s",
            "10m",
            3,
            "p1.1879a2b3c4d5e6f7"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    // An events.k8s.io-style event: eventTime, no count, a reporting controller.
    let new_style = json!({
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Node"},
        "type": "Warning", "reason": "NoFargateProfileMatched",
        "eventTime": "2026-11-23T18:19:30.123456Z",
        "reportingComponent": "fargate-scheduler", "reportingInstance": "localfargate"
    });
    let c = cells_of("", "events", new_style);
    // 29.877s: ages truncate.
    assert_eq!(c[0], "29s");
    assert_eq!(c[3], "node");
    assert_eq!(c[5], "fargate-scheduler, localfargate");
    assert_eq!(c[7], "29s");
    assert_eq!(c[8], 1);
    let series = json!({
        "metadata": {"name": "e3"}, "involvedObject": {"kind": "Pod", "name": "p"},
        "firstTimestamp": "2026-11-23T17:20:00Z", "count": 2,
        "series": {"count": 7, "lastObservedTime": "2026-11-23T18:18:00.000000Z"}
    });
    let c = cells_of("", "events", series);
    assert_eq!(c[0], "2m");
    assert_eq!(c[7], "60m");
    assert_eq!(c[8], 7);
}

#[test]
fn small_core_kinds() {
    let ns = json!({"metadata": {"name": "demo", "creationTimestamp": CREATED},
                    "status": {"phase": "Active"}});
    assert_eq!(
        cells_of("", "namespaces", ns),
        vec![json!("demo"), json!("Active"), json!("5m")]
    );
    let cm = json!({"metadata": {"name": "cm1", "creationTimestamp": CREATED},
                    "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells_of("", "configmaps", cm),
        vec![json!("cm1"), json!(3), json!("5m")]
    );
    let secret = json!({"metadata": {"name": "s1", "creationTimestamp": CREATED},
                        "type": "Opaque", "data": {"pw": "aHVudGVyMg=="}});
    assert_eq!(
        cells_of("", "secrets", secret),
        vec![json!("s1"), json!("Opaque"), json!(1), json!("5m")]
    );
    let sa = json!({"metadata": {"name": "default"}});
    assert_eq!(
        cells_of("", "serviceaccounts", sa),
        vec![json!("default"), json!(0), json!("<unknown>")]
    );
}

#[test]
fn fargate_profile_row() {
    let fp = json!({
        "apiVersion": "eks.localfargate.io/v1", "kind": "FargateProfile",
        "metadata": {"name": "web", "creationTimestamp": "2026-11-23T15:20:00Z"},
        "spec": {"clusterName": "demo",
                 "podExecutionRoleArn": "arn:aws:iam::111122223333:role/fp",
                 "subnets": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                 "selectors": [{"namespace": "default", "labels": {"tier": "front", "app": "web"}},
                               {"namespace": "prod"}]},
        "status": {"status": "ACTIVE", "pods": 4}
    });
    assert_eq!(
        cells_of("eks.localfargate.io", "fargateprofiles", fp),
        json!([
            "web",
            "ACTIVE",
            "ns=default,app=web,tier=front; ns=prod",
            4,
            "3h",
            "arn:aws:iam::111122223333:role/fp",
            "subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    // The EKS wire shape reads the same; nothing known reads <none>.
    let wire = json!({"metadata": {"name": "w"}, "status": "CREATING",
                      "selectors": [{"namespace": "kube-system"}]});
    assert_eq!(
        cells_of("eks.localfargate.io", "fargateprofiles", wire),
        json!([
            "w",
            "CREATING",
            "ns=kube-system",
            0,
            "<unknown>",
            "<none>",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn unknown_resources_show_name_and_age() {
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "w1", "creationTimestamp": CREATED}, "spec": {"size": 3}});
    assert_eq!(
        cells_of("example.com", "widgets", w),
        vec![json!("w1"), json!("5m")]
    );
    assert_eq!(columns("example.com", "widgets")[0]["format"], "name");
}
