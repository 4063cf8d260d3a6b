"""Helm 4 (Helm's Go library, through PyPI's helm-python-sdk) against a cluster's Kubernetes API:
the chart `helm create` makes through install --wait, upgrade, rollback and uninstall, and a
chart carrying a CRD and the policy/RBAC/networking/storage kinds. The release's objects are
checked with the Python `kubernetes` client after each step."""

from pathlib import Path

import helm_python as helm
import pytest
from kubernetes import client
from kubernetes.client import ApiException

from conftest import wait_for

CHARTS = Path(__file__).parent / "charts"
# Seconds Helm waits for resources to be ready: enough for the simulated runtime, short enough
# that a server gap fails fast.
WAIT_SECONDS = 60


def helm_config(kubeconfig, namespace):
    return helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace)


def exists(read, *args):
    try:
        read(*args)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def release_secrets(core, namespace, release):
    """Helm's release records (the default `secret` storage driver), by revision."""
    items = core.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={release}").items
    return sorted(int(s.metadata.labels["version"]) for s in items)


def test_helm_create_chart_install_upgrade_rollback_uninstall(kubeconfig, api_client, namespace, tmp_path):
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    chart = helm.Chart.create("demo", tmp_path)
    assert chart.name == "demo", f"expected `helm create demo` to make chart demo, got {chart.name}"
    with helm_config(kubeconfig, namespace) as cfg:
        cfg.install(chart, "demo", wait="watcher", timeout=WAIT_SECONDS)
        deployment = apps.read_namespaced_deployment("demo", namespace)
        assert deployment.spec.replicas == 1 and deployment.status.ready_replicas == 1, \
            f"expected install --wait to return with Deployment demo at 1 ready replica, got {deployment.status}"
        service = core.read_namespaced_service("demo", namespace)
        assert service.spec.type == "ClusterIP" and service.spec.ports[0].port == 80, \
            f"expected Service demo of type ClusterIP on port 80, got {service.spec}"
        assert exists(core.read_namespaced_service_account, "demo", namespace), "expected ServiceAccount demo"
        assert release_secrets(core, namespace, "demo") == [1], "expected Helm's release record for revision 1"

        cfg.upgrade(chart, "demo", {"replicaCount": 2}, wait="watcher", timeout=WAIT_SECONDS)
        deployment = apps.read_namespaced_deployment("demo", namespace)
        assert deployment.spec.replicas == 2 and deployment.status.ready_replicas == 2, \
            f"expected upgrade --wait to leave Deployment demo at 2 ready replicas, got {deployment.status}"
        assert release_secrets(core, namespace, "demo") == [1, 2], "expected release records for revisions 1 and 2"

        cfg.rollback("demo", version=1, wait="watcher", timeout=WAIT_SECONDS)
        deployment = apps.read_namespaced_deployment("demo", namespace)
        assert deployment.spec.replicas == 1, f"expected rollback to revision 1 to restore 1 replica, got {deployment.spec}"
        status = cfg.status("demo")
        assert (status.get("revision"), status.get("status")) == (3, "deployed"), \
            f"expected the rollback to make revision 3, deployed, got {status.get('revision')} {status.get('status')}"
        assert release_secrets(core, namespace, "demo") == [1, 2, 3], "expected release records for revisions 1-3"

        cfg.uninstall("demo", wait="watcher", timeout=WAIT_SECONDS)
        wait_for(lambda: not exists(apps.read_namespaced_deployment, "demo", namespace),
                 "Deployment demo to be gone after uninstall")
        assert not exists(core.read_namespaced_service, "demo", namespace), "expected Service demo gone after uninstall"
        assert not exists(core.read_namespaced_service_account, "demo", namespace), \
            "expected ServiceAccount demo gone after uninstall"
        assert release_secrets(core, namespace, "demo") == [], "expected uninstall to remove Helm's release records"


def platform_reads(api_client, namespace, release):
    """How to read each object the platform chart templates (not its CRD), by kind."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    cluster_name = f"{namespace}-{release}"
    return {
        "Deployment": (client.AppsV1Api(api_client).read_namespaced_deployment, release, namespace),
        "ServiceAccount": (core.read_namespaced_service_account, release, namespace),
        "Service": (core.read_namespaced_service, release, namespace),
        "Role": (rbac.read_namespaced_role, release, namespace),
        "RoleBinding": (rbac.read_namespaced_role_binding, release, namespace),
        "ClusterRole": (rbac.read_cluster_role, cluster_name),
        "PodDisruptionBudget": (client.PolicyV1Api(api_client).read_namespaced_pod_disruption_budget, release,
                                namespace),
        "HorizontalPodAutoscaler": (client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler,
                                    release, namespace),
        "Ingress": (net.read_namespaced_ingress, release, namespace),
        "NetworkPolicy": (net.read_namespaced_network_policy, release, namespace),
        "PersistentVolumeClaim": (core.read_namespaced_persistent_volume_claim, f"{release}-data", namespace),
        "StorageClass": (client.StorageV1Api(api_client).read_storage_class, cluster_name),
        "PriorityClass": (client.SchedulingV1Api(api_client).read_priority_class, cluster_name),
        "Lease": (client.CoordinationV1Api(api_client).read_namespaced_lease, release, namespace),
        "ResourceQuota": (core.read_namespaced_resource_quota, release, namespace),
        "LimitRange": (core.read_namespaced_limit_range, release, namespace),
    }


CRD = "widgets.e2e.localfargate.io"


def test_helm_chart_with_crd_policy_rbac_network_storage_kinds(kubeconfig, api_client, namespace):
    release = "platform"
    reads = platform_reads(api_client, namespace, release)
    extensions = client.ApiextensionsV1Api(api_client)
    with helm_config(kubeconfig, namespace) as cfg:
        cfg.install(str(CHARTS / "platform"), release, timeout=WAIT_SECONDS)
        assert exists(extensions.read_custom_resource_definition, CRD), \
            f"expected the chart's CRD {CRD} installed from crds/"
        missing = [kind for kind, (read, *args) in reads.items() if not exists(read, *args)]
        assert not missing, f"expected the release to have created every kind it carries, missing {missing}"
        deployment = reads["Deployment"][0](release, namespace)
        assert deployment.spec.template.spec.priority_class_name == f"{namespace}-{release}", \
            f"expected the Deployment to use the chart's PriorityClass, got {deployment.spec.template.spec}"

        cfg.uninstall(release, wait="watcher", timeout=WAIT_SECONDS)
        wait_for(lambda: not [kind for kind, (read, *args) in reads.items() if exists(read, *args)],
                 "every templated object of the release to be deleted on uninstall")
        # Helm never deletes CRDs from crds/: they outlive the release, as Helm documents.
        assert exists(extensions.read_custom_resource_definition, CRD), \
            "expected the CRD to remain after uninstall (Helm keeps crds/ objects)"


def test_helm_chart_with_an_instance_of_its_own_crd(kubeconfig, api_client, namespace):
    release = "widgets"
    with helm_config(kubeconfig, namespace) as cfg:
        cfg.install(str(CHARTS / "platform"), release, {"widget": {"enabled": True}}, timeout=WAIT_SECONDS)
        widget = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "e2e.localfargate.io", "v1", namespace, "widgets", release)
        assert widget["spec"] == {"size": 3}, f"expected the Widget's spec read back, got {widget}"
        assert widget["metadata"]["generation"] == 1, f"expected a custom resource to count generations, got {widget}"
        cfg.upgrade(str(CHARTS / "platform"), release, {"widget": {"enabled": False}}, timeout=WAIT_SECONDS)
        objects = client.CustomObjectsApi(api_client)
        assert not exists(objects.get_namespaced_custom_object, "e2e.localfargate.io", "v1", namespace,
                          "widgets", release), "expected the upgrade without the widget to delete it"
        cfg.rollback(release, version=1, timeout=WAIT_SECONDS)
        widget = objects.get_namespaced_custom_object("e2e.localfargate.io", "v1", namespace, "widgets", release)
        assert widget["spec"] == {"size": 3}, f"expected the rollback to bring the Widget back, got {widget}"
        cfg.uninstall(release, wait="watcher", timeout=WAIT_SECONDS)
        wait_for(lambda: not exists(objects.get_namespaced_custom_object, "e2e.localfargate.io", "v1",
                                    namespace, "widgets", release), "the Widget to be deleted on uninstall")
