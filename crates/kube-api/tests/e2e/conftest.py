"""End-to-end harness for a cluster's Kubernetes API: runs the real `localfargate up` binary
(simulated runtime, free ports, a temporary data directory), makes one ACTIVE cluster with a
Fargate profile through the EKS API (boto3), writes its kubeconfig with `localfargate kubeconfig`,
and hands it to the official Python `kubernetes` client and to Helm 4 (helm-python-sdk)."""

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[4]
BINARY = Path(os.environ.get("LOCALFARGATE_BIN", ROOT / "target" / "debug" / "localfargate"))
CLUSTER = "kube-e2e"
CLUSTER_ROLE = "arn:aws:iam::000000000000:role/eks-cluster"
POD_ROLE = "arn:aws:iam::000000000000:role/AmazonEKSFargatePodExecutionRole"
SUBNETS = ["subnet-0a1b2c3d4e5f60004", "subnet-0a1b2c3d4e5f60005"]
# Every namespace the tests make matches this, so their pods are scheduled onto Fargate.
NAMESPACE_PATTERN = "e2e-*"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what, timeout=30, interval=0.1):
    """Poll until `predicate()` is truthy; fail naming `what` was expected."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"expected {what} within {timeout}s; last observed: {last!r}")


class Server:
    """One `localfargate up --runtime RUNTIME` process (simulated unless told) on free ports and its
    own data dir."""

    def __init__(self, data_dir, runtime="simulated", flags=()):
        self.port = free_port()
        self.kube_port = free_port()
        self.data_dir = data_dir
        self.state_dir = data_dir / "state"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data_dir / "localfargate.log", "w")
        args = [str(BINARY), "up", "--port", str(self.port), "--kube-port", str(self.kube_port),
                "--runtime", runtime, "--lifecycle-seconds", "0.2", "--data-dir", str(self.state_dir), *flags]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_healthy(self):
        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"localfargate exited ({self.proc.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/_localfargate/health", timeout=1) as r:
                    return json.load(r)["status"] == "ok"
            except OSError:
                return False
        wait_for(healthy, "localfargate to answer /_localfargate/health with status ok", timeout=30)

    def client(self, service):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def eks(self):
        return self.client("eks")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def load_image(layout, data_dir, reference):
    """`localfargate image load LAYOUT` into the data directory a `Server(data_dir)` uses."""
    loaded = subprocess.run([str(BINARY), "image", "load", str(layout), "--data-dir", str(data_dir / "state")],
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and f"Loaded image: {reference}" in loaded.stdout, loaded.stdout + loaded.stderr


def network_flags(data_dir, prefix):
    """`--network` with `localfargate network`'s model, its 10.0. addresses moved to `prefix`
    (say "10.58."), so that this server's pod subnets and bridges are its own."""
    shown = subprocess.run([str(BINARY), "network", "-o", "json"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    path = data_dir / "network.json"
    path.write_text(shown.stdout.replace('"10.0.', f'"{prefix}'))
    return ["--network", str(path)]


@contextlib.contextmanager
def running_cluster(data_dir, runtime="simulated", flags=()):
    """Starts a server (`up` with `flags` besides the harness's), makes an ACTIVE cluster whose
    `e2e-*` namespaces run on Fargate, and yields (server, kubeconfig path); stops the server
    after. With the process runtime the cluster is deleted first: pods of a data directory
    outlive their server, and go with their cluster."""
    server = Server(data_dir, runtime, flags)
    made_cluster = False
    try:
        server.wait_healthy()
        eks = server.eks()
        eks.create_cluster(name=CLUSTER, roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": SUBNETS})
        made_cluster = True
        wait_for(lambda: eks.describe_cluster(name=CLUSTER)["cluster"]["status"] == "ACTIVE",
                 f"cluster {CLUSTER} to become ACTIVE")
        eks.create_fargate_profile(clusterName=CLUSTER, fargateProfileName="e2e", podExecutionRoleArn=POD_ROLE,
                                   subnets=SUBNETS, selectors=[{"namespace": NAMESPACE_PATTERN}])
        wait_for(lambda: eks.describe_fargate_profile(clusterName=CLUSTER, fargateProfileName="e2e")
                 ["fargateProfile"]["status"] == "ACTIVE", "Fargate profile e2e to become ACTIVE")
        made = subprocess.run([str(BINARY), "kubeconfig", "--cluster", CLUSTER, "--endpoint-url", server.url],
                              capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, f"expected `localfargate kubeconfig` to succeed: {made.stderr}"
        path = data_dir / "kubeconfig"
        path.write_text(made.stdout)
        api = config.new_client_from_config(config_file=str(path))
        wait_for(lambda: _namespace_exists(api, "default"), "the cluster's Kubernetes API to serve namespace default")
        yield server, path
    finally:
        try:
            if runtime == "process" and made_cluster and server.proc.poll() is None:
                _delete_cluster(server)
        finally:
            server.stop()


def _delete_cluster(server):
    """Deletes the cluster (its Fargate profile first) and waits for its sandboxes to go."""
    eks = server.eks()
    sandboxes = server.state_dir / "runtime" / "sandboxes"
    if eks.list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"]:
        eks.delete_fargate_profile(clusterName=CLUSTER, fargateProfileName="e2e")
        wait_for(lambda: not eks.list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"],
                 "the Fargate profile to be deleted", timeout=60)
    eks.delete_cluster(name=CLUSTER)
    wait_for(lambda: not sandboxes.exists() or not any(sandboxes.iterdir()),
             "the cluster's sandboxes to be removed", timeout=60)


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory):
    """The path of a kubeconfig for an ACTIVE cluster whose `e2e-*` namespaces run on Fargate."""
    with running_cluster(tmp_path_factory.mktemp("localfargate")) as (_, path):
        yield path


def _namespace_exists(api, name):
    try:
        client.CoreV1Api(api).read_namespace(name)
        return True
    except Exception:  # the listener starts a moment after ACTIVE
        return False


@pytest.fixture(scope="session")
def api_client(kubeconfig):
    """A `kubernetes.client.ApiClient` configured from the cluster's kubeconfig."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        yield api


@pytest.fixture
def namespace(api_client):
    """A fresh namespace matching the Fargate profile; deleted after the test."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as e:
        if e.status != 404:
            raise
