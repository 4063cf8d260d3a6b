"""IAM roles for service accounts with a real AWS SDK in a pod that really runs: `localfargate up
--runtime process --pod-aws-endpoint`, an image of the host's own Python with this venv's boto3
(written here as an OCI layout, `oci_images.python_sdk_layout`), and a program that is nothing but
`boto3.client("sts").get_caller_identity()`. The SDK's own credential chain finds AWS_ROLE_ARN and
AWS_WEB_IDENTITY_TOKEN_FILE (the pod identity webhook's mutation) and AWS_ENDPOINT_URL
(`--pod-aws-endpoint`), exchanges the projected token with AssumeRoleWithWebIdentity and signs
GetCallerIdentity with the session it gets.

Needs root and runc; skipped with the reason otherwise."""

import json
import re

import pytest
from kubernetes import client, config

from conftest import load_image, network_flags, running_cluster, wait_for
from oci_images import process_runtime_missing, python_sdk_image, python_sdk_layout

IMAGE = "localfargate.test/python-sdk:1"
NAMESPACE = "e2e-irsa"
ACCOUNT = "000000000000"
ROLE = "reader"
# The whole program: what any application using boto3 does, nothing about credentials.
PROGRAM = 'import boto3; print(boto3.client("sts").get_caller_identity()["Arn"])'

pytestmark = pytest.mark.skipif(process_runtime_missing() is not None, reason=process_runtime_missing() or "")


def sdk_pod(name, service_account):
    interpreter, home, packages = python_sdk_image()
    env = [client.V1EnvVar(name="PYTHONHOME", value=home), client.V1EnvVar(name="PYTHONPATH", value=packages),
           client.V1EnvVar(name="PYTHONDONTWRITEBYTECODE", value="1")]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(service_account_name=service_account, restart_policy="Never",
                              termination_grace_period_seconds=1, containers=[client.V1Container(
                                  name="app", image=IMAGE, image_pull_policy="Never",
                                  command=[interpreter, "-c", PROGRAM], env=env)]))


def finished(core, name):
    """The pod's phase once it is Succeeded or Failed, and its log."""
    phase = wait_for(lambda: (lambda p: p if p in ("Succeeded", "Failed") else None)(
        core.read_namespaced_pod(name, NAMESPACE).status.phase), f"pod {name} to finish", timeout=120, interval=0.5)
    return phase, core.read_namespaced_pod_log(name, NAMESPACE)


def test_boto3_in_a_pod_assumes_its_service_accounts_role(tmp_path):
    layout = tmp_path / "layout"
    python_sdk_layout(layout, IMAGE)
    load_image(layout, tmp_path, IMAGE)
    flags = ["--pod-aws-endpoint", *network_flags(tmp_path, "10.58.")]
    with running_cluster(tmp_path, runtime="process", flags=flags) as (server, kubeconfig):
        # IRSA as the guides set it up, with boto3 on the host against the same endpoint: the
        # cluster's issuer as an IAM OIDC provider, a role trusting it for one service account.
        issuer = server.eks().describe_cluster(name="kube-e2e")["cluster"]["identity"]["oidc"]["issuer"]
        iam = server.client("iam")
        provider = iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"])[
            "OpenIDConnectProviderArn"]
        host = issuer.removeprefix("https://")
        role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{NAMESPACE}:app",
                                               f"{host}:aud": "sts.amazonaws.com"}},
            }],
        }))["Role"]["Arn"]

        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            core = client.CoreV1Api(api)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
            # Two service accounts annotated with the role; its trust policy names only `app`.
            for sa in ("app", "intruder"):
                core.create_namespaced_service_account(NAMESPACE, client.V1ServiceAccount(
                    metadata=client.V1ObjectMeta(name=sa, annotations={"eks.amazonaws.com/role-arn": role_arn})))
            core.create_namespaced_pod(NAMESPACE, sdk_pod("sdk", "app"))
            core.create_namespaced_pod(NAMESPACE, sdk_pod("other", "intruder"))

            phase, log = finished(core, "sdk")
            assert phase == "Succeeded", f"expected the SDK's program to succeed, got {phase}: {log}"
            # botocore names web identity sessions botocore-session-<epoch seconds>.
            assert re.fullmatch(rf"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/botocore-session-\d+\n", log), \
                f"expected the assumed role's session ARN, got {log!r}"

            phase, log = finished(core, "other")
            assert phase == "Failed", f"expected the other service account's program to fail, got {phase}: {log}"
            assert ("botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the "
                    "AssumeRoleWithWebIdentity operation: Not authorized to perform sts:AssumeRoleWithWebIdentity"
                    ) in log, f"expected the SDK's AccessDenied from AssumeRoleWithWebIdentity, got {log!r}"
