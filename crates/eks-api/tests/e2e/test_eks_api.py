"""The EKS API against the aws CLI and boto3: the guides' commands, every error path, pagination,
tags, idempotency, restarts and concurrent clients."""

import threading
import time

import botocore.exceptions
import pytest

from conftest import CLUSTER_ROLE, PRIVATE, PUBLIC, ROLE, Server, active_cluster, active_profile, client_error_response, wait_for


def error(call, **kw):
    e = client_error_response(call, **kw)
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"], e


# ---- the guides' aws CLI workflow ----

def test_guide_workflow_with_the_aws_cli(server, eks):
    active_cluster(eks, "my-cluster")
    created = server.aws("eks", "create-fargate-profile", "--cluster-name", "my-cluster",
                         "--fargate-profile-name", "fp-default", "--pod-execution-role-arn", ROLE,
                         "--selectors", '[{"namespace": "default"}, {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}]')
    profile = created["fargateProfile"]
    assert profile["status"] == "CREATING"
    assert profile["subnets"] == PRIVATE[:2], "the cluster's private subnets"
    assert profile["fargateProfileArn"].startswith("arn:aws:eks:us-east-1:000000000000:fargateprofile/my-cluster/fp-default/")
    # The CLI shows createdAt as a date; on the wire it must be an epoch-seconds number.
    import json, urllib.request
    with urllib.request.urlopen(f"{server.url}/clusters/my-cluster/fargate-profiles/fp-default") as r:
        raw = json.load(r)["fargateProfile"]
    assert isinstance(raw["createdAt"], (int, float)) and not isinstance(raw["createdAt"], bool)
    status = server.aws("eks", "describe-fargate-profile", "--cluster-name", "my-cluster", "--fargate-profile-name",
                        "fp-default", "--query", "fargateProfile.status", "--output", "text")
    assert status.stdout.strip() in ("CREATING", "ACTIVE")
    server.aws("eks", "wait", "fargate-profile-active", "--cluster-name", "my-cluster", "--fargate-profile-name", "fp-default")
    status = server.aws("eks", "describe-fargate-profile", "--cluster-name", "my-cluster", "--fargate-profile-name",
                        "fp-default", "--query", "fargateProfile.status", "--output", "text")
    assert status.stdout.strip() == "ACTIVE"
    listed = server.aws("eks", "list-fargate-profiles", "--cluster-name", "my-cluster")
    assert listed == {"fargateProfileNames": ["fp-default"]}

    arn = profile["fargateProfileArn"]
    server.aws("eks", "tag-resource", "--resource-arn", arn, "--tags", "team=payments,env=dev")
    assert server.aws("eks", "list-tags-for-resource", "--resource-arn", arn) == {"tags": {"team": "payments", "env": "dev"}}
    server.aws("eks", "untag-resource", "--resource-arn", arn, "--tag-keys", "env")
    assert server.aws("eks", "list-tags-for-resource", "--resource-arn", arn) == {"tags": {"team": "payments"}}

    deleted = server.aws("eks", "delete-fargate-profile", "--cluster-name", "my-cluster", "--fargate-profile-name", "fp-default")
    assert deleted["fargateProfile"]["status"] == "DELETING"
    wait_for(lambda: server.aws("eks", "describe-fargate-profile", "--cluster-name", "my-cluster",
                                "--fargate-profile-name", "fp-default", check=False).returncode != 0)
    server.aws("eks", "wait", "fargate-profile-deleted", "--cluster-name", "my-cluster", "--fargate-profile-name", "fp-default")
    missing = server.aws("eks", "describe-fargate-profile", "--cluster-name", "my-cluster", "--fargate-profile-name",
                         "fp-default", check=False)
    assert "ResourceNotFoundException" in missing.stderr
    assert "No Fargate Profile found with name: fp-default." in missing.stderr

    server.aws("eks", "delete-cluster", "--name", "my-cluster")
    wait_for(lambda: "my-cluster" not in eks.list_clusters()["clusters"])
    server.aws("eks", "wait", "cluster-deleted", "--name", "my-cluster")


def test_cluster_lifecycle_and_shape(server, eks):
    c = eks.create_cluster(name="c1", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})["cluster"]
    assert c["status"] == "CREATING"
    assert "endpoint" not in c and "certificateAuthority" not in c, "not until ACTIVE"
    assert c["arn"] == "arn:aws:eks:us-east-1:000000000000:cluster/c1"
    c = wait_for(lambda: (d := eks.describe_cluster(name="c1")["cluster"])["status"] == "ACTIVE" and d)
    assert c["endpoint"] == f"https://127.0.0.1:{server.kube_port}", "each cluster its own port, from --kube-port"
    eks.create_cluster(name="c2", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
    c2 = wait_for(lambda: (d := eks.describe_cluster(name="c2")["cluster"])["status"] == "ACTIVE" and d)
    assert c2["endpoint"] == f"https://127.0.0.1:{server.kube_port + 1}"
    import base64
    assert base64.b64decode(c["certificateAuthority"]["data"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert c["resourcesVpcConfig"]["vpcId"] == "vpc-0a1b2c3d4e5f60000"
    assert c["version"] == "1.34"
    assert eks.list_clusters()["clusters"] == ["c1", "c2"]


# ---- error paths, exact codes and messages ----

def test_profile_error_paths(eks):
    active_cluster(eks)
    create = eks.create_fargate_profile
    base = dict(clusterName="c1", podExecutionRoleArn=ROLE)
    assert error(create, clusterName="nope", fargateProfileName="p", podExecutionRoleArn=ROLE,
                 selectors=[{"namespace": "a"}])[:3] == (404, "ResourceNotFoundException", "No cluster found for name: nope.")
    assert error(create, fargateProfileName="eks-p", selectors=[{"namespace": "a"}], **base)[:3] == (
        400, "InvalidParameterException", "The fargate profile name starts with the reserved prefix: 'eks-'.")
    assert error(create, fargateProfileName="p", **base)[:3] == (
        400, "InvalidParameterException", "Fargate Profile requires at least one selector.")
    for bad in ([{}], [{"labels": {"a": "b"}}], [{"namespace": "a"}, {}]):
        assert error(create, fargateProfileName="p", selectors=bad, **base)[2] == \
            "Fargate Profile must have at least one selector with at least one namespace value."
    six = {f"k{i}": "v" for i in range(6)}
    assert error(create, fargateProfileName="p", selectors=[{"namespace": "a", "labels": six}], **base)[:3] == (
        400, "InvalidParameterException", "Request contains Selector with more than 5 Label pairs")
    assert error(create, fargateProfileName="p", selectors=[{"namespace": f"n{i}"} for i in range(6)], **base)[1] == \
        "InvalidParameterException"
    assert error(create, fargateProfileName="p", selectors=[{"namespace": "a"}], subnets=[PUBLIC[0]], **base)[:3] == (
        400, "InvalidParameterException", f"Subnet {PUBLIC[0]} provided in Fargate Profile is not a private subnet")
    assert error(create, fargateProfileName="p", selectors=[{"namespace": "a"}], subnets=["subnet-nope"], **base)[2] == \
        "The subnet ID 'subnet-nope' does not exist"
    assert error(create, clusterName="c1", fargateProfileName="p", selectors=[{"namespace": "a"}],
                 podExecutionRoleArn="arn:aws:iam::000000000000:role/path/r")[1] == "InvalidParameterException"

    create(fargateProfileName="first", selectors=[{"namespace": "a"}], **base)
    status, code, message, body = error(create, fargateProfileName="second", selectors=[{"namespace": "b"}], **base)
    assert (status, code, message) == (409, "ResourceInUseException",
        "Cannot create Fargate Profile second because cluster c1 currently has Fargate profile first in status CREATING")
    assert body.get("clusterName") == "c1"
    wait_for(lambda: eks.describe_fargate_profile(clusterName="c1", fargateProfileName="first")["fargateProfile"]["status"] == "ACTIVE")
    assert error(create, fargateProfileName="first", selectors=[{"namespace": "a"}], **base)[:3] == (
        409, "ResourceInUseException", "A Fargate Profile already exists with this name in this cluster.")
    active_profile(eks, "c1", "second")
    eks.delete_fargate_profile(clusterName="c1", fargateProfileName="first")
    assert error(eks.delete_fargate_profile, clusterName="c1", fargateProfileName="second")[:3] == (
        409, "ResourceInUseException",
        "Cannot Delete Fargate Profile second because cluster c1 currently has Fargate profile first in status DELETING")
    assert error(create, fargateProfileName="third", selectors=[{"namespace": "c"}], **base)[2].endswith("in status DELETING")
    assert error(eks.describe_fargate_profile, clusterName="c1", fargateProfileName="zzz")[:3] == (
        404, "ResourceNotFoundException", "No Fargate Profile found with name: zzz.")
    assert error(eks.delete_fargate_profile, clusterName="c1", fargateProfileName="zzz")[1] == "ResourceNotFoundException"
    assert error(eks.list_fargate_profiles, clusterName="nope")[:3] == (
        404, "ResourceNotFoundException", "No cluster found for name: nope.")
    assert error(eks.delete_cluster, name="c1")[:3] == (
        409, "ResourceInUseException", "Cluster has Fargate Profiles in ACTIVE/CREATING state")


def test_profile_quota(eks):
    active_cluster(eks)
    for i in range(10):
        active_profile(eks, "c1", f"p{i}")
    code = error(eks.create_fargate_profile, clusterName="c1", fargateProfileName="p10", podExecutionRoleArn=ROLE,
                 selectors=[{"namespace": "x"}])[:2]
    assert code == (400, "ResourceLimitExceededException")


def test_cluster_quota():
    """`up --max-clusters N`: the next CreateCluster is EKS's 400 ResourceLimitExceededException."""
    s = Server("--max-clusters", "1", "--lifecycle-seconds", "0.1").start()
    try:
        eks = s.client()
        eks.create_cluster(name="one", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
        assert error(eks.create_cluster, name="two", roleArn=CLUSTER_ROLE,
                     resourcesVpcConfig={"subnetIds": PUBLIC[:2]})[:3] == (
            400, "ResourceLimitExceededException", "Cluster limit exceeded for account.")
        assert eks.list_clusters()["clusters"] == ["one"]
    finally:
        s.stop()


def test_cluster_error_paths(eks):
    assert error(eks.describe_cluster, name="nope")[:3] == (404, "ResourceNotFoundException", "No cluster found for name: nope.")
    assert error(eks.create_cluster, name="-bad", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})[1] == \
        "InvalidParameterException"
    assert error(eks.create_cluster, name="c", roleArn="arn:invalid:format", resourcesVpcConfig={"subnetIds": PUBLIC[:2]})[:3] == (
        400, "InvalidParameterException", "Invalid Role Arn: 'arn:invalid:format'")
    assert error(eks.create_cluster, name="c", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": ["subnet-x", PUBLIC[0]]})[2] == \
        "The subnet ID 'subnet-x' does not exist"
    assert error(eks.create_cluster, name="c", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": [PUBLIC[0], PRIVATE[0]]})[2] == \
        "Subnets specified must be in at least two different AZs"
    active_cluster(eks, "c")
    assert error(eks.create_cluster, name="c", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})[:3] == (
        409, "ResourceInUseException", "Cluster already exists with name: c")
    assert error(eks.list_clusters, maxResults=101)[:2] == (400, "InvalidParameterException")
    assert error(eks.list_clusters, nextToken="garbage")[:2] == (400, "InvalidParameterException")
    eks.create_nodegroup(clusterName="c", nodegroupName="ng", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE)
    assert error(eks.delete_cluster, name="c")[:3] == (409, "ResourceInUseException", "Cluster has nodegroups attached")


def test_names_and_member_types_are_checked(server, eks):
    active_cluster(eks)
    import json, urllib.request, urllib.error
    def post(path, body):
        req = urllib.request.Request(f"{server.url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        try:
            return urllib.request.urlopen(req).status, None
        except urllib.error.HTTPError as e:
            return e.code, e.headers["x-amzn-errortype"]
    assert post("/clusters/c1/fargate-profiles", {"fargateProfileName": "", "podExecutionRoleArn": ROLE,
                                                  "selectors": [{"namespace": "a"}]}) == (400, "InvalidParameterException")
    assert post("/clusters/c1/node-groups", {"nodegroupName": "a/b", "nodeRole": CLUSTER_ROLE,
                                             "subnets": PRIVATE[:1]}) == (400, "InvalidParameterException")
    assert post("/clusters", {"name": "typed", "roleArn": CLUSTER_ROLE, "resourcesVpcConfig": {"subnetIds": PUBLIC[:2]},
                              "logging": 5}) == (400, "SerializationException")
    assert post("/clusters", {"name": "typed", "roleArn": CLUSTER_ROLE,
                              "resourcesVpcConfig": {"subnetIds": PUBLIC[:2], "endpointPublicAccess": "false"}}) == \
        (400, "SerializationException")
    assert "typed" not in eks.list_clusters()["clusters"]


def test_a_token_is_free_again_once_its_resource_is_gone(eks):
    args = dict(name="tok", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]}, clientRequestToken="t1")
    eks.create_cluster(**args)
    wait_for(lambda: eks.describe_cluster(name="tok")["cluster"]["status"] == "ACTIVE")
    eks.delete_cluster(name="tok")
    wait_for(lambda: "tok" not in eks.list_clusters()["clusters"])
    eks.create_cluster(**args)
    assert eks.describe_cluster(name="tok")["cluster"]["status"] in ("CREATING", "ACTIVE"), "really created again"


def test_tags_errors(eks):
    active_cluster(eks)
    arn = eks.describe_cluster(name="c1")["cluster"]["arn"]
    eks.tag_resource(resourceArn=arn, tags={"a": "1"})
    assert eks.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1"}
    assert error(eks.list_tags_for_resource, resourceArn=arn + "x")[:2] == (404, "NotFoundException")
    assert error(eks.list_tags_for_resource, resourceArn="not-an-arn")[:2] == (400, "BadRequestException")
    assert error(eks.tag_resource, resourceArn=arn, tags={"aws:reserved": "x"})[:2] == (400, "BadRequestException")


def test_nodegroups(eks):
    active_cluster(eks)
    ng = eks.create_nodegroup(clusterName="c1", nodegroupName="system", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE,
                              instanceTypes=["t3.large"], scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2},
                              labels={"role": "system"},
                              taints=[{"key": "dedicated", "value": "system", "effect": "NO_SCHEDULE"}])["nodegroup"]
    assert ng["status"] == "CREATING" and ng["nodegroupArn"].startswith("arn:aws:eks:us-east-1:000000000000:nodegroup/c1/system/")
    wait_for(lambda: eks.describe_nodegroup(clusterName="c1", nodegroupName="system")["nodegroup"]["status"] == "ACTIVE")
    assert eks.list_nodegroups(clusterName="c1")["nodegroups"] == ["system"]
    assert error(eks.create_nodegroup, clusterName="c1", nodegroupName="bad", subnets=PRIVATE[:1], nodeRole=CLUSTER_ROLE,
                 scalingConfig={"minSize": 3, "maxSize": 5, "desiredSize": 2})[2] == \
        "Minimum capacity 3 can't be greater than desired size 2"
    assert error(eks.describe_nodegroup, clusterName="c1", nodegroupName="nope")[:3] == (
        404, "ResourceNotFoundException", "No node group found for name: nope.")
    eks.delete_nodegroup(clusterName="c1", nodegroupName="system")
    wait_for(lambda: eks.list_nodegroups(clusterName="c1")["nodegroups"] == [])


# ---- pagination and idempotency ----

def test_pagination(server, eks):
    names = [f"c{i:02d}" for i in range(25)]
    for n in reversed(names):
        eks.create_cluster(name=n, roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
    pages = list(eks.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 10}))
    assert [len(p["clusters"]) for p in pages] == [10, 10, 5]
    assert [c for p in pages for c in p["clusters"]] == names
    assert "nextToken" not in pages[-1], "never an empty token"
    first = eks.list_clusters(maxResults=3)
    second = eks.list_clusters(maxResults=3, nextToken=first["nextToken"])
    assert second["clusters"] == names[3:6]
    cli = server.aws("eks", "list-clusters", "--page-size", "7")
    assert cli["clusters"] == names
    active_cluster(eks, "paged")
    for i in range(5):
        active_profile(eks, "paged", f"fp-{i}")
    pages = list(eks.get_paginator("list_fargate_profiles").paginate(clusterName="paged", PaginationConfig={"PageSize": 2}))
    assert [p["fargateProfileNames"] for p in pages] == [["fp-0", "fp-1"], ["fp-2", "fp-3"], ["fp-4"]]


def test_client_request_token(eks):
    active_cluster(eks)
    args = dict(clusterName="c1", fargateProfileName="p", podExecutionRoleArn=ROLE, selectors=[{"namespace": "a"}],
                clientRequestToken="token-1")
    first = eks.create_fargate_profile(**args)["fargateProfile"]
    again = eks.create_fargate_profile(**args)["fargateProfile"]
    assert again["fargateProfileArn"] == first["fargateProfileArn"], "a replay gets the same answer"
    status, code, message, _ = error(eks.create_fargate_profile, **{**args, "selectors": [{"namespace": "b"}]})
    assert (status, code) == (400, "InvalidRequestException") and "clientRequestToken" in message


# ---- durability and concurrency ----

def test_restart_in_the_middle_of_creating_and_deleting(tmp_path):
    s = Server("--lifecycle-seconds", "2", data_dir=tmp_path / "state").start()
    try:
        eks = s.client()
        active_cluster(eks, "c1")
        eks.create_fargate_profile(clusterName="c1", fargateProfileName="p", podExecutionRoleArn=ROLE,
                                   selectors=[{"namespace": "a"}])
        s.kill9()
        s.start()
        assert eks.describe_fargate_profile(clusterName="c1", fargateProfileName="p")["fargateProfile"]["status"] == "CREATING"
        wait_for(lambda: eks.describe_fargate_profile(clusterName="c1", fargateProfileName="p")["fargateProfile"]["status"] == "ACTIVE")
        eks.delete_fargate_profile(clusterName="c1", fargateProfileName="p")
        s.kill9()
        s.start()
        assert eks.describe_fargate_profile(clusterName="c1", fargateProfileName="p")["fargateProfile"]["status"] == "DELETING"
        wait_for(lambda: eks.list_fargate_profiles(clusterName="c1")["fargateProfileNames"] == [])
    finally:
        s.stop()


def test_32_concurrent_clients_race_on_the_same_names(server, eks):
    active_cluster(eks)
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(32)
    burst = []

    def worker(i):
        client = server.client()
        # A burst: all 32 create the same profile at once; exactly one may win.
        barrier.wait()
        try:
            client.create_fargate_profile(clusterName="c1", fargateProfileName="burst", podExecutionRoleArn=ROLE,
                                          selectors=[{"namespace": "burst"}])
            outcome = "ok"
        except botocore.exceptions.ClientError as e:
            outcome = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
        with lock:
            burst.append(outcome)
        barrier.wait()
        if i == 0:
            wait_for(lambda: eks.describe_fargate_profile(clusterName="c1", fargateProfileName="burst")
                     ["fargateProfile"]["status"] == "ACTIVE")
            client.delete_fargate_profile(clusterName="c1", fargateProfileName="burst")
            wait_for(lambda: "burst" not in eks.list_fargate_profiles(clusterName="c1")["fargateProfileNames"])
        # Then creates and deletes of two names, racing.
        barrier.wait()
        for round_ in range(5):
            name = f"race-{round_ % 2}"
            for op in ("create", "delete"):
                try:
                    if op == "create":
                        client.create_fargate_profile(clusterName="c1", fargateProfileName=name, podExecutionRoleArn=ROLE,
                                                      selectors=[{"namespace": name}])
                    else:
                        client.delete_fargate_profile(clusterName="c1", fargateProfileName=name)
                    outcome = "ok"
                except botocore.exceptions.ClientError as e:
                    outcome = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
                with lock:
                    results.append((round_, op, name, outcome))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 32 * 10
    allowed = {"ok", (409, "ResourceInUseException"), (404, "ResourceNotFoundException")}
    assert {o for *_, o in results} <= allowed, {o for *_, o in results} - allowed
    assert burst.count("ok") == 1, burst
    assert set(burst) - {"ok"} == {(409, "ResourceInUseException")}
    # Whatever is left settles, and stays consistent.
    def settled():
        names = eks.list_fargate_profiles(clusterName="c1")["fargateProfileNames"]
        try:
            statuses = [eks.describe_fargate_profile(clusterName="c1", fargateProfileName=n)["fargateProfile"]["status"]
                        for n in names]
        except eks.exceptions.ResourceNotFoundException:
            return False  # one finished deleting between the list and the describe
        return all(s == "ACTIVE" for s in statuses) and (names, statuses)
    names, _ = wait_for(settled)
    for n in names:
        eks.delete_fargate_profile(clusterName="c1", fargateProfileName=n)
        wait_for(lambda: n not in eks.list_fargate_profiles(clusterName="c1")["fargateProfileNames"])
    eks.delete_cluster(name="c1")


def test_strict_auth_checks_signatures():
    s = Server("--auth", "strict", "--access-key", "AKIDLOCAL:secret-local").start()
    try:
        good = s.client(key="AKIDLOCAL", secret="secret-local")
        assert good.list_clusters()["clusters"] == []
        good.create_cluster(name="c1", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
        assert good.list_tags_for_resource(resourceArn="arn:aws:eks:us-east-1:000000000000:cluster/c1")["tags"] == {}
        status, code, _, _ = error(s.client(key="AKIDLOCAL", secret="wrong").list_clusters)
        assert (status, code) == (403, "InvalidSignatureException")
        status, code, message, _ = error(s.client(key="AKIDOTHER", secret="x").list_clusters)
        assert (status, code, message) == (403, "UnrecognizedClientException",
                                           "The security token included in the request is invalid.")
        import urllib.request, urllib.error
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(urllib.request.Request(f"{s.url}/_localfargate/reset", data=b"", method="POST"))
        assert unsigned.value.code == 403, "reset is authenticated in strict mode"
        assert good.list_clusters()["clusters"] == ["c1"]
        # A body other than the one signed is refused.
        def swap_body(request, **kwargs):
            request.body = request.body.replace(b'"evil"', b'"other"')
        good.meta.events.register("before-send.eks.CreateFargateProfile", swap_body)
        status, code, _, _ = error(good.create_fargate_profile, clusterName="c1", fargateProfileName="evil",
                                   podExecutionRoleArn=ROLE, selectors=[{"namespace": "a"}])
        assert (status, code) == (403, "InvalidSignatureException")
    finally:
        s.stop()


def test_aws_eks_update_kubeconfig_then_kubectl(server, eks, tmp_path):
    """The guides' path to kubectl: update-kubeconfig writes an exec plugin running
    `aws eks get-token`, whose presigned STS token the cluster's API accepts."""
    import json, os, subprocess
    from conftest import AWS
    active_cluster(eks, "kc")
    config = tmp_path / "config"
    server.aws("eks", "update-kubeconfig", "--name", "kc", "--kubeconfig", str(config))
    text = config.read_text()
    assert "get-token" in text and eks.describe_cluster(name="kc")["cluster"]["endpoint"] in text
    env = dict(os.environ, PATH=f"{AWS.parent}:{os.environ['PATH']}", AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    kubectl = ["/usr/lib/google-cloud-sdk/bin/kubectl.1.31", "--kubeconfig", str(config)]
    wait_for(lambda: subprocess.run(kubectl + ["get", "--raw", "/healthz"], env=env, capture_output=True).returncode == 0)
    out = subprocess.run(kubectl + ["version", "-o", "json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["serverVersion"]["minor"] == "34"


def test_strict_auth_verifies_get_token_signatures(tmp_path):
    """With --auth strict, the cluster API checks the presigned STS URL inside an
    `aws eks get-token` token: right keys and the right cluster, or 401."""
    import os, subprocess
    from conftest import AWS
    s = Server("--auth", "strict", "--access-key", "AKIDLOCAL:secret-local", "--lifecycle-seconds", "0.1").start()
    try:
        eks = s.client(key="AKIDLOCAL", secret="secret-local")
        for name in ("kc", "other"):
            eks.create_cluster(name=name, roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]})
            wait_for(lambda: eks.describe_cluster(name=name)["cluster"]["status"] == "ACTIVE")

        def env_for(secret):
            return dict(os.environ, PATH=f"{AWS.parent}:{os.environ['PATH']}", AWS_ACCESS_KEY_ID="AKIDLOCAL",
                        AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="",
                        AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        config = tmp_path / "config"
        subprocess.run([str(AWS), "--endpoint-url", s.url, "eks", "update-kubeconfig", "--name", "kc",
                        "--kubeconfig", str(config)], env=env_for("secret-local"), check=True, capture_output=True)
        kubectl = ["/usr/lib/google-cloud-sdk/bin/kubectl.1.31", "--kubeconfig", str(config)]
        wait_for(lambda: subprocess.run(kubectl + ["get", "namespace", "default"], env=env_for("secret-local"),
                                        capture_output=True).returncode == 0)
        wrong = subprocess.run(kubectl + ["get", "namespaces"], env=env_for("not-the-secret"),
                               capture_output=True, text=True)
        assert wrong.returncode != 0
        assert "Unauthorized" in wrong.stderr or "must be logged in" in wrong.stderr, wrong.stderr
        # A genuine token for cluster "kc" does not open cluster "other".
        token = subprocess.run([str(AWS), "eks", "get-token", "--cluster-name", "kc", "--output", "text",
                                "--query", "status.token"], env=env_for("secret-local"), check=True,
                               capture_output=True, text=True).stdout.strip()
        endpoint = eks.describe_cluster(name="other")["cluster"]["endpoint"]
        other = subprocess.run(["/usr/lib/google-cloud-sdk/bin/kubectl.1.31", "--server", endpoint,
                                "--insecure-skip-tls-verify", "--token", token, "get", "namespaces"],
                               capture_output=True, text=True)
        assert other.returncode != 0 and ("Unauthorized" in other.stderr or "logged in" in other.stderr), other.stderr
    finally:
        s.stop()
