"""A chart's validating admission webhook, installed with Helm 4 (helm-python-sdk): the chart
registers a Service, its EndpointSlice and a ValidatingWebhookConfiguration with its CA bundle,
as charts such as cert-manager's do; the webhook server (crates/cli/tests/fixtures/
webhook_server.py, over TLS with a certificate this test makes with openssl) runs on the host at
the address the EndpointSlice names. The API server calls it through the Service and a request
it rejects is refused with upstream's message; uninstalling the chart lets the request through."""

import base64
import json
import subprocess
import sys

import helm_python as helm
import pytest
from kubernetes import client
from kubernetes.client import ApiException

from conftest import ROOT
from test_helm import CHARTS, WAIT_SECONDS, helm_config

SERVER = ROOT / "crates" / "cli" / "tests" / "fixtures" / "webhook_server.py"


def host_address():
    """A non-loopback IPv4 address of this host (a pod address is reached so from the host)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3:
            return fields[3].split("/")[0]
    return "127.0.0.1"


def certificates(directory, dns_name, address):
    """A CA and a serving certificate for `dns_name` and `address`, signed by it; the CA's PEM."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=guard test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={dns_name}")
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{dns_name},IP:{address}\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tls.crt", "-days", "1", "-extfile", "san.ext")
    return (directory / "ca.crt").read_bytes()


@pytest.fixture
def webhook_server(tmp_path, namespace):
    address = host_address()
    ca = certificates(tmp_path, f"guard-webhook.{namespace}.svc", address)
    proc = subprocess.Popen([sys.executable, str(SERVER), str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"),
                             str(tmp_path / "requests.jsonl"), "0.0.0.0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().strip())
        yield {"address": address, "port": port, "caBundle": base64.b64encode(ca).decode()}
    finally:
        proc.kill()
        proc.wait()


def config_map(name, labels):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data={"a": "b"})


def test_a_charts_validating_webhook_rejects_a_request(kubeconfig, api_client, namespace, webhook_server):
    core = client.CoreV1Api(api_client)
    with helm_config(kubeconfig, namespace) as cfg:
        cfg.install(str(CHARTS / "guard"), "guard", {"webhook": webhook_server}, timeout=WAIT_SECONDS)
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_config_map(namespace, config_map("bad", {"forbidden": "x"}))
        assert refused.value.status == 403, f"expected the webhook's code 403, got {refused.value.status}"
        expected = 'admission webhook "guard.example.com" denied the request: the label forbidden is not allowed here'
        status = json.loads(refused.value.body)
        assert (status["message"], status["reason"]) == (expected, "Forbidden"), f"expected {expected!r}, got {status}"
        with pytest.raises(ApiException) as missing:
            core.read_namespaced_config_map("bad", namespace)
        assert missing.value.status == 404, "expected nothing written for the refused request"
        core.create_namespaced_config_map(namespace, config_map("good", {"ok": "x"}))
        cfg.uninstall("guard", timeout=WAIT_SECONDS)
    # The chart gone, its webhook is no longer called.
    core.create_namespaced_config_map(namespace, config_map("bad", {"forbidden": "x"}))
