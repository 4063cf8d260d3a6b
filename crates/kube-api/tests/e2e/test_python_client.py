"""The official Python `kubernetes` client against a cluster's Kubernetes API: watches, typed
creates and reads of every workload kind and of the policy/RBAC/networking/storage kinds, the
Job pod labels, bad input answered with kube-apiserver's Status, and the bootstrap objects."""

import json

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from conftest import wait_for

IMAGE = "public.ecr.aws/docker/library/busybox:1.36"
LABELS = {"app": "web"}


def meta(name, labels=None):
    return client.V1ObjectMeta(name=name, labels=labels)


def container(name="main", **kw):
    return client.V1Container(name=name, image=IMAGE, command=["sleep", "3600"], **kw)


def pod_template(labels=LABELS):
    return client.V1PodTemplateSpec(metadata=meta(None, labels), spec=client.V1PodSpec(containers=[container()]))


def api_error(call, *args, **kwargs):
    """The ApiException `call` raises, with its Status body decoded."""
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)
    e = raised.value
    try:
        body = json.loads(e.body)
    except (TypeError, ValueError):
        body = {}
    return e.status, body


def test_watch_streams_pod_added_modified_deleted(api_client, namespace):
    core = client.CoreV1Api(api_client)
    listed = core.list_namespaced_pod(namespace)
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, namespace, resource_version=listed.metadata.resource_version,
                      timeout_seconds=30)
    core.create_namespaced_pod(namespace, client.V1Pod(metadata=meta("watched", LABELS),
                                                       spec=client.V1PodSpec(containers=[container()])))
    seen = []
    for event in stream:
        obj = event["object"]
        assert isinstance(obj, client.V1Pod), f"expected watch events to carry V1Pod objects, got {type(obj)}"
        if obj.metadata.name != "watched":
            continue
        seen.append(event["type"])
        if event["type"] == "ADDED":
            core.delete_namespaced_pod("watched", namespace, grace_period_seconds=0)
        if event["type"] == "DELETED":
            w.stop()
    assert seen[0] == "ADDED", f"expected the first event for the new pod to be ADDED, got {seen}"
    assert "MODIFIED" in seen, f"expected MODIFIED (scheduling, status or deletion) for the pod, got {seen}"
    assert seen[-1] == "DELETED", f"expected the pod's last event to be DELETED, got {seen}"


def test_workload_kinds_create_and_read_back_with_status(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    batch = client.BatchV1Api(api_client)
    selector = client.V1LabelSelector(match_labels=LABELS)
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=meta("web"), spec=client.V1DeploymentSpec(replicas=2, selector=selector, template=pod_template())))
    rs_labels = {"app": "rs"}
    apps.create_namespaced_replica_set(namespace, client.V1ReplicaSet(
        metadata=meta("rs"), spec=client.V1ReplicaSetSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=rs_labels), template=pod_template(rs_labels))))
    ss_labels = {"app": "ss"}
    apps.create_namespaced_stateful_set(namespace, client.V1StatefulSet(
        metadata=meta("ss"), spec=client.V1StatefulSetSpec(
            replicas=1, service_name="ss", selector=client.V1LabelSelector(match_labels=ss_labels),
            template=pod_template(ss_labels))))
    ds_labels = {"app": "ds"}
    apps.create_namespaced_daemon_set(namespace, client.V1DaemonSet(
        metadata=meta("ds"), spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=ds_labels), template=pod_template(ds_labels))))
    batch.create_namespaced_cron_job(namespace, client.V1CronJob(
        metadata=meta("cj"), spec=client.V1CronJobSpec(schedule="*/5 * * * *", job_template=client.V1JobTemplateSpec(
            spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                restart_policy="Never", containers=[container()])))))))

    deployment = wait_for(lambda: (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 2
                          and d, "Deployment web to report 2 ready replicas")
    assert deployment.status.replicas == 2, f"expected Deployment status.replicas 2, got {deployment.status}"
    rs = wait_for(lambda: (r := apps.read_namespaced_replica_set("rs", namespace)).status.ready_replicas == 1 and r,
                  "ReplicaSet rs to report 1 ready replica")
    assert rs.status.replicas == 1 and rs.status.available_replicas == 1, \
        f"expected ReplicaSet status counters replicas=1 available=1, got {rs.status}"
    ss = wait_for(lambda: (s := apps.read_namespaced_stateful_set("ss", namespace)).status.ready_replicas == 1 and s,
                  "StatefulSet ss to report 1 ready replica")
    assert ss.status.replicas == 1, f"expected StatefulSet status.replicas 1, got {ss.status}"
    assert ss.spec.service_name == "ss", f"expected serviceName ss read back, got {ss.spec.service_name}"
    ds = apps.read_namespaced_daemon_set("ds", namespace)
    # A Fargate-only cluster has no nodes a DaemonSet schedules to: its counters are all zero, and
    # they must be present (the client's model requires them).
    for counter in ("current_number_scheduled", "desired_number_scheduled", "number_misscheduled", "number_ready"):
        assert getattr(ds.status, counter) is not None, f"expected DaemonSet status.{counter} to be set, got {ds.status}"
    cj = batch.read_namespaced_cron_job("cj", namespace)
    assert cj.spec.schedule == "*/5 * * * *", f"expected the CronJob's schedule read back, got {cj.spec.schedule}"
    names = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
    assert names == {"web"}, f"expected the namespace's Deployments to be exactly web, got {names}"


def test_job_pods_carry_the_job_labels_its_selector_matches(api_client, namespace):
    batch = client.BatchV1Api(api_client)
    core = client.CoreV1Api(api_client)
    job = batch.create_namespaced_job(namespace, client.V1Job(
        metadata=meta("once"), spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never", containers=[container()])))))
    uid = job.metadata.uid
    selector = job.spec.selector.match_labels
    assert selector == {"batch.kubernetes.io/controller-uid": uid}, \
        f"expected the defaulted selector to be batch.kubernetes.io/controller-uid={uid}, got {selector}"
    pods = wait_for(lambda: core.list_namespaced_pod(namespace).items, "the Job to create a pod")
    want = {"job-name": "once", "controller-uid": uid,
            "batch.kubernetes.io/job-name": "once", "batch.kubernetes.io/controller-uid": uid}
    for pod in pods:
        labels = pod.metadata.labels or {}
        missing = {k: v for k, v in want.items() if labels.get(k) != v}
        assert not missing, f"expected pod {pod.metadata.name} to carry {want}, it has {labels}"
    matched = core.list_namespaced_pod(namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items()))
    assert len(matched.items) == len(pods), \
        f"expected the Job's selector to match its {len(pods)} pod(s), it matched {len(matched.items)}"


def test_policy_rbac_networking_storage_kinds_create_and_read(api_client, namespace):
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    hpa = client.AutoscalingV2Api(api_client)
    sched = client.SchedulingV1Api(api_client)
    storage = client.StorageV1Api(api_client)
    coord = client.CoordinationV1Api(api_client)
    suffix = namespace  # cluster-scoped names unique per run

    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta("cm"), data={"k": "v"}))
    assert core.read_namespaced_config_map("cm", namespace).data == {"k": "v"}, "expected ConfigMap data k=v back"
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=meta("s"), data={"k": "dg=="}))
    assert core.read_namespaced_secret("s", namespace).data == {"k": "dg=="}, "expected Secret data k=dg== back"
    core.create_namespaced_service(namespace, client.V1Service(metadata=meta("svc"), spec=client.V1ServiceSpec(
        selector=LABELS, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    svc = core.read_namespaced_service("svc", namespace)
    assert svc.spec.ports[0].port == 80 and svc.spec.selector == LABELS, f"expected the Service's spec back, got {svc.spec}"
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=meta("data"), spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))))
    pvc = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pvc.spec.resources.requests == {"storage": "1Gi"}, f"expected the PVC's request back, got {pvc.spec}"
    core.create_namespaced_resource_quota(namespace, client.V1ResourceQuota(
        metadata=meta("quota"), spec=client.V1ResourceQuotaSpec(hard={"pods": "50"})))
    assert core.read_namespaced_resource_quota("quota", namespace).spec.hard == {"pods": "50"}, \
        "expected ResourceQuota hard pods=50 back"
    core.create_namespaced_limit_range(namespace, client.V1LimitRange(metadata=meta("limits"), spec=client.V1LimitRangeSpec(
        limits=[client.V1LimitRangeItem(type="Container", default={"cpu": "500m"})])))
    assert core.read_namespaced_limit_range("limits", namespace).spec.limits[0].default == {"cpu": "500m"}, \
        "expected LimitRange default cpu 500m back"

    rule = client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=meta("reader"), rules=[rule]))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=namespace)
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=meta("reader"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                           name="reader"), subjects=[subject]))
    rbac.create_cluster_role(client.V1ClusterRole(metadata=meta(f"{suffix}:reader"), rules=[rule]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=meta(f"{suffix}:reader"), role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"{suffix}:reader"), subjects=[subject]))
    assert rbac.read_namespaced_role("reader", namespace).rules[0].verbs == ["get", "list"], "expected Role rules back"
    assert rbac.read_namespaced_role_binding("reader", namespace).subjects[0].name == "default", \
        "expected RoleBinding subject back"
    assert rbac.read_cluster_role(f"{suffix}:reader").rules[0].resources == ["pods"], "expected ClusterRole rules back"
    assert rbac.read_cluster_role_binding(f"{suffix}:reader").role_ref.name == f"{suffix}:reader", \
        "expected ClusterRoleBinding roleRef back"

    policy.create_namespaced_pod_disruption_budget(namespace, client.V1PodDisruptionBudget(
        metadata=meta("pdb"), spec=client.V1PodDisruptionBudgetSpec(
            min_available=1, selector=client.V1LabelSelector(match_labels=LABELS))))
    assert policy.read_namespaced_pod_disruption_budget("pdb", namespace).spec.min_available == 1, \
        "expected PDB minAvailable 1 back"
    hpa.create_namespaced_horizontal_pod_autoscaler(namespace, client.V2HorizontalPodAutoscaler(
        metadata=meta("hpa"), spec=client.V2HorizontalPodAutoscalerSpec(
            max_replicas=5, scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name="web"))))
    read_hpa = hpa.read_namespaced_horizontal_pod_autoscaler("hpa", namespace)
    assert read_hpa.spec.max_replicas == 5 and read_hpa.spec.scale_target_ref.name == "web", \
        f"expected HPA maxReplicas 5 targeting Deployment web, got {read_hpa.spec}"
    backend = client.V1IngressBackend(service=client.V1IngressServiceBackend(
        name="svc", port=client.V1ServiceBackendPort(number=80)))
    net.create_namespaced_ingress(namespace, client.V1Ingress(metadata=meta("ing"), spec=client.V1IngressSpec(
        rules=[client.V1IngressRule(host="web.example.com", http=client.V1HTTPIngressRuleValue(paths=[
            client.V1HTTPIngressPath(path="/", path_type="Prefix", backend=backend)]))])))
    assert net.read_namespaced_ingress("ing", namespace).spec.rules[0].host == "web.example.com", \
        "expected Ingress host back"
    net.create_namespaced_network_policy(namespace, client.V1NetworkPolicy(metadata=meta("deny"), spec=client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels=LABELS))))
    assert net.read_namespaced_network_policy("deny", namespace).spec.pod_selector.match_labels == LABELS, \
        "expected NetworkPolicy podSelector back"

    sched.create_priority_class(client.V1PriorityClass(metadata=meta(f"{suffix}-high"), value=1000))
    pc = sched.read_priority_class(f"{suffix}-high")
    assert pc.value == 1000, f"expected PriorityClass value 1000, got {pc}"
    storage.create_storage_class(client.V1StorageClass(metadata=meta(f"{suffix}-sc"), provisioner="ebs.csi.aws.com"))
    sc = storage.read_storage_class(f"{suffix}-sc")
    assert sc.provisioner == "ebs.csi.aws.com", f"expected StorageClass provisioner back, got {sc}"
    coord.create_namespaced_lease(namespace, client.V1Lease(metadata=meta("leader"), spec=client.V1LeaseSpec(
        holder_identity="me", lease_duration_seconds=15)))
    assert coord.read_namespaced_lease("leader", namespace).spec.holder_identity == "me", "expected Lease holder back"

    sched.delete_priority_class(f"{suffix}-high")
    storage.delete_storage_class(f"{suffix}-sc")
    rbac.delete_cluster_role(f"{suffix}:reader")
    rbac.delete_cluster_role_binding(f"{suffix}:reader")


def test_service_is_defaulted_and_gets_a_cluster_ip(api_client, namespace):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service(namespace, client.V1Service(metadata=meta("svc"), spec=client.V1ServiceSpec(
        selector=LABELS, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    svc = core.read_namespaced_service("svc", namespace)
    assert svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP", \
        f"expected the Service defaulted to type ClusterIP, protocol TCP, got {svc.spec}"
    assert svc.spec.cluster_ip and svc.spec.cluster_ips == [svc.spec.cluster_ip], \
        f"expected a clusterIP allocated and mirrored in clusterIPs, got {svc.spec}"


def test_secret_string_data_is_merged_and_type_defaulted(api_client, namespace):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=meta("s"), string_data={"k": "v"}))
    secret = core.read_namespaced_secret("s", namespace)
    assert secret.data == {"k": "dg=="} and secret.string_data is None and secret.type == "Opaque", \
        f"expected stringData folded into base64 data, stringData dropped, type Opaque; got {secret}"


@pytest.mark.parametrize("kind", ["HorizontalPodAutoscaler", "NetworkPolicy", "PriorityClass", "StorageClass"])
def test_upstream_defaults_are_applied(api_client, namespace, kind):
    if kind == "HorizontalPodAutoscaler":
        api = client.AutoscalingV2Api(api_client)
        api.create_namespaced_horizontal_pod_autoscaler(namespace, client.V2HorizontalPodAutoscaler(
            metadata=meta("hpa"), spec=client.V2HorizontalPodAutoscalerSpec(
                max_replicas=5, scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="web"))))
        spec = api.read_namespaced_horizontal_pod_autoscaler("hpa", namespace).spec
        assert spec.min_replicas == 1, f"expected minReplicas defaulted to 1, got {spec}"
        assert spec.metrics and spec.metrics[0].resource.name == "cpu" and \
            spec.metrics[0].resource.target.average_utilization == 80, f"expected the 80% CPU metric default, got {spec}"
    elif kind == "NetworkPolicy":
        api = client.NetworkingV1Api(api_client)
        api.create_namespaced_network_policy(namespace, client.V1NetworkPolicy(
            metadata=meta("deny"), spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector())))
        spec = api.read_namespaced_network_policy("deny", namespace).spec
        assert spec.policy_types == ["Ingress"], f"expected policyTypes defaulted to [Ingress], got {spec}"
    elif kind == "PriorityClass":
        api = client.SchedulingV1Api(api_client)
        api.create_priority_class(client.V1PriorityClass(metadata=meta(f"{namespace}-pc"), value=10))
        try:
            pc = api.read_priority_class(f"{namespace}-pc")
            assert pc.preemption_policy == "PreemptLowerPriority", \
                f"expected preemptionPolicy defaulted to PreemptLowerPriority, got {pc}"
        finally:
            api.delete_priority_class(f"{namespace}-pc")
    else:
        api = client.StorageV1Api(api_client)
        api.create_storage_class(client.V1StorageClass(metadata=meta(f"{namespace}-sc"), provisioner="ebs.csi.aws.com"))
        try:
            sc = api.read_storage_class(f"{namespace}-sc")
            assert (sc.reclaim_policy, sc.volume_binding_mode) == ("Delete", "Immediate"), \
                f"expected reclaimPolicy Delete and volumeBindingMode Immediate defaulted, got {sc}"
        finally:
            api.delete_storage_class(f"{namespace}-sc")


def test_bad_input_gets_422_with_upstream_message(api_client, namespace):
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    bad_pod = client.V1Pod(metadata=meta("neg"), spec=client.V1PodSpec(containers=[container(
        resources=client.V1ResourceRequirements(requests={"cpu": "-1"}))]))
    status, body = api_error(core.create_namespaced_pod, namespace, bad_pod)
    assert status == 422, f"expected 422 for cpu -1, got {status} {body}"
    want = 'spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0'
    assert want in body.get("message", ""), f"expected the message to contain {want!r}, got {body}"
    assert body.get("reason") == "Invalid", f"expected reason Invalid, got {body}"

    big = client.V1ConfigMap(metadata=meta("big"), data={"a": "x" * (1024 * 1024 + 1)})
    status, body = api_error(core.create_namespaced_config_map, namespace, big)
    assert status == 422, f"expected 422 for a ConfigMap over 1 MiB, got {status} {body}"
    assert body.get("message", "").startswith('ConfigMap "big" is invalid') and \
        "Too long: must have at most 1048576 bytes" in body["message"], \
        f"expected upstream's 'Too long: must have at most 1048576 bytes', got {body}"

    mismatched = client.V1Deployment(metadata=meta("web"), spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels=LABELS), template=pod_template({"app": "other"})))
    status, body = api_error(apps.create_namespaced_deployment, namespace, mismatched)
    assert status == 422, f"expected 422 for a selector not matching the template, got {status} {body}"
    assert "`selector` does not match template `labels`" in body.get("message", ""), \
        f"expected upstream's '`selector` does not match template `labels`', got {body}"

    for kind, name in (("pod", "neg"), ("configmap", "big")):
        read = getattr(core, f"read_namespaced_{'config_map' if kind == 'configmap' else kind}")
        status, _ = api_error(read, name, namespace)
        assert status == 404, f"expected the refused {kind} {name} not to be stored (404), got {status}"
    status, _ = api_error(apps.read_namespaced_deployment, "web", namespace)
    assert status == 404, f"expected the refused Deployment not to be stored (404), got {status}"


def test_four_mib_body_gets_413(api_client, namespace):
    core = client.CoreV1Api(api_client)
    huge = client.V1ConfigMap(metadata=meta("huge"), data={"a": "x" * (4 * 1024 * 1024)})
    status, body = api_error(core.create_namespaced_config_map, namespace, huge)
    assert status == 413, f"expected 413 for a 4 MiB body, got {status} {body}"
    status, _ = api_error(core.read_namespaced_config_map, "huge", namespace)
    assert status == 404, f"expected the refused ConfigMap not to be stored (404), got {status}"


def test_bootstrap_priority_classes_and_cluster_roles_are_listed(api_client):
    classes = {pc.metadata.name: pc.value for pc in client.SchedulingV1Api(api_client).list_priority_class().items}
    want = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
    for name, value in want.items():
        assert classes.get(name) == value, f"expected PriorityClass {name} with value {value}, got {classes}"
    roles = {r.metadata.name for r in client.RbacAuthorizationV1Api(api_client).list_cluster_role().items}
    missing = {"cluster-admin", "admin", "edit", "view"} - roles
    assert not missing, f"expected the bootstrap ClusterRoles, missing {missing}"


def test_error_bodies_are_written_as_kube_apiserver_writes_them(api_client, namespace):
    """Go's field order and the encoder's trailing newline, byte for byte."""
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(api_client).read_namespaced_pod("nope", namespace)
    status, body = raised.value.status, raised.value.body
    if isinstance(body, bytes):
        body = body.decode()
    assert status == 404, f"expected 404 for a missing pod, got {status}"
    expected = ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                '"message":"pods \\"nope\\" not found","reason":"NotFound",'
                '"details":{"name":"nope","kind":"pods"},"code":404}\n')
    assert body == expected, f"expected kube-apiserver's exact body, got {body!r}"
