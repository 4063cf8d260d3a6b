"""End-to-end harness: runs the real `localfargate up` binary and drives it with the aws CLI
(v1, from PyPI) and boto3, as users do, through an endpoint override."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

ROOT = Path(__file__).resolve().parents[4]
BINARY = Path(os.environ.get("LOCALFARGATE_BIN", ROOT / "target" / "debug" / "localfargate"))
AWS = Path(os.environ.get("AWS_CLI", ROOT / ".venv" / "bin" / "aws"))
ROLE = "arn:aws:iam::000000000000:role/AmazonEKSFargatePodExecutionRole"
CLUSTER_ROLE = "arn:aws:iam::000000000000:role/eks-cluster"
PUBLIC = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
PRIVATE = ["subnet-0a1b2c3d4e5f60004", "subnet-0a1b2c3d4e5f60005", "subnet-0a1b2c3d4e5f60006"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `localfargate up` process; restartable on the same data directory."""

    def __init__(self, *extra, data_dir=None):
        self.port = free_port()
        self.kube_port = free_port()
        self.extra = list(extra)
        self.data_dir = data_dir
        self.proc = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        runtime = [] if "--runtime" in self.extra else ["--runtime", "simulated"]
        args = [str(BINARY), "up", "--port", str(self.port), "--kube-port", str(self.kube_port), *runtime, *self.extra]
        args += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--ephemeral"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_localfargate/health", timeout=1) as r:
                    if json.load(r)["status"] == "ok":
                        return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"localfargate exited: {self.proc.stderr.read()}")
                time.sleep(0.05)
        raise RuntimeError("localfargate did not become healthy")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def reset(self):
        req = urllib.request.Request(f"{self.url}/_localfargate/reset", method="POST", data=b"")
        urllib.request.urlopen(req).read()

    def client(self, **kw):
        return boto3.client(
            "eks",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=kw.get("key", "test"),
            aws_secret_access_key=kw.get("secret", "test"),
        )

    def aws(self, *args, check=True):
        """Run the aws CLI against this server; JSON output parsed when there is any."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                   AWS_PAGER="", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        done = subprocess.run([str(AWS), "--endpoint-url", self.url, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        if done.stdout.strip().startswith(("{", "[")):
            return json.loads(done.stdout)
        return done


@pytest.fixture(scope="session")
def server():
    s = Server("--lifecycle-seconds", "0.3").start()
    yield s
    s.stop()


@pytest.fixture
def eks(server):
    server.reset()
    return server.client()


def wait_for(predicate, timeout=15, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def active_cluster(eks, name="c1", subnets=None):
    eks.create_cluster(name=name, roleArn=CLUSTER_ROLE,
                       resourcesVpcConfig={"subnetIds": subnets or PUBLIC[:2] + PRIVATE[:2]})
    wait_for(lambda: eks.describe_cluster(name=name)["cluster"]["status"] == "ACTIVE")
    return name


def active_profile(eks, cluster, name, selectors=None, **kw):
    eks.create_fargate_profile(clusterName=cluster, fargateProfileName=name, podExecutionRoleArn=ROLE,
                               selectors=selectors or [{"namespace": name}], **kw)
    wait_for(lambda: eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)
             ["fargateProfile"]["status"] == "ACTIVE")


def client_error_response(call, *args, **kw):
    """The error response of a boto3 call that must raise ClientError."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kw)
    return info.value.response


def client_error(call, *args, **kw):
    """(HTTP status, error code, message) of a boto3 call that must raise ClientError."""
    e = client_error_response(call, *args, **kw)
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]


TF_MIRROR = Path("/opt/tf-plugins")

# The AWS provider pointed at localfargate (`-var=endpoint=URL`) for EKS, IAM and STS.
TF_LOCAL_AWS_PROVIDER = """
terraform {
  required_providers { aws = { source = "hashicorp/aws" } }
}
variable "endpoint" {}
provider "aws" {
  region                  = "us-east-1"
  access_key              = "test"
  secret_key              = "test"
  skip_metadata_api_check = true
  endpoints {
    eks = var.endpoint
    iam = var.endpoint
    sts = var.endpoint
  }
}
"""


def terraform_missing():
    """Why the Terraform tests cannot run here (None: they can)."""
    if not shutil.which("terraform"):
        return "terraform is not installed"
    if not (TF_MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        return f"the AWS provider is not in the filesystem mirror {TF_MIRROR}"
    return None


def terraform(workdir, timeout=900):
    """Terraform in `workdir` with providers from the filesystem mirror only (no network):
    `tf(*args, ok=(0,))` runs `terraform ARGS -no-color` (and `-input=false` for the commands
    that take it), asserts its exit code is one of `ok`, and returns the completed process."""
    (workdir / "tf.rc").write_text(
        'provider_installation {\n  filesystem_mirror { path = "%s" }\n'
        '  direct { exclude = ["registry.terraform.io/*/*"] }\n}\n' % TF_MIRROR)
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(workdir / "tf.rc"), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")

    def tf(*args, ok=(0,)):
        flags = ["-no-color"] + (["-input=false"] if args[0] in ("init", "plan", "apply", "destroy") else [])
        done = subprocess.run(["terraform", *args, *flags], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode in ok, f"terraform {args[0]}: {done.stdout}\n{done.stderr}"
        return done

    return tf
