"""IAM on the EKS endpoint, as the seed guides use it: `aws iam` commands for the pod execution
role, boto3 with paginators and waiters, AWS's error codes and messages for bad input, nothing
half-made on error; and Terraform's aws_iam_* resources applied, planned again (no changes) and
destroyed."""

import json

import boto3
import botocore.exceptions
import pytest

from conftest import TF_LOCAL_AWS_PROVIDER, client_error, terraform, terraform_missing

ACCOUNT = "000000000000"
FARGATE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "eks-fargate-pods.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:eks:us-east-1:{ACCOUNT}:fargateprofile/*"}},
    }],
}
S3_READ = {"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::bucket/*"}]}
FARGATE_POLICY = "arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"


@pytest.fixture
def iam(server):
    server.reset()
    return boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


error = client_error


def test_the_guides_pod_execution_role_with_the_cli(server, tmp_path):
    server.reset()
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps(FARGATE_TRUST))
    made = server.aws("iam", "create-role", "--role-name", "AmazonEKSFargatePodExecutionRole",
                      "--assume-role-policy-document", f"file://{trust}")
    role = made["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/AmazonEKSFargatePodExecutionRole"
    assert role["RoleId"].startswith("AROA") and role["Path"] == "/"
    assert role["AssumeRolePolicyDocument"] == FARGATE_TRUST
    server.aws("iam", "attach-role-policy", "--role-name", "AmazonEKSFargatePodExecutionRole",
               "--policy-arn", FARGATE_POLICY)
    attached = server.aws("iam", "list-attached-role-policies", "--role-name", "AmazonEKSFargatePodExecutionRole")
    assert attached["AttachedPolicies"] == [
        {"PolicyName": "AmazonEKSFargatePodExecutionRolePolicy", "PolicyArn": FARGATE_POLICY}]
    got = server.aws("iam", "get-role", "--role-name", "AmazonEKSFargatePodExecutionRole")
    assert got["Role"]["AssumeRolePolicyDocument"] == FARGATE_TRUST
    arn = server.aws("iam", "get-role", "--role-name", "AmazonEKSFargatePodExecutionRole", "--query", "Role.Arn",
                     "--output", "text").stdout.strip()
    assert arn == role["Arn"]
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(S3_READ))
    policy = server.aws("iam", "create-policy", "--policy-name", "reader", "--policy-document",
                        f"file://{policy_file}")["Policy"]
    assert policy["Arn"] == f"arn:aws:iam::{ACCOUNT}:policy/reader" and policy["DefaultVersionId"] == "v1"
    aws_policy = server.aws("iam", "get-policy", "--policy-arn", FARGATE_POLICY)["Policy"]
    assert aws_policy["AttachmentCount"] == 1
    version = server.aws("iam", "get-policy-version", "--policy-arn", FARGATE_POLICY, "--version-id",
                         aws_policy["DefaultVersionId"])["PolicyVersion"]
    assert version["Document"]["Statement"][0]["Action"] == [
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage"]
    # Deleting an attached role is a conflict; detached, it goes.
    done = server.aws("iam", "delete-role", "--role-name", "AmazonEKSFargatePodExecutionRole", check=False)
    assert done.returncode != 0 and "DeleteConflict" in done.stderr
    server.aws("iam", "detach-role-policy", "--role-name", "AmazonEKSFargatePodExecutionRole",
               "--policy-arn", FARGATE_POLICY)
    server.aws("iam", "delete-role", "--role-name", "AmazonEKSFargatePodExecutionRole")
    gone = server.aws("iam", "get-role", "--role-name", "AmazonEKSFargatePodExecutionRole", check=False)
    assert "NoSuchEntity" in gone.stderr
    assert "The role with name AmazonEKSFargatePodExecutionRole cannot be found." in gone.stderr


def test_roles_with_boto3_waiters_paginators_tags_and_inline_policies(iam):
    for i in range(12):
        iam.create_role(RoleName=f"r{i:02}", AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST),
                        Path="/team/" if i % 2 else "/", Description=f"role {i}",
                        Tags=[{"Key": "n", "Value": str(i)}])
    iam.get_waiter("role_exists").wait(RoleName="r05")
    pages = list(iam.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": 5}))
    assert [len(p["Roles"]) for p in pages] == [5, 5, 2]
    assert [r["RoleName"] for p in pages for r in p["Roles"]] == [f"r{i:02}" for i in range(12)]
    team = iam.list_roles(PathPrefix="/team/")["Roles"]
    assert len(team) == 6 and all(r["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/team/{r['RoleName']}" for r in team)
    role = iam.get_role(RoleName="r01")["Role"]
    assert role["Tags"] == [{"Key": "n", "Value": "1"}] and role["Description"] == "role 1"
    assert role["MaxSessionDuration"] == 3600
    iam.tag_role(RoleName="r01", Tags=[{"Key": "team", "Value": "a"}, {"Key": "n", "Value": "x"}])
    iam.untag_role(RoleName="r01", TagKeys=["team"])
    assert iam.list_role_tags(RoleName="r01")["Tags"] == [{"Key": "n", "Value": "x"}]
    iam.update_role(RoleName="r01", Description="changed", MaxSessionDuration=7200)
    assert iam.get_role(RoleName="r01")["Role"]["MaxSessionDuration"] == 7200
    trust = dict(FARGATE_TRUST, Statement=[dict(FARGATE_TRUST["Statement"][0], Condition={})])
    trust["Statement"][0].pop("Condition")
    iam.update_assume_role_policy(RoleName="r01", PolicyDocument=json.dumps(trust))
    assert iam.get_role(RoleName="r01")["Role"]["AssumeRolePolicyDocument"] == trust
    iam.put_role_policy(RoleName="r01", PolicyName="inline", PolicyDocument=json.dumps(S3_READ))
    assert iam.list_role_policies(RoleName="r01")["PolicyNames"] == ["inline"]
    got = iam.get_role_policy(RoleName="r01", PolicyName="inline")
    assert got["PolicyDocument"] == S3_READ and got["RoleName"] == "r01"
    assert error(iam.delete_role, RoleName="r01")[1] == "DeleteConflict"
    iam.delete_role_policy(RoleName="r01", PolicyName="inline")
    assert iam.list_instance_profiles_for_role(RoleName="r01")["InstanceProfiles"] == []
    iam.delete_role(RoleName="r01")
    iam.get_waiter("role_exists").config.max_attempts = 1
    assert error(iam.get_role, RoleName="r01") == (404, "NoSuchEntity", "The role with name r01 cannot be found.")


def test_managed_policies_versions_and_scopes(iam):
    p = iam.create_policy(PolicyName="reader", PolicyDocument=json.dumps(S3_READ), Description="d",
                          Tags=[{"Key": "k", "Value": "v"}])["Policy"]
    iam.get_waiter("policy_exists").wait(PolicyArn=p["Arn"])
    got = iam.get_policy(PolicyArn=p["Arn"])["Policy"]
    assert (got["Description"], got["AttachmentCount"], got["Tags"]) == ("d", 0, [{"Key": "k", "Value": "v"}])
    for i in range(2, 6):
        iam.create_policy_version(PolicyArn=p["Arn"], PolicyDocument=json.dumps(S3_READ), SetAsDefault=i == 3)
    versions = iam.list_policy_versions(PolicyArn=p["Arn"])["Versions"]
    assert [v["VersionId"] for v in versions] == ["v5", "v4", "v3", "v2", "v1"]
    assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v3"]
    code, kind, message = error(iam.create_policy_version, PolicyArn=p["Arn"], PolicyDocument=json.dumps(S3_READ))
    assert (code, kind) == (409, "LimitExceeded") and "up to 5 versions" in message
    assert error(iam.delete_policy_version, PolicyArn=p["Arn"], VersionId="v3")[1] == "DeleteConflict"
    iam.delete_policy_version(PolicyArn=p["Arn"], VersionId="v5")
    assert iam.get_policy_version(PolicyArn=p["Arn"], VersionId="v3")["PolicyVersion"]["Document"] == S3_READ
    local = iam.list_policies(Scope="Local")["Policies"]
    assert [x["PolicyName"] for x in local] == ["reader"]
    aws = [x["PolicyName"] for x in iam.list_policies(Scope="AWS")["Policies"]]
    for name in ["AmazonEKSFargatePodExecutionRolePolicy", "AmazonEKSClusterPolicy", "AmazonEKSWorkerNodePolicy",
                 "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKSVPCResourceController"]:
        assert name in aws
    every = [x["PolicyName"] for page in iam.get_paginator("list_policies").paginate(
        PaginationConfig={"PageSize": 2}) for x in page["Policies"]]
    assert len(every) == 8 and "reader" in every  # seven AWS managed policies and this one
    assert error(iam.delete_policy_version, PolicyArn=FARGATE_POLICY, VersionId="v1")[1] == "UnmodifiableEntity"
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST))
    iam.attach_role_policy(RoleName="r", PolicyArn=p["Arn"])
    assert iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"][0]["AttachmentCount"] == 1
    assert error(iam.delete_policy, PolicyArn=p["Arn"]) == (
        409, "DeleteConflict", "Cannot delete a policy attached to entities.")
    iam.detach_role_policy(RoleName="r", PolicyArn=p["Arn"])
    for v in ["v2", "v4", "v1"]:
        iam.delete_policy_version(PolicyArn=p["Arn"], VersionId=v)
    iam.delete_policy(PolicyArn=p["Arn"])
    assert error(iam.get_policy, PolicyArn=p["Arn"]) == (
        404, "NoSuchEntity", f"Policy arn:aws:iam::{ACCOUNT}:policy/reader was not found.")


def test_users_and_access_keys(iam):
    user = iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "a"}])["User"]
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice" and user["UserId"].startswith("AIDA")
    iam.get_waiter("user_exists").wait(UserName="alice")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice"]
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    assert key["Status"] == "Active"
    listed = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    iam.create_access_key(UserName="alice")
    assert error(iam.create_access_key, UserName="alice") == (
        409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
    assert error(iam.delete_user, UserName="alice")[1] == "DeleteConflict"
    for k in iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="alice", AccessKeyId=k["AccessKeyId"])
    iam.delete_user(UserName="alice")
    assert error(iam.get_user, UserName="alice") == (404, "NoSuchEntity", "The user with name alice cannot be found.")
    # Without a name, GetUser is the caller.
    assert iam.get_user()["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/localfargate"


def test_oidc_providers(iam, server):
    url = "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
    arn = iam.create_open_id_connect_provider(Url=url, ClientIDList=["sts.amazonaws.com"],
                                              ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
                                              Tags=[{"Key": "k", "Value": "v"}])["OpenIDConnectProviderArn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url[8:]}"
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == url[8:] and got["ClientIDList"] == ["sts.amazonaws.com"]
    assert got["Tags"] == [{"Key": "k", "Value": "v"}]
    assert error(iam.create_open_id_connect_provider, Url=url, ClientIDList=["x"]) == (
        409, "EntityAlreadyExists", f"Provider with url {url} already exists.")
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="other")
    iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="sts.amazonaws.com")
    iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn,
                                                   ThumbprintList=["a" * 40, "b" * 40])
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["ClientIDList"] == ["other"] and got["ThumbprintList"] == ["a" * 40, "b" * 40]
    iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=["k"])
    assert iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"] == []
    listed = server.aws("iam", "list-open-id-connect-providers")["OpenIDConnectProviderList"]
    assert listed == [{"Arn": arn}]
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert error(iam.get_open_id_connect_provider, OpenIDConnectProviderArn=arn) == (
        404, "NoSuchEntity", f"OpenIDConnect Provider not found for arn {arn}")


@pytest.mark.parametrize("doc,message", [
    ("{not json", "This policy contains invalid Json"),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}),
     "Missing required field Principal"),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Principal": {"Service": "eks.amazonaws.com"},
                                                          "Action": "sts:AssumeRole"}]}),
     "Missing required field Effect"),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/nobody"}}]}),
     f'Invalid principal in policy: "AWS":"arn:aws:iam::{ACCOUNT}:role/nobody"'),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                                          "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/none"}}]}),
     f'Invalid principal in policy: "Federated":"arn:aws:iam::{ACCOUNT}:oidc-provider/none"'),
])
def test_malformed_trust_policies_make_nothing(iam, doc, message):
    assert error(iam.create_role, RoleName="bad", AssumeRolePolicyDocument=doc) == (
        400, "MalformedPolicyDocument", message)
    assert error(iam.get_role, RoleName="bad")[1] == "NoSuchEntity"


@pytest.mark.parametrize("doc,message", [
    ("nope", "Syntax errors in policy."),
    (json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
     "Policy document must be version 2012-10-17 or greater."),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}),
     "Policy statement must contain actions."),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}),
     "Policy statement must contain resources."),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps", "Action": "s3:*", "Resource": "*"}]}),
     "Syntax errors in policy."),
])
def test_malformed_managed_policies_make_nothing(iam, doc, message):
    assert error(iam.create_policy, PolicyName="bad", PolicyDocument=doc) == (400, "MalformedPolicyDocument", message)
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_names_duplicates_and_unknown_references(iam):
    long = "r" * 65
    code, kind, message = error(iam.create_role, RoleName=long, AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST))
    assert (code, kind) == (400, "ValidationError")
    assert message == (f"1 validation error detected: Value '{long}' at 'roleName' failed to satisfy constraint: "
                       "Member must have length less than or equal to 64")
    code, kind, message = error(iam.create_role, RoleName="no spaces", AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST))
    assert kind == "ValidationError" and "regular expression pattern" in message
    iam.create_role(RoleName="Dup", AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST))
    # Names are unique regardless of case, as in IAM.
    assert error(iam.create_role, RoleName="dup", AssumeRolePolicyDocument=json.dumps(FARGATE_TRUST)) == (
        409, "EntityAlreadyExists", "Role with name Dup already exists.")
    iam.create_policy(PolicyName="p", PolicyDocument=json.dumps(S3_READ))
    assert error(iam.create_policy, PolicyName="p", PolicyDocument=json.dumps(S3_READ)) == (
        409, "EntityAlreadyExists", "A policy called p already exists. Duplicate names are not allowed.")
    missing = f"arn:aws:iam::{ACCOUNT}:policy/missing"
    assert error(iam.attach_role_policy, RoleName="Dup", PolicyArn=missing) == (
        404, "NoSuchEntity", f"Policy {missing} does not exist or is not attachable.")
    assert error(iam.detach_role_policy, RoleName="Dup", PolicyArn=FARGATE_POLICY) == (
        404, "NoSuchEntity", f"Policy {FARGATE_POLICY} was not found.")
    assert error(iam.attach_role_policy, RoleName="ghost", PolicyArn=FARGATE_POLICY)[2] == \
        "The role with name ghost cannot be found."
    assert error(iam.get_role_policy, RoleName="Dup", PolicyName="x") == (
        404, "NoSuchEntity", "The role policy with name x cannot be found.")
    assert iam.list_attached_role_policies(RoleName="Dup")["AttachedPolicies"] == []


def test_wrong_protocol_parameters_get_the_query_protocols_errors(server):
    import urllib.error
    import urllib.request

    def post(body):
        req = urllib.request.Request(server.url + "/", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, body = post("Action=GetRole&Version=2010-05-08")
    assert status == 400 and "<Code>ValidationError</Code>" in body and "roleName" in body
    status, body = post("Action=Frobnicate&Version=2010-05-08")
    assert status == 400 and "<Code>InvalidAction</Code>" in body
    status, body = post("Action=ListRoles&Version=2010-05-08&MaxItems=0")
    assert status == 400 and "<Code>ValidationError</Code>" in body


@pytest.mark.skipif(terraform_missing() is not None, reason=terraform_missing() or "")
def test_terraform_iam_role_policy_attachment_and_oidc_provider(server, tmp_path):
    server.reset()
    (tmp_path / "main.tf").write_text(TF_LOCAL_AWS_PROVIDER + """data "aws_caller_identity" "me" {}
data "aws_partition" "current" {}
data "aws_iam_policy_document" "fargate_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["eks-fargate-pods.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:eks:us-east-1:${data.aws_caller_identity.me.account_id}:fargateprofile/demo/*"]
    }
  }
}
resource "aws_iam_role" "fargate" {
  name               = "demo-fargate-pod-execution"
  assume_role_policy = data.aws_iam_policy_document.fargate_trust.json
  tags               = { team = "platform" }
}
resource "aws_iam_role_policy_attachment" "fargate" {
  role       = aws_iam_role.fargate.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"
}
data "aws_iam_policy_document" "reader" {
  statement {
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = ["arn:aws:s3:::demo-bucket", "arn:aws:s3:::demo-bucket/*"]
  }
}
resource "aws_iam_policy" "reader" {
  name        = "demo-reader"
  description = "read the demo bucket"
  policy      = data.aws_iam_policy_document.reader.json
}
resource "aws_iam_openid_connect_provider" "cluster" {
  url             = "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
}
data "aws_iam_policy_document" "irsa_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.cluster.url, "https://", "")}:sub"
      values   = ["system:serviceaccount:default:reader"]
    }
  }
}
resource "aws_iam_role" "irsa" {
  name               = "demo-irsa-reader"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust.json
}
resource "aws_iam_role_policy_attachment" "irsa" {
  role       = aws_iam_role.irsa.name
  policy_arn = aws_iam_policy.reader.arn
}
output "role_arn" { value = aws_iam_role.fargate.arn }
output "irsa_arn" { value = aws_iam_role.irsa.arn }
""")
    var = f"-var=endpoint={server.url}"
    tf = terraform(tmp_path, timeout=600)
    tf("init")
    tf("apply", "-auto-approve", var)
    out = json.loads(tf("output", "-json").stdout)
    assert out["role_arn"]["value"] == f"arn:aws:iam::{ACCOUNT}:role/demo-fargate-pod-execution"
    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="demo-irsa-reader")["AttachedPolicies"]] == [
        f"arn:aws:iam::{ACCOUNT}:policy/demo-reader"]
    tf("plan", "-detailed-exitcode", var)
    tf("destroy", "-auto-approve", var)
    assert iam.list_roles()["Roles"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
