"""EKS add-ons with boto3 and the aws CLI: versions per Kubernetes version, configuration
schemas, create/update/delete with their waiters, the checks EKS makes, tags; and the
eks-pod-identity-agent saying it does not run on Fargate."""

import json


from conftest import CLUSTER_ROLE, PRIVATE, active_cluster, client_error, wait_for

FAST = {"Delay": 1, "MaxAttempts": 30}


error = client_error


def test_addon_versions_and_schemas(server, eks):
    addons = eks.describe_addon_versions(kubernetesVersion="1.35")["addons"]
    assert sorted(a["addonName"] for a in addons) == ["coredns", "eks-pod-identity-agent", "kube-proxy", "vpc-cni"]
    for a in addons:
        defaults = [v["addonVersion"] for v in a["addonVersions"]
                    if any(c["defaultVersion"] for c in v["compatibilities"])]
        assert len(defaults) == 1, a["addonName"]
        assert all(c["clusterVersion"] == "1.35" for v in a["addonVersions"] for c in v["compatibilities"])
    proxy = eks.describe_addon_versions(addonName="kube-proxy", kubernetesVersion="1.34")["addons"][0]
    assert all(v["addonVersion"].startswith("v1.34.") for v in proxy["addonVersions"])
    agent = eks.describe_addon_versions(addonName="eks-pod-identity-agent")["addons"][0]
    assert "fargate" not in agent["addonVersions"][0]["computeTypes"]
    coredns = eks.describe_addon_versions(addonName="coredns")["addons"][0]
    assert "fargate" in coredns["addonVersions"][0]["computeTypes"]

    cli = server.aws("eks", "describe-addon-versions", "--addon-name", "coredns", "--kubernetes-version", "1.34")
    version = cli["addons"][0]["addonVersions"][0]["addonVersion"]
    conf = server.aws("eks", "describe-addon-configuration", "--addon-name", "coredns", "--addon-version", version)
    schema = json.loads(conf["configurationSchema"])
    props = schema["definitions"]["Config"]["properties"]
    assert {"computeType", "replicaCount", "resources", "tolerations"} <= set(props)
    status, code, _ = error(eks.describe_addon_configuration, addonName="coredns", addonVersion="v0.0.0")
    assert code == "ResourceNotFoundException"


def test_addon_lifecycle_with_waiters(server, eks):
    active_cluster(eks, "ad")
    created = eks.create_addon(clusterName="ad", addonName="coredns", tags={"team": "dns"},
                               configurationValues='{"computeType": "Fargate", "replicaCount": 3}')["addon"]
    assert created["status"] == "CREATING" and created["addonVersion"] == "v1.12.4-eksbuild.1"
    assert created["addonArn"].startswith("arn:aws:eks:us-east-1:000000000000:addon/ad/coredns/")
    eks.get_waiter("addon_active").wait(clusterName="ad", addonName="coredns", WaiterConfig=FAST)
    described = eks.describe_addon(clusterName="ad", addonName="coredns")["addon"]
    assert described["status"] == "ACTIVE"
    assert json.loads(described["configurationValues"])["computeType"] == "Fargate"
    assert eks.list_addons(clusterName="ad")["addons"] == ["coredns"]
    assert eks.list_tags_for_resource(resourceArn=created["addonArn"])["tags"] == {"team": "dns"}
    status, code, _ = error(eks.create_addon, clusterName="ad", addonName="coredns")
    assert (status, code) == (409, "ResourceInUseException")

    u = server.aws("eks", "update-addon", "--cluster-name", "ad", "--addon-name", "coredns",
                   "--addon-version", "v1.13.2-eksbuild.1", "--resolve-conflicts", "OVERWRITE")["update"]
    assert u["type"] == "AddonUpdate" and {"type": "AddonVersion", "value": "v1.13.2-eksbuild.1"} in u["params"]
    status, code, _ = error(eks.update_addon, clusterName="ad", addonName="coredns", addonVersion="v1.12.4-eksbuild.1")
    assert code == "ResourceInUseException"
    wait_for(lambda: eks.describe_update(name="ad", updateId=u["id"], addonName="coredns")["update"]["status"]
             == "Successful")
    eks.get_waiter("addon_active").wait(clusterName="ad", addonName="coredns", WaiterConfig=FAST)
    assert eks.describe_addon(clusterName="ad", addonName="coredns")["addon"]["addonVersion"] == "v1.13.2-eksbuild.1"
    assert eks.list_updates(name="ad", addonName="coredns")["updateIds"] == [u["id"]]

    deleted = eks.delete_addon(clusterName="ad", addonName="coredns", preserve=True)["addon"]
    assert deleted["status"] == "DELETING"
    eks.get_waiter("addon_deleted").wait(clusterName="ad", addonName="coredns", WaiterConfig=FAST)
    status, code, _ = error(eks.describe_addon, clusterName="ad", addonName="coredns")
    assert (status, code) == (404, "ResourceNotFoundException")


def test_addon_bad_input(server, eks):
    eks.create_cluster(name="old", roleArn=CLUSTER_ROLE, version="1.29", resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    wait_for(lambda: eks.describe_cluster(name="old")["cluster"]["status"] == "ACTIVE")
    status, code, message = error(eks.create_addon, clusterName="old", addonName="nope")
    assert (status, code) == (400, "InvalidParameterException")
    status, code, message = error(eks.create_addon, clusterName="old", addonName="coredns",
                                  addonVersion="v1.13.2-eksbuild.1")
    assert (code, message) == ("InvalidParameterException", "Addon version specified is not supported")
    status, code, message = error(eks.create_addon, clusterName="old", addonName="coredns",
                                  configurationValues='{"replicas": 2}')
    assert code == "InvalidParameterException"
    assert message.startswith("ConfigurationValue provided in request is not supported: Json schema validation failed")
    assert "$.replicas" in message
    status, code, _ = error(eks.create_addon, clusterName="old", addonName="vpc-cni", resolveConflicts="MAYBE")
    assert code == "InvalidParameterException"
    status, code, _ = error(eks.create_addon, clusterName="missing", addonName="coredns")
    assert (status, code) == (404, "ResourceNotFoundException")
    # Nothing half-made.
    assert eks.list_addons(clusterName="old")["addons"] == []
    # The kube-proxy default follows the cluster's version.
    a = eks.create_addon(clusterName="old", addonName="kube-proxy")["addon"]
    assert a["addonVersion"].startswith("v1.29.")


def test_pod_identity_agent_says_it_does_not_run_on_fargate(server, eks):
    active_cluster(eks, "fg")
    a = eks.create_addon(clusterName="fg", addonName="eks-pod-identity-agent")["addon"]
    issues = a["health"]["issues"]
    assert issues and "does not run on AWS Fargate" in issues[0]["message"]
    eks.get_waiter("addon_active").wait(clusterName="fg", addonName="eks-pod-identity-agent", WaiterConfig=FAST)
    # With a node group, the agent has somewhere to run.
    eks.create_nodegroup(clusterName="fg", nodegroupName="ng", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE)
    assert eks.describe_addon(clusterName="fg", addonName="eks-pod-identity-agent")["addon"]["health"] == {"issues": []}
