"""STS on the EKS endpoint, as Terraform's `data.aws_caller_identity` and `aws sts
get-caller-identity` use it: the caller is the signing key's principal (the account's default
identity unless `--access-key` names one), in STS's XML, with STS's errors."""

import json
import os
import shutil
import subprocess

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import TF_LOCAL_AWS_PROVIDER, Server, terraform, terraform_missing

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
        client.decode_authorization_message(EncodedMessage="x")
    e = info.value.response
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e["Error"]["Code"] == "InvalidAction"
    assert e["Error"]["Message"] == "Could not find operation DecodeAuthorizationMessage for version 2011-06-15"


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


@pytest.mark.skipif(terraform_missing() is not None, reason=terraform_missing() or "")
def test_terraform_reads_the_caller_identity(server, tmp_path):
    """The seed guides' Terraform starts with `data.aws_caller_identity`: the AWS provider (from
    the filesystem mirror, no network) reads it through the endpoint override."""
    (tmp_path / "main.tf").write_text(TF_LOCAL_AWS_PROVIDER + """data "aws_caller_identity" "me" {}
output "account" { value = data.aws_caller_identity.me.account_id }
output "arn" { value = data.aws_caller_identity.me.arn }
""")
    tf = terraform(tmp_path, timeout=300)
    tf("init")
    tf("apply", "-auto-approve", f"-var=endpoint={server.url}")
    out = json.loads(tf("output", "-json").stdout)
    assert out["account"]["value"] == ACCOUNT
    assert out["arn"]["value"] == f"arn:aws:iam::{ACCOUNT}:user/localfargate"


def iam_client(server, key="test", secret="test", token=None):
    return boto3.client("iam", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token)


def trust(principal, action="sts:AssumeRole", condition=None):
    statement = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def sts_error(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kw)
    e = info.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]


def test_assume_role_evaluates_the_roles_trust_policy(server):
    server.reset()
    iam = iam_client(server)
    me = f"arn:aws:iam::{ACCOUNT}:user/localfargate"
    iam.create_role(RoleName="dev", AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
                    MaxSessionDuration=7200)
    iam.create_role(RoleName="ci", AssumeRolePolicyDocument=trust(
        {"AWS": ACCOUNT}, condition={"StringEquals": {"sts:ExternalId": "s3cret"}}))
    iam.create_role(RoleName="svc", AssumeRolePolicyDocument=trust({"Service": "eks.amazonaws.com"}))
    client = sts(server)
    out = client.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dev", RoleSessionName="alice",
                             DurationSeconds=7200)
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert creds["SecretAccessKey"] and creds["SessionToken"]
    assert creds["Expiration"].tzinfo is not None
    user = out["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    role_id = iam.get_role(RoleName="dev")["Role"]["RoleId"]
    assert user["AssumedRoleId"] == f"{role_id}:alice"
    # Without `--auth strict` nothing is refused, but the session's credentials are the assumed
    # role's (an SDK that assumed a role asks who it is); its key without its token is not.
    session = boto3.client("sts", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
    assert session.get_caller_identity()["Arn"] == user["Arn"]
    assert sts(server, creds["AccessKeyId"], creds["SecretAccessKey"]).get_caller_identity()["Arn"] == me
    # The CLI, as a user would.
    cli = server.aws("sts", "assume-role", "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/ci", "--role-session-name",
                     "build", "--external-id", "s3cret")
    assert cli["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/build"
    denied = f"User: {me} is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{ACCOUNT}:role/"
    assert sts_error(client.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ci", RoleSessionName="x1") == (
        403, "AccessDenied", denied + "ci")
    assert sts_error(client.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/svc", RoleSessionName="x1") == (
        403, "AccessDenied", denied + "svc")
    assert sts_error(client.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ghost", RoleSessionName="x1") == (
        403, "AccessDenied", denied + "ghost")
    code, kind, message = sts_error(client.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dev",
                                    RoleSessionName="x1", DurationSeconds=7201)
    assert (code, kind) == (400, "ValidationError") and "MaxSessionDuration" in message
    code, kind, message = sts_error(client.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dev",
                                    RoleSessionName="bad name")
    assert (code, kind) == (400, "ValidationError") and "roleSessionName" in message


def test_strict_sessions_and_iam_keys_sign_as_their_principals():
    admin = f"arn:aws:iam::{ACCOUNT}:user/admin"
    s = Server("--auth", "strict", "--access-key", f"AKIDADMIN:secret-admin:{admin}").start()
    try:
        iam = iam_client(s, "AKIDADMIN", "secret-admin")
        iam.create_role(RoleName="dev", AssumeRolePolicyDocument=trust({"AWS": admin}))
        out = sts(s, "AKIDADMIN", "secret-admin").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dev",
                                                             RoleSessionName="alice")
        c = out["Credentials"]
        session = boto3.client("sts", endpoint_url=s.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                               aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
        me = session.get_caller_identity()
        assert me["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
        assert me["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]
        # The session signs IAM and EKS requests too.
        assert [r["RoleName"] for r in iam_client(s, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
                .list_roles()["Roles"]] == ["dev"]
        eks = boto3.client("eks", endpoint_url=s.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                           aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
        assert eks.list_clusters()["clusters"] == []
        # Without its token, or with another, the session key is not recognised.
        no_token = boto3.client("sts", endpoint_url=s.url, region_name="us-east-1",
                                aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"])
        assert sts_error(no_token.get_caller_identity)[:2] == (403, "UnrecognizedClientException")
        # Sessions cannot get session tokens; users can.
        assert sts_error(session.get_session_token)[:2] == (403, "AccessDenied")
        # An IAM user's access key signs as the user.
        iam.create_user(UserName="bob")
        key = iam.create_access_key(UserName="bob")["AccessKey"]
        bob = sts(s, key["AccessKeyId"], key["SecretAccessKey"])
        assert bob.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/bob"
        temp = bob.get_session_token(DurationSeconds=900)["Credentials"]
        again = boto3.client("sts", endpoint_url=s.url, region_name="us-east-1", aws_access_key_id=temp["AccessKeyId"],
                             aws_secret_access_key=temp["SecretAccessKey"], aws_session_token=temp["SessionToken"])
        assert again.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/bob"
        iam.update_access_key(UserName="bob", AccessKeyId=key["AccessKeyId"], Status="Inactive")
        assert sts_error(bob.get_caller_identity)[:2] == (403, "UnrecognizedClientException")
        # Unsigned calls are refused, except web identity federation (its token is the credential).
        anonymous = boto3.client("sts", endpoint_url=s.url, region_name="us-east-1",
                                 config=botocore.config.Config(signature_version=botocore.UNSIGNED))
        assert sts_error(anonymous.get_caller_identity)[0] == 403
        code, kind, _ = sts_error(anonymous.assume_role_with_web_identity, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dev",
                                  RoleSessionName="x1", WebIdentityToken="not-a-jwt")
        assert (code, kind) == (400, "InvalidIdentityToken")
    finally:
        s.stop()


KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.31"


def kube_env(key, secret, **extra):
    from conftest import AWS
    return dict(os.environ, PATH=f"{AWS.parent}:{os.environ['PATH']}", AWS_ACCESS_KEY_ID=key,
                AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="",
                AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", **extra)


def cluster_with_kubectl(server, name, tmp_path):
    """An ACTIVE cluster `name`, its OIDC issuer, and kubectl (command and environment) on its
    Kubernetes API through `aws eks update-kubeconfig`, once that API answers."""
    from conftest import PUBLIC, CLUSTER_ROLE, wait_for
    eks = server.client()
    eks.create_cluster(name=name, roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
    wait_for(lambda: eks.describe_cluster(name=name)["cluster"]["status"] == "ACTIVE")
    issuer = eks.describe_cluster(name=name)["cluster"]["identity"]["oidc"]["issuer"]
    env = kube_env("test", "test")
    config = tmp_path / "config"
    server.aws("eks", "update-kubeconfig", "--name", name, "--kubeconfig", str(config))
    kubectl = [KUBECTL, "--kubeconfig", str(config)]
    wait_for(lambda: subprocess.run(kubectl + ["get", "namespace", "default"], env=env,
                                    capture_output=True).returncode == 0)
    return issuer, kubectl, env


def test_web_identity_with_a_clusters_service_account_tokens(server, tmp_path):
    """IRSA's exchange: a service-account token of a cluster on this machine, its issuer an IAM
    OIDC provider, a role trusting that provider for one service account."""
    server.reset()
    issuer, kubectl, env = cluster_with_kubectl(server, "wi", tmp_path)
    for sa in ("reader", "intruder"):
        subprocess.run(kubectl + ["create", "serviceaccount", sa], env=env, check=True, capture_output=True)

    def token(sa, audience="sts.amazonaws.com"):
        return subprocess.run(kubectl + ["create", "token", sa, "--audience", audience], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    anonymous = boto3.client("sts", endpoint_url=server.url, region_name="us-east-1",
                             config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/reader"

    def assume(tok):
        return anonymous.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="pod", WebIdentityToken=tok)

    # No IAM OIDC provider for the issuer yet.
    assert sts_error(assume, tok=token("reader")) == (
        400, "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}")
    iam = iam_client(server)
    provider = iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"])[
        "OpenIDConnectProviderArn"]
    host = issuer.removeprefix("https://")
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust(
        {"Federated": provider}, "sts:AssumeRoleWithWebIdentity",
        {"StringEquals": {f"{host}:sub": "system:serviceaccount:default:reader", f"{host}:aud": "sts.amazonaws.com"}}))
    out = assume(token("reader"))
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/pod"
    assert out["SubjectFromWebIdentityToken"] == "system:serviceaccount:default:reader"
    assert out["Audience"] == "sts.amazonaws.com" and out["Credentials"]["AccessKeyId"].startswith("ASIA")
    # Another service account's token: the trust policy's `sub` does not match.
    assert sts_error(assume, tok=token("intruder")) == (
        403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    # A token for another audience than the provider's client IDs.
    assert sts_error(assume, tok=token("reader", "other"))[:2] == (400, "InvalidIdentityToken")
    # A tampered token: its claims changed, its signature kept.
    import base64
    head, payload, sig = token("reader").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:default:intruder"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert sts_error(assume, tok=f"{head}.{forged}.{sig}")[:2] == (400, "InvalidIdentityToken")
    assert sts_error(assume, tok="not-a-jwt")[:2] == (400, "InvalidIdentityToken")
    # The aws CLI's own command, unsigned as the SDKs send it.
    cli = server.aws("sts", "assume-role-with-web-identity", "--role-arn", role_arn, "--role-session-name", "cli",
                     "--web-identity-token", token("reader"))
    assert cli["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/cli"


def test_get_token_presigned_for_localfargates_own_endpoint_opens_a_strict_cluster(tmp_path):
    """`aws eks get-token` with AWS_ENDPOINT_URL exported (as `up` advises) presigns
    GetCallerIdentity for localfargate's endpoint, not sts.REGION.amazonaws.com; under
    `--auth strict` the cluster accepts it, and still refuses a wrong secret."""
    from conftest import AWS, PUBLIC, CLUSTER_ROLE, wait_for
    import base64
    s = Server("--auth", "strict", "--access-key", "AKIDLOCAL:secret-local", "--lifecycle-seconds", "0.1").start()
    try:
        eks = s.client(key="AKIDLOCAL", secret="secret-local")
        eks.create_cluster(name="kc", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
        wait_for(lambda: eks.describe_cluster(name="kc")["cluster"]["status"] == "ACTIVE")
        env = kube_env("AKIDLOCAL", "secret-local", AWS_ENDPOINT_URL=s.url)
        token = subprocess.run([str(AWS), "eks", "get-token", "--cluster-name", "kc", "--output", "text", "--query",
                                "status.token"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        encoded = token.removeprefix("k8s-aws-v1.")
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        assert url.startswith(s.url + "/?"), url
        config = tmp_path / "config"
        subprocess.run([str(AWS), "eks", "update-kubeconfig", "--name", "kc", "--kubeconfig", str(config)],
                       env=env, check=True, capture_output=True)
        kubectl = [KUBECTL, "--kubeconfig", str(config)]
        wait_for(lambda: subprocess.run(kubectl + ["get", "namespace", "default"], env=env,
                                        capture_output=True).returncode == 0)
        wrong = subprocess.run(kubectl + ["get", "namespaces"], env=kube_env("AKIDLOCAL", "nope", AWS_ENDPOINT_URL=s.url),
                               capture_output=True, text=True)
        assert wrong.returncode != 0 and ("Unauthorized" in wrong.stderr or "logged in" in wrong.stderr), wrong.stderr
    finally:
        s.stop()


def test_get_token_with_a_session_or_an_iam_users_key_opens_a_strict_cluster_through_access_entries(tmp_path):
    """Under `--auth strict` the cluster's Kubernetes API takes `aws eks get-token` tokens signed
    with STS session credentials (their token in the URL) and IAM users' keys, as the AWS
    endpoint does; the caller is the assumed role (or the user) and is let in by its access
    entry, as on EKS: 401 before one exists."""
    from conftest import AWS, PUBLIC, CLUSTER_ROLE, wait_for
    admin = f"arn:aws:iam::{ACCOUNT}:user/admin"
    s = Server("--auth", "strict", "--access-key", f"AKIDADMIN:secret-admin:{admin}", "--lifecycle-seconds",
               "0.1").start()
    try:
        eks = s.client(key="AKIDADMIN", secret="secret-admin")
        eks.create_cluster(name="kc", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]},
                           accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
        wait_for(lambda: eks.describe_cluster(name="kc")["cluster"]["status"] == "ACTIVE")
        iam = iam_client(s, "AKIDADMIN", "secret-admin")
        role = iam.create_role(RoleName="kube-admins", AssumeRolePolicyDocument=trust({"AWS": admin}))["Role"]["Arn"]
        c = sts(s, "AKIDADMIN", "secret-admin").assume_role(RoleArn=role, RoleSessionName="alice")["Credentials"]
        session_env = kube_env(c["AccessKeyId"], c["SecretAccessKey"], AWS_SESSION_TOKEN=c["SessionToken"],
                               AWS_ENDPOINT_URL=s.url)
        config = tmp_path / "config"
        subprocess.run([str(AWS), "eks", "update-kubeconfig", "--name", "kc", "--kubeconfig", str(config)],
                       env=session_env, check=True, capture_output=True)
        kubectl = [KUBECTL, "--kubeconfig", str(config)]

        def kube(env, *args):
            return subprocess.run(kubectl + list(args), env=env, capture_output=True, text=True)

        # A genuine session, but no access entry for its role: 401, as EKS answers.
        denied = kube(session_env, "get", "namespaces")
        assert denied.returncode != 0 and ("Unauthorized" in denied.stderr or "logged in" in denied.stderr), \
            denied.stderr
        eks.create_access_entry(clusterName="kc", principalArn=role)
        eks.associate_access_policy(clusterName="kc", principalArn=role, accessScope={"type": "cluster"},
                                    policyArn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy")
        wait_for(lambda: kube(session_env, "get", "namespace", "default").returncode == 0)
        who = kube(session_env, "auth", "whoami", "-o", "json")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["status"]["userInfo"]["extra"]["arn"] == [
            f"arn:aws:sts::{ACCOUNT}:assumed-role/kube-admins/alice"]
        # The session's key without its token is not the session.
        tokenless = kube(kube_env(c["AccessKeyId"], c["SecretAccessKey"], AWS_ENDPOINT_URL=s.url), "get", "ns")
        assert tokenless.returncode != 0, tokenless.stdout

        # An IAM user's access key, with an entry for the user.
        iam.create_user(UserName="bob")
        key = iam.create_access_key(UserName="bob")["AccessKey"]
        bob_env = kube_env(key["AccessKeyId"], key["SecretAccessKey"], AWS_ENDPOINT_URL=s.url)
        assert kube(bob_env, "get", "namespaces").returncode != 0
        bob = f"arn:aws:iam::{ACCOUNT}:user/bob"
        eks.create_access_entry(clusterName="kc", principalArn=bob)
        eks.associate_access_policy(clusterName="kc", principalArn=bob,
                                    accessScope={"type": "namespace", "namespaces": ["default"]},
                                    policyArn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
        wait_for(lambda: kube(bob_env, "get", "pods", "-n", "default").returncode == 0)
        assert kube(bob_env, "get", "pods", "-n", "kube-system").returncode != 0
        iam.update_access_key(UserName="bob", AccessKeyId=key["AccessKeyId"], Status="Inactive")
        assert kube(bob_env, "get", "pods", "-n", "default").returncode != 0
    finally:
        s.stop()


def test_iam_strict_checks_cluster_and_pod_execution_roles():
    """`up --iam strict`: the cluster role must exist and trust eks.amazonaws.com, the pod
    execution role eks-fargate-pods.amazonaws.com, refused with EKS's messages otherwise."""
    from conftest import PUBLIC, PRIVATE, wait_for
    s = Server("--iam", "strict", "--lifecycle-seconds", "0.1").start()
    try:
        eks, iam = s.client(), iam_client(s)
        missing = f"arn:aws:iam::{ACCOUNT}:role/eks-cluster"
        vpc = {"subnetIds": PUBLIC[:2] + PRIVATE[:2]}
        with pytest.raises(botocore.exceptions.ClientError) as info:
            eks.create_cluster(name="c", roleArn=missing, resourcesVpcConfig=vpc)
        assert info.value.response["Error"]["Code"] == "InvalidParameterException"
        assert info.value.response["Error"]["Message"] == (
            f"Role with arn: {missing}, could not be assumed because it does not exist or the trusted entity is "
            "not correct")
        assert eks.list_clusters()["clusters"] == []
        cluster_role = iam.create_role(RoleName="eks-cluster", AssumeRolePolicyDocument=trust(
            {"Service": "eks.amazonaws.com"}))["Role"]["Arn"]
        eks.create_cluster(name="c", roleArn=cluster_role, resourcesVpcConfig=vpc)
        wait_for(lambda: eks.describe_cluster(name="c")["cluster"]["status"] == "ACTIVE")
        with pytest.raises(botocore.exceptions.ClientError) as info:
            eks.create_fargate_profile(clusterName="c", fargateProfileName="p", podExecutionRoleArn=cluster_role,
                                       selectors=[{"namespace": "default"}])
        assert info.value.response["Error"]["Message"] == (
            "Misconfigured PodExecutionRole Trust Policy; Please add the eks-fargate-pods.amazonaws.com Service "
            "Principal")
        pod_role = iam.create_role(RoleName="pods", AssumeRolePolicyDocument=trust(
            {"Service": "eks-fargate-pods.amazonaws.com"}))["Role"]["Arn"]
        eks.create_fargate_profile(clusterName="c", fargateProfileName="p", podExecutionRoleArn=pod_role,
                                   selectors=[{"namespace": "default"}])
        assert eks.list_fargate_profiles(clusterName="c")["fargateProfileNames"] == ["p"]
    finally:
        s.stop()


def _b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text):
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign_es256(key_pem, signing_input, tmp_path):
    """A JWS ES256 signature of `signing_input` with the PEM key, by openssl: its DER
    ECDSA-Sig-Value turned into JWS's fixed-width r || s."""
    key = tmp_path / "signing-key.pem"
    key.write_text(key_pem)
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=signing_input,
                         capture_output=True, check=True).stdout
    assert der[0] == 0x30, der
    at = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    parts = []
    for _ in range(2):
        assert der[at] == 0x02, der
        length = der[at + 1]
        parts.append(der[at + 2:at + 2 + length].lstrip(b"\0").rjust(32, b"\0"))
        at += 2 + length
    return parts[0] + parts[1]


def _cluster_service_account_key(data_dir, name):
    """The cluster's service-account signing key, as `up` keeps it in its data directory's store
    (the cluster's record; what the issuer's JWKS publishes the public half of)."""
    import sqlite3
    db = sqlite3.connect(f"file:{data_dir / 'store.db'}?mode=ro", uri=True)
    try:
        (value,) = db.execute("SELECT value FROM objects WHERE kind = ? AND key = ?",
                              ("eks.amazonaws.com/Cluster", name)).fetchone()
    finally:
        db.close()
    return json.loads(value)["private"]["serviceAccountKeyPem"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_web_identity_tokens_expired_or_tampered_are_refused_with_stss_errors(tmp_path):
    """A service-account token signed with the cluster's real key but past its `exp` is STS's
    400 ExpiredTokenException, with STS's text; the same token re-signed with a live `exp` is
    accepted (so the key and the signing here are the cluster's); a signed token whose claims were
    changed afterwards is InvalidIdentityToken."""
    import time
    data_dir = tmp_path / "state"
    s = Server("--lifecycle-seconds", "0.1", data_dir=data_dir).start()
    try:
        issuer, kubectl, env = cluster_with_kubectl(s, "exp", tmp_path)
        subprocess.run(kubectl + ["create", "serviceaccount", "app"], env=env, check=True, capture_output=True)
        genuine = subprocess.run(kubectl + ["create", "token", "app", "--audience", "sts.amazonaws.com"], env=env,
                                 check=True, capture_output=True, text=True).stdout.strip()

        iam = iam_client(s)
        provider = iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"])[
            "OpenIDConnectProviderArn"]
        host = issuer.removeprefix("https://")
        role_arn = iam.create_role(RoleName="app", AssumeRolePolicyDocument=trust(
            {"Federated": provider}, "sts:AssumeRoleWithWebIdentity",
            {"StringEquals": {f"{host}:sub": "system:serviceaccount:default:app"}}))["Role"]["Arn"]
        anonymous = boto3.client("sts", endpoint_url=s.url, region_name="us-east-1",
                                 config=botocore.config.Config(signature_version=botocore.UNSIGNED))

        def assume(tok):
            return anonymous.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="app",
                                                           WebIdentityToken=tok)

        key = _cluster_service_account_key(data_dir, "exp")
        head, payload, _ = genuine.split(".")
        claims = json.loads(_unb64url(payload))

        def signed(**changes):
            body = _b64url(json.dumps({**claims, **changes}).encode())
            signature = _sign_es256(key, f"{head}.{body}".encode(), tmp_path)
            return f"{head}.{body}.{_b64url(signature)}"

        now = int(time.time())
        # Re-signed here with the cluster's key, a new id and a live expiry: a genuine token.
        assert assume(signed(jti="resigned"))["AssumedRoleUser"]["Arn"] == \
            f"arn:aws:sts::{ACCOUNT}:assumed-role/app/app"
        # The same, issued two hours ago for one hour.
        expired_at = now - 3600
        code, kind, message = sts_error(assume, tok=signed(iat=now - 7200, nbf=now - 7200, exp=expired_at))
        assert (code, kind) == (400, "ExpiredTokenException"), (code, kind, message)
        prefix = "Token expired: current date/time "
        suffix = f" must be before the expiration date/time {expired_at}"
        assert message.startswith(prefix) and message.endswith(suffix), message
        assert int(message.removeprefix(prefix).removesuffix(suffix)) >= now
        # botocore knows the code as its modelled exception.
        with pytest.raises(anonymous.exceptions.ExpiredTokenException):
            assume(signed(exp=expired_at))
        # Tampered: a genuine token's expiry pushed out after it was signed.
        head_, payload_, sig_ = signed(exp=now + 600).split(".")
        pushed = _b64url(json.dumps({**json.loads(_unb64url(payload_)), "exp": now + 7200}).encode())
        assert sts_error(assume, tok=f"{head_}.{pushed}.{sig_}")[:2] == (400, "InvalidIdentityToken")
        # Signed with another key than the cluster's.
        other = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                               capture_output=True, text=True, check=True).stdout
        body = _b64url(json.dumps(claims).encode())
        forged = f"{head}.{body}.{_b64url(_sign_es256(other, f'{head}.{body}'.encode(), tmp_path))}"
        assert sts_error(assume, tok=forged)[:2] == (400, "InvalidIdentityToken")
    finally:
        s.stop()
