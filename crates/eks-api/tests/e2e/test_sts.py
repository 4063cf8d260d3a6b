"""STS on the EKS endpoint, as Terraform's `data.aws_caller_identity` and `aws sts
get-caller-identity` use it: the caller is the signing key's principal (the account's default
identity unless `--access-key` names one), in STS's XML, with STS's errors."""

import json
import os
import subprocess

import boto3
import botocore.exceptions
import pytest

from conftest import Server

ACCOUNT = "000000000000"


def sts(server, key="test", secret="test"):
    return boto3.client("sts", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def test_get_caller_identity_with_the_cli_and_boto3(server):
    out = server.aws("sts", "get-caller-identity")
    assert out["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/localfargate"
    assert out["Account"] == ACCOUNT
    assert out["UserId"].startswith("AIDA") and len(out["UserId"]) == 21
    again = sts(server).get_caller_identity()
    assert (again["Arn"], again["UserId"], again["Account"]) == (out["Arn"], out["UserId"], out["Account"])
    assert again["ResponseMetadata"]["RequestId"]


def test_unknown_actions_get_stss_invalid_action(server):
    client = sts(server)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.get_session_token()
    e = info.value.response
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e["Error"]["Code"] == "InvalidAction"
    assert e["Error"]["Message"] == "Could not find operation GetSessionToken for version 2011-06-15"


def test_strict_keys_are_their_principals_and_bad_signatures_are_refused():
    dev = f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    s = Server("--auth", "strict", "--access-key", f"AKIDDEV:secret-dev:{dev}",
               "--access-key", "AKIDPLAIN:secret-plain").start()
    try:
        me = sts(s, "AKIDDEV", "secret-dev").get_caller_identity()
        assert me["Arn"] == dev
        assert me["UserId"].startswith("AROA") and me["UserId"].endswith(":alice")
        plain = sts(s, "AKIDPLAIN", "secret-plain").get_caller_identity()
        assert plain["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/localfargate"
        with pytest.raises(botocore.exceptions.ClientError) as info:
            sts(s, "AKIDDEV", "wrong").get_caller_identity()
        e = info.value.response
        assert e["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert e["Error"]["Code"] == "InvalidSignatureException"
    finally:
        s.stop()


TERRAFORM = "/usr/local/bin/terraform"
TF_MIRROR = "/opt/tf-plugins"


@pytest.mark.skipif(not (os.path.exists(TERRAFORM) and os.path.isdir(f"{TF_MIRROR}/registry.terraform.io/hashicorp/aws")),
                    reason="terraform or the AWS provider's filesystem mirror (/opt/tf-plugins) is not installed")
def test_terraform_reads_the_caller_identity(server, tmp_path):
    """The seed guides' Terraform starts with `data.aws_caller_identity`: the AWS provider (from
    the filesystem mirror, no network) reads it through the endpoint override."""
    (tmp_path / "cli.tfrc").write_text(
        'provider_installation {\n  filesystem_mirror { path = "%s" }\n  direct { exclude = ["*/*"] }\n}\n' % TF_MIRROR)
    (tmp_path / "main.tf").write_text("""
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
    sts = var.endpoint
  }
}
data "aws_caller_identity" "me" {}
output "account" { value = data.aws_caller_identity.me.account_id }
output "arn" { value = data.aws_caller_identity.me.arn }
""")
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(tmp_path / "cli.tfrc"), TF_IN_AUTOMATION="1",
               CHECKPOINT_DISABLE="1")
    run = lambda *args: subprocess.run([TERRAFORM, *args], cwd=tmp_path, env=env, capture_output=True,
                                       text=True, timeout=300)
    init = run("init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    apply = run("apply", "-auto-approve", "-input=false", "-no-color", f"-var=endpoint={server.url}")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    out = json.loads(run("output", "-json").stdout)
    assert out["account"]["value"] == ACCOUNT
    assert out["arn"]["value"] == f"arn:aws:iam::{ACCOUNT}:user/localfargate"
