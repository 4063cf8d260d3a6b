"""EKS access entries against boto3 and the aws CLI: accessConfig on CreateCluster, the creator's
entry, the access-entry and access-policy operations, AWS's errors, and `aws eks get-token`
callers mapped by their entries in the cluster's Kubernetes API."""

import json
import os
import subprocess


from conftest import AWS, CLUSTER_ROLE, PUBLIC, Server, client_error, wait_for

ACCOUNT = "000000000000"
DEFAULT_IDENTITY = f"arn:aws:iam::{ACCOUNT}:user/localfargate"
POLICY = "arn:aws:eks::aws:cluster-access-policy/"
# EKS's text for an access entry that is not there (terraform-aws-modules/terraform-aws-eks#3024).
NOT_FOUND = ("The specified principalArn could not be found. You can view your available access entries with "
             "'list-access-entries'.")
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
DEV_ROLE = f"arn:aws:iam::{ACCOUNT}:role/dev"


error = client_error


def cluster(eks, name, mode=None, bootstrap=None):
    access = {}
    if mode:
        access["authenticationMode"] = mode
    if bootstrap is not None:
        access["bootstrapClusterCreatorAdminPermissions"] = bootstrap
    kw = {"accessConfig": access} if access else {}
    eks.create_cluster(name=name, roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PUBLIC[:2]}, **kw)
    wait_for(lambda: eks.describe_cluster(name=name)["cluster"]["status"] == "ACTIVE")
    return eks.describe_cluster(name=name)["cluster"]


def test_access_config_defaults_and_the_creators_entry(eks):
    default = cluster(eks, "legacy")
    assert default["accessConfig"] == {"bootstrapClusterCreatorAdminPermissions": True,
                                       "authenticationMode": "CONFIG_MAP"}
    status, code, message = error(eks.list_access_entries, clusterName="legacy")
    assert (status, code, message) == (
        400, "InvalidRequestException",
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.")
    status, code, message = error(eks.create_access_entry, clusterName="legacy", principalArn=ALICE)
    assert (status, code) == (400, "InvalidRequestException")

    api = cluster(eks, "api", mode="API")
    assert api["accessConfig"]["authenticationMode"] == "API"
    assert eks.list_access_entries(clusterName="api")["accessEntries"] == [DEFAULT_IDENTITY]
    entry = eks.describe_access_entry(clusterName="api", principalArn=DEFAULT_IDENTITY)["accessEntry"]
    assert entry["username"] == DEFAULT_IDENTITY and entry["type"] == "STANDARD"
    assert entry["kubernetesGroups"] == []
    assert entry["accessEntryArn"].startswith(
        f"arn:aws:eks:us-east-1:{ACCOUNT}:access-entry/api/user/{ACCOUNT}/localfargate/")
    associated = eks.list_associated_access_policies(clusterName="api", principalArn=DEFAULT_IDENTITY)
    assert [(p["policyArn"], p["accessScope"]["type"]) for p in associated["associatedAccessPolicies"]] == [
        (POLICY + "AmazonEKSClusterAdminPolicy", "cluster")]

    cluster(eks, "no-bootstrap", mode="API_AND_CONFIG_MAP", bootstrap=False)
    assert eks.list_access_entries(clusterName="no-bootstrap")["accessEntries"] == []
    status, code, message = error(eks.create_cluster, name="bad", roleArn=CLUSTER_ROLE,
                                  resourcesVpcConfig={"subnetIds": PUBLIC[:2]},
                                  accessConfig={"authenticationMode": "CONFIG_MAP",
                                                "bootstrapClusterCreatorAdminPermissions": False})
    assert (status, code, message) == (
        400, "InvalidParameterException",
        "bootstrapClusterCreatorAdminPermissions must be true if cluster authentication mode is set to CONFIG_MAP")


def test_access_entry_lifecycle_and_errors(eks):
    cluster(eks, "c1", mode="API", bootstrap=False)
    created = eks.create_access_entry(clusterName="c1", principalArn=ALICE, kubernetesGroups=["devs", "devs"],
                                      tags={"team": "a"})["accessEntry"]
    assert created["username"] == ALICE and created["kubernetesGroups"] == ["devs"]
    assert created["tags"] == {"team": "a"}
    role = eks.create_access_entry(clusterName="c1", principalArn=DEV_ROLE)["accessEntry"]
    assert role["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/{{{{SessionName}}}}"
    node = eks.create_access_entry(clusterName="c1", principalArn=f"arn:aws:iam::{ACCOUNT}:role/node",
                                   type="EC2_LINUX")["accessEntry"]
    assert node["username"] == "system:node:{{EC2PrivateDNSName}}" and node["type"] == "EC2_LINUX"
    # Access policies are for STANDARD entries only.
    status, code, message = error(eks.associate_access_policy, clusterName="c1", principalArn=node["principalArn"],
                                  policyArn=POLICY + "AmazonEKSViewPolicy", accessScope={"type": "cluster"})
    assert (status, code, message) == (
        400, "InvalidParameterException", 'This operation can only be performed on Access Entries with a type of "STANDARD".')

    status, code, message = error(eks.create_access_entry, clusterName="c1", principalArn=ALICE)
    assert (status, code, message) == (409, "ResourceInUseException",
                                       "The specified access entry resource is already in use on this cluster.")
    status, code, message = error(eks.create_access_entry, clusterName="c1",
                                  principalArn=f"arn:aws:iam::{ACCOUNT}:user/bob", kubernetesGroups=["system:masters"])
    assert (status, code, message) == (400, "InvalidParameterException",
                                       "The kubernetes group name system:masters is invalid, it cannot start with system:")
    status, code, message = error(eks.create_access_entry, clusterName="c1", principalArn="arn:aws:iam::1:nope/x")
    assert (status, code, message) == (400, "InvalidParameterException",
                                       "The specified principalArn is invalid: invalid principal.")
    status, code, message = error(eks.describe_access_entry, clusterName="c1",
                                  principalArn=f"arn:aws:iam::{ACCOUNT}:user/nobody")
    assert (status, code, message) == (404, "ResourceNotFoundException", NOT_FOUND)
    status, code, message = error(eks.describe_access_entry, clusterName="nope", principalArn=ALICE)
    assert (status, code, message) == (404, "ResourceNotFoundException", "No cluster found for name: nope.")

    updated = eks.update_access_entry(clusterName="c1", principalArn=ALICE, kubernetesGroups=["ops"],
                                      username="alice")["accessEntry"]
    assert (updated["username"], updated["kubernetesGroups"]) == ("alice", ["ops"])
    assert updated["modifiedAt"] >= updated["createdAt"]
    status, code, message = error(eks.update_access_entry, clusterName="c1", principalArn=ALICE,
                                  username="system:admin")
    assert (status, code, message) == (400, "InvalidParameterException", "The username must not begin with system:")

    listed = eks.list_access_entries(clusterName="c1", maxResults=2)
    assert len(listed["accessEntries"]) == 2 and "nextToken" in listed
    rest = eks.list_access_entries(clusterName="c1", nextToken=listed["nextToken"])["accessEntries"]
    assert sorted(listed["accessEntries"] + rest) == sorted([ALICE, DEV_ROLE, f"arn:aws:iam::{ACCOUNT}:role/node"])

    eks.delete_access_entry(clusterName="c1", principalArn=ALICE)
    status, code, _ = error(eks.delete_access_entry, clusterName="c1", principalArn=ALICE)
    assert (status, code) == (404, "ResourceNotFoundException")
    # An entry's ARN takes tags like other EKS resources.
    eks.tag_resource(resourceArn=role["accessEntryArn"], tags={"k": "v"})
    assert eks.list_tags_for_resource(resourceArn=role["accessEntryArn"])["tags"] == {"k": "v"}


def test_access_policies(server, eks):
    policies = server.aws("eks", "list-access-policies")["accessPolicies"]
    names = [p["name"] for p in policies]
    for name in ("AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"):
        assert {"name": name, "arn": POLICY + name} in policies
    assert names == sorted(names)
    page = eks.list_access_policies(maxResults=5)
    assert len(page["accessPolicies"]) == 5 and "nextToken" in page

    cluster(eks, "c2", mode="API_AND_CONFIG_MAP", bootstrap=False)
    server.aws("eks", "create-access-entry", "--cluster-name", "c2", "--principal-arn", ALICE)
    associated = server.aws("eks", "associate-access-policy", "--cluster-name", "c2", "--principal-arn", ALICE,
                            "--policy-arn", POLICY + "AmazonEKSViewPolicy",
                            "--access-scope", "type=namespace,namespaces=team,other")
    assert associated["clusterName"] == "c2" and associated["principalArn"] == ALICE
    assert associated["associatedAccessPolicy"]["accessScope"] == {"type": "namespace", "namespaces": ["other", "team"]}
    eks.associate_access_policy(clusterName="c2", principalArn=ALICE, policyArn=POLICY + "AmazonEKSEditPolicy",
                                accessScope={"type": "cluster"})
    listed = eks.list_associated_access_policies(clusterName="c2", principalArn=ALICE)["associatedAccessPolicies"]
    assert [p["policyArn"] for p in listed] == [POLICY + "AmazonEKSEditPolicy", POLICY + "AmazonEKSViewPolicy"]
    viewers = eks.list_access_entries(clusterName="c2", associatedPolicyArn=POLICY + "AmazonEKSViewPolicy")
    assert viewers["accessEntries"] == [ALICE]

    status, code, _ = error(eks.associate_access_policy, clusterName="c2", principalArn=ALICE,
                            policyArn=POLICY + "NoSuchPolicy", accessScope={"type": "cluster"})
    assert (status, code) == (400, "InvalidParameterException")
    status, code, _ = error(eks.associate_access_policy, clusterName="c2", principalArn=ALICE,
                            policyArn=POLICY + "AmazonEKSViewPolicy", accessScope={"type": "namespace"})
    assert (status, code) == (400, "InvalidParameterException")
    status, code, message = error(eks.associate_access_policy, clusterName="c2",
                                  principalArn=f"arn:aws:iam::{ACCOUNT}:user/nobody",
                                  policyArn=POLICY + "AmazonEKSViewPolicy", accessScope={"type": "cluster"})
    assert (status, code, message) == (404, "ResourceNotFoundException", NOT_FOUND)

    eks.disassociate_access_policy(clusterName="c2", principalArn=ALICE, policyArn=POLICY + "AmazonEKSEditPolicy")
    listed = eks.list_associated_access_policies(clusterName="c2", principalArn=ALICE)["associatedAccessPolicies"]
    assert [p["policyArn"] for p in listed] == [POLICY + "AmazonEKSViewPolicy"]
    status, code, _ = error(eks.disassociate_access_policy, clusterName="c2", principalArn=ALICE,
                            policyArn=POLICY + "AmazonEKSEditPolicy")
    assert (status, code) == (404, "ResourceNotFoundException")
    # DeleteCluster takes the entries with it: a new cluster of the name starts with none.
    eks.delete_cluster(name="c2")
    wait_for(lambda: "c2" not in eks.list_clusters()["clusters"])
    cluster(eks, "c2", mode="API", bootstrap=False)
    assert eks.list_access_entries(clusterName="c2")["accessEntries"] == []


def test_strict_principals_create_and_are_mapped(tmp_path):
    """With --auth strict and keys naming principals, the creator is the key's principal, and a
    get-token caller is whatever its principal's access entry says (401 without one)."""
    admin = f"arn:aws:iam::{ACCOUNT}:user/admin"
    s = Server("--auth", "strict", "--lifecycle-seconds", "0.1",
               "--access-key", f"AKIDADMIN:secret-admin:{admin}",
               "--access-key", f"AKIDALICE:secret-alice:{ALICE}").start()
    try:
        eks = s.client(key="AKIDADMIN", secret="secret-admin")
        cluster(eks, "kc", mode="API")
        assert eks.list_access_entries(clusterName="kc")["accessEntries"] == [admin]

        def kubectl(key, secret, *args):
            env = dict(os.environ, PATH=f"{AWS.parent}:{os.environ['PATH']}", AWS_ACCESS_KEY_ID=key,
                       AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="",
                       AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
            config = tmp_path / "config"
            if not config.exists():
                subprocess.run([str(AWS), "--endpoint-url", s.url, "eks", "update-kubeconfig", "--name", "kc",
                                "--kubeconfig", str(config)], env=env, check=True, capture_output=True)
            # One discovery cache, as a user's kubectl keeps it: a refused request then reports
            # the server's Status ("Unauthorized").
            return subprocess.run(["/usr/lib/google-cloud-sdk/bin/kubectl.1.31", "--kubeconfig", str(config),
                                   "--cache-dir", str(tmp_path / "cache"), *args],
                                  env=env, capture_output=True, text=True)

        wait_for(lambda: kubectl("AKIDADMIN", "secret-admin", "get", "namespace", "default").returncode == 0)
        who = kubectl("AKIDADMIN", "secret-admin", "auth", "whoami", "-o", "json")
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == admin, who.stderr
        denied = kubectl("AKIDALICE", "secret-alice", "get", "pods")
        assert denied.returncode != 0
        assert "error: You must be logged in to the server (Unauthorized)" in denied.stderr, denied.stderr
        eks.create_access_entry(clusterName="kc", principalArn=ALICE, username="alice")
        eks.associate_access_policy(clusterName="kc", principalArn=ALICE, policyArn=POLICY + "AmazonEKSViewPolicy",
                                    accessScope={"type": "namespace", "namespaces": ["default"]})
        listed = kubectl("AKIDALICE", "secret-alice", "get", "pods", "-n", "default")
        assert listed.returncode == 0, listed.stderr
        other = kubectl("AKIDALICE", "secret-alice", "get", "pods", "-n", "kube-system")
        assert other.returncode != 0
        assert ('pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
                'in the namespace "kube-system"') in other.stderr, other.stderr
    finally:
        s.stop()
