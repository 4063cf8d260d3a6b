"""`kubectl exec`'s WebSocket protocols with the official Python client against a pod that really
runs: `localfargate up --runtime process`, an image of Debian's static busybox written here as an
OCI layout and loaded with `localfargate image load`. `kubernetes.stream.stream` offers
v5.channel.k8s.io and v4.channel.k8s.io (v4 alone when asked); stdout and stderr arrive on their
channels and the exit code as the Status on the error channel (`returncode`).

Needs root, runc and busybox-static (/bin/busybox); skipped with the reason otherwise."""

import json
import os
import time

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from conftest import load_image, running_cluster, wait_for
from oci_images import BUSYBOX, busybox_layout, process_runtime_missing

IMAGE = "localfargate.test/pybusybox:1"
NAMESPACE = "e2e-exec"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"


def _skip_reason():
    if process_runtime_missing():
        return process_runtime_missing()
    if not os.path.isfile(BUSYBOX):
        return f"{BUSYBOX} is not installed (busybox-static)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(scope="module")
def process_pod(tmp_path_factory):
    """(CoreV1Api, pod name): a Ready pod running `sleep 3600` on the process runtime."""
    data_dir = tmp_path_factory.mktemp("localfargate-process")
    layout = data_dir / "layout"
    busybox_layout(layout, IMAGE)
    load_image(layout, data_dir, IMAGE)
    with running_cluster(data_dir, runtime="process") as (_, kubeconfig):
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            core = client.CoreV1Api(api)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
            core.create_namespaced_pod(NAMESPACE, client.V1Pod(
                metadata=client.V1ObjectMeta(name="sh"),
                spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
                    name="main", image=IMAGE, image_pull_policy="Never", command=["sleep", "3600"])])))

            def ready():
                pod = core.read_namespaced_pod("sh", NAMESPACE)
                return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []) \
                    or pod.status.phase
            wait_for(lambda: ready() is True, "pod sh to be Ready", timeout=90, interval=0.2)
            yield core, "sh"


def run(core, pod, command, protocol=None, stdin=None, status=False):
    """Runs `command` in the pod through `stream`; (subprotocol, stdout, stderr, returncode), or
    with `status` the error channel's Status itself in place of the return code."""
    resp = stream(core.connect_get_namespaced_pod_exec, pod, NAMESPACE, command=command,
                  stdin=stdin is not None, stdout=True, stderr=True, tty=False, _preload_content=False,
                  _headers={"sec-websocket-protocol": protocol} if protocol else None)
    try:
        if stdin is not None:
            resp.write_stdin(stdin)
        out, err = [], []
        deadline = time.time() + 30
        while resp.is_open() and time.time() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                out.append(resp.read_stdout())
            if resp.peek_stderr():
                err.append(resp.read_stderr())
        assert not resp.is_open(), f"expected {command} to finish within 30 s"
        out.append(resp.read_stdout() or "")
        err.append(resp.read_stderr() or "")
        if status:
            return resp.subprotocol, "".join(out), "".join(err), json.loads(resp.read_channel(ERROR_CHANNEL))
        return resp.subprotocol, "".join(out), "".join(err), resp.returncode
    finally:
        resp.close()


def test_v4_exec_streams_stdout_stderr_and_the_exit_code(process_pod):
    core, pod = process_pod
    protocol, out, err, code = run(core, pod, ["sh", "-c", "echo out; echo err >&2; hostname; exit 3"], V4)
    assert protocol == V4, f"expected the server to accept {V4} alone, got {protocol!r}"
    assert out == f"out\n{pod}\n", f"expected stdout 'out' and the pod's hostname, got {out!r}"
    assert err == "err\n", f"expected stderr 'err', got {err!r}"
    assert code == 3, f"expected exit code 3 from the error channel, got {code!r}"

    protocol, out, err, code = run(core, pod, ["true"], V4)
    assert (out, err, code) == ("", "", 0), f"expected `true` to succeed silently, got {(out, err, code)!r}"


def test_v4_exec_takes_stdin(process_pod):
    core, pod = process_pod
    # v4 cannot close stdin (v5's CLOSE frame does): the command reads one line.
    protocol, out, _, code = run(core, pod, ["head", "-n", "1"], V4, stdin="hello from python\n")
    assert protocol == V4
    assert (out, code) == ("hello from python\n", 0), f"expected the line back, got {(out, code)!r}"


def test_default_negotiation_picks_v5_and_reports_a_missing_binary(process_pod):
    core, pod = process_pod
    protocol, out, err, code = run(core, pod, ["printf", "%s", "five"])
    assert protocol == V5, f"expected {V5} to win when the client offers v5 and v4, got {protocol!r}"
    assert (out, code) == ("five", 0), f"got {(out, err, code)!r}"

    # As with containerd: a Failure Status naming the binary, without an ExitCode cause.
    protocol, out, err, status = run(core, pod, ["no-such-binary"], V4, status=True)
    assert status["status"] == "Failure", f"expected a Failure Status, got {status!r}"
    assert "no-such-binary" in status["message"], f"expected the message to name the binary: {status!r}"


def test_portforward_reaches_a_server_on_the_pods_loopback(process_pod):
    """`kubernetes.stream.portforward` (v4.channel.k8s.io: a data and an error channel per port,
    each opened with the port number): a server bound to 127.0.0.1 in the pod answers through
    it, and a port nothing listens on gets the kubelet's error on its error channel."""
    core, _ = process_pod
    core.create_namespaced_pod(NAMESPACE, client.V1Pod(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="web", image=IMAGE, image_pull_policy="Never",
            command=["sh", "-c", "mkdir -p /www && echo hello from the loopback > /www/index.html && "
                     "exec httpd -f -p 127.0.0.1:8080 -h /www"])])))
    wait_for(lambda: core.read_namespaced_pod("web", NAMESPACE).status.phase == "Running",
             "pod web to run", timeout=90, interval=0.2)
    # httpd has started once its port answers through the forward.
    def fetch():
        pf = portforward(core.connect_get_namespaced_pod_portforward, "web", NAMESPACE, ports="8080,7070")
        web = pf.socket(8080)
        web.setblocking(True)
        web.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while True:
            chunk = web.recv(1024)
            if not chunk:
                break
            answer += chunk
        web.close()
        return pf, answer
    pf, answer = wait_for(lambda: (lambda r: r if b"hello from the loopback" in r[1] else None)(fetch()),
                          "httpd to answer through the forward", timeout=30, interval=0.5)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    refused = wait_for(lambda: pf.error(7070), "the error of port 7070", timeout=30)
    assert refused.startswith("error forwarding port 7070 to pod "), refused
    assert "failed to connect to localhost:7070 inside namespace" in refused, refused
    assert "IPv4: dial tcp4 127.0.0.1:7070: connect: connection refused" in refused, refused
    assert pf.error(8080) is None
