"""Cluster and node group updates, versions, insights and the operations that answer with a local
behaviour, against the aws CLI and boto3 (waiters and paginators included); and a walk over every
operation of botocore's EKS model, none of which may be unknown."""

import gzip
import json
import os
import urllib.error
import urllib.request

import botocore
import botocore.exceptions

from conftest import CLUSTER_ROLE, PRIVATE, Server, active_cluster, client_error, wait_for

FAST = {"Delay": 1, "MaxAttempts": 30}


error = client_error


def update_done(eks, cluster, update_id, **kw):
    return wait_for(lambda: (u := eks.describe_update(name=cluster, updateId=update_id, **kw)["update"])
                    ["status"] != "InProgress" and u)


def test_versions_as_eks_offers_them(server, eks):
    versions = eks.describe_cluster_versions()["clusterVersions"]
    names = [v["clusterVersion"] for v in versions]
    assert names[:2] == ["1.35", "1.34"] and "1.29" in names and "1.28" not in names
    default = [v for v in versions if v["defaultVersion"]]
    assert [v["clusterVersion"] for v in default] == ["1.34"]
    statuses = {v["clusterVersion"]: v["versionStatus"] for v in versions}
    assert statuses["1.35"] == "STANDARD_SUPPORT" and statuses["1.31"] == "EXTENDED_SUPPORT"
    assert [v["clusterVersion"] for v in eks.describe_cluster_versions(defaultOnly=True)["clusterVersions"]] == ["1.34"]
    only = eks.describe_cluster_versions(clusterVersions=["1.33"])["clusterVersions"]
    assert [v["clusterVersion"] for v in only] == ["1.33"]
    extended = eks.describe_cluster_versions(versionStatus="EXTENDED_SUPPORT")["clusterVersions"]
    assert {v["clusterVersion"] for v in extended} == {"1.29", "1.30", "1.31"}
    pages = list(eks.get_paginator("describe_cluster_versions").paginate(PaginationConfig={"PageSize": 2}))
    assert [v["clusterVersion"] for p in pages for v in p["clusterVersions"]] == names and len(pages) == 4

    # CreateCluster takes 1.35 and defaults to 1.34; 1.28 is gone.
    eks.create_cluster(name="new", roleArn=CLUSTER_ROLE, version="1.35",
                       resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    assert eks.describe_cluster(name="new")["cluster"]["version"] == "1.35"
    eks.create_cluster(name="dflt", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    assert eks.describe_cluster(name="dflt")["cluster"]["version"] == "1.34"
    status, code, message = error(eks.create_cluster, name="old", roleArn=CLUSTER_ROLE, version="1.28",
                                  resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    assert (status, code) == (400, "InvalidParameterException") and "1.28" in message


def test_update_cluster_config_logging_with_the_aws_cli(server, eks):
    active_cluster(eks, "logs")
    out = server.aws("eks", "update-cluster-config", "--name", "logs", "--logging",
                     '{"clusterLogging":[{"types":["api","audit"],"enabled":true}]}')
    update = out["update"]
    assert update["type"] == "LoggingUpdate" and update["status"] == "InProgress"
    assert update["params"][0]["type"] == "ClusterLogging"
    cluster = eks.describe_cluster(name="logs")["cluster"]
    assert cluster["status"] == "UPDATING"
    assert cluster["endpoint"].startswith("https://") and cluster["certificateAuthority"]["data"]
    # A second update while this one runs: AWS's ResourceInUseException.
    status, code, message = error(eks.update_cluster_config, name="logs",
                                  resourcesVpcConfig={"endpointPrivateAccess": True})
    assert (status, code) == (409, "ResourceInUseException")
    assert message == f"Cannot EndpointAccessUpdate because cluster logs currently has update {update['id']} in progress"
    done = update_done(eks, "logs", update["id"])
    assert done["status"] == "Successful"
    eks.get_waiter("cluster_active").wait(name="logs", WaiterConfig=FAST)
    logging = eks.describe_cluster(name="logs")["cluster"]["logging"]["clusterLogging"]
    enabled = [g for g in logging if g["enabled"]][0]["types"]
    assert enabled == ["api", "audit"]
    listed = server.aws("eks", "list-updates", "--name", "logs")
    assert listed["updateIds"] == [update["id"]]
    described = server.aws("eks", "describe-update", "--name", "logs", "--update-id", update["id"])
    assert described["update"]["status"] == "Successful"
    # The same logging again: nothing to change.
    status, code, message = error(eks.update_cluster_config, name="logs",
                                  logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    assert (code, message) == ("InvalidParameterException", "No changes needed for the logging config provided")


def test_the_seed_guides_control_plane_logging_command(server, eks):
    active_cluster(eks, "my-cluster")
    u = server.aws("eks", "update-cluster-config", "--name", "my-cluster", "--logging",
                   '{"clusterLogging":[{"types":["api","audit","authenticator","controllerManager","scheduler"],'
                   '"enabled":true}]}')["update"]
    update_done(eks, "my-cluster", u["id"])
    wait_for(lambda: eks.describe_cluster(name="my-cluster")["cluster"]["status"] == "ACTIVE")
    server.aws("eks", "wait", "cluster-active", "--name", "my-cluster")
    logging = server.aws("eks", "describe-cluster", "--name", "my-cluster")["cluster"]["logging"]
    assert logging == {"clusterLogging": [{"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                                           "enabled": True}]}


def test_update_cluster_config_endpoint_access_and_auth_mode(server, eks):
    active_cluster(eks, "ep")
    status, code, message = error(eks.update_cluster_config, name="ep",
                                  logging={"clusterLogging": [{"types": ["api"], "enabled": True}]},
                                  accessConfig={"authenticationMode": "API"})
    assert (code, message) == ("InvalidParameterException", "Only one type of update can be allowed.")
    u = eks.update_cluster_config(name="ep", resourcesVpcConfig={
        "endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]})["update"]
    assert u["type"] == "EndpointAccessUpdate"
    assert {p["type"] for p in u["params"]} == {"EndpointPublicAccess", "EndpointPrivateAccess", "PublicAccessCidrs"}
    update_done(eks, "ep", u["id"])
    vpc = eks.describe_cluster(name="ep")["cluster"]["resourcesVpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    # The same again: EKS's text, the CIDRs in brackets.
    status, code, message = error(eks.update_cluster_config, name="ep", resourcesVpcConfig={
        "endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]})
    assert (status, code, message) == (400, "InvalidParameterException", (
        "Cluster is already at the desired configuration with endpointPrivateAccess: true , endpointPublicAccess: "
        "true, and Public Endpoint Restrictions: [203.0.113.0/24]"))
    status, code, message = error(eks.update_cluster_config, name="ep", resourcesVpcConfig={"publicAccessCidrs": ["nope"]})
    assert code == "InvalidParameterException" and "nope" in message

    u = eks.update_cluster_config(name="ep", accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})["update"]
    assert u["type"] == "AccessConfigUpdate"
    update_done(eks, "ep", u["id"])
    assert eks.describe_cluster(name="ep")["cluster"]["accessConfig"]["authenticationMode"] == "API_AND_CONFIG_MAP"
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    status, code, message = error(eks.update_cluster_config, name="ep", accessConfig={"authenticationMode": "CONFIG_MAP"})
    assert code == "InvalidParameterException"
    assert message == "Unsupported authentication mode update from API_AND_CONFIG_MAP to CONFIG_MAP"

    u = eks.update_cluster_config(name="ep", upgradePolicy={"supportType": "EXTENDED"})["update"]
    assert u["type"] == "UpgradePolicyUpdate"
    update_done(eks, "ep", u["id"])
    assert eks.describe_cluster(name="ep")["cluster"]["upgradePolicy"] == {"supportType": "EXTENDED"}
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    u = eks.update_cluster_config(name="ep", zonalShiftConfig={"enabled": True})["update"]
    assert u["type"] == "ZonalShiftConfigUpdate"
    update_done(eks, "ep", u["id"])
    assert eks.describe_cluster(name="ep")["cluster"]["zonalShiftConfig"] == {"enabled": True}
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    u = eks.update_cluster_config(name="ep", deletionProtection=True)["update"]
    assert u["type"] == "DeletionProtectionUpdate"
    update_done(eks, "ep", u["id"])
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    assert eks.describe_cluster(name="ep")["cluster"]["deletionProtection"] is True
    status, code, message = error(eks.delete_cluster, name="ep")
    assert code == "InvalidRequestException" and "deletion protection" in message
    u = eks.update_cluster_config(name="ep", deletionProtection=False)["update"]
    update_done(eks, "ep", u["id"])
    wait_for(lambda: eks.describe_cluster(name="ep")["cluster"]["status"] == "ACTIVE")
    eks.delete_cluster(name="ep")


def test_deletion_protection_holds_only_a_cluster_that_is_up():
    """EKS's deletion-protection page: an ACTIVE cluster with it is refused (InvalidRequestException);
    one still CREATING (or FAILED, DELETING) is deleted anyway."""
    s = Server("--lifecycle-seconds", "60").start()
    try:
        eks = s.client()
        eks.create_cluster(name="dp", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PRIVATE[:2]},
                           deletionProtection=True)
        cluster = eks.describe_cluster(name="dp")["cluster"]
        assert (cluster["status"], cluster["deletionProtection"]) == ("CREATING", True)
        assert eks.delete_cluster(name="dp")["cluster"]["status"] == "DELETING"
    finally:
        s.stop()


def test_update_cluster_version_one_minor_at_a_time(server, eks):
    eks.create_cluster(name="up", roleArn=CLUSTER_ROLE, version="1.33", resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    eks.get_waiter("cluster_active").wait(name="up", WaiterConfig=FAST)
    status, code, message = error(eks.update_cluster_version, name="up", version="1.35")
    assert (status, code, message) == (400, "InvalidParameterException",
                                       "Unsupported Kubernetes minor version update from 1.33 to 1.35")
    status, code, message = error(eks.update_cluster_version, name="up", version="1.33")
    assert code == "InvalidParameterException"
    u = server.aws("eks", "update-cluster-version", "--name", "up", "--kubernetes-version", "1.34")["update"]
    assert u["type"] == "VersionUpdate" and {"type": "Version", "value": "1.34"} in u["params"]
    # Until the update is done the cluster is at its old version.
    assert eks.describe_cluster(name="up")["cluster"]["version"] == "1.33"
    status, code, message = error(eks.update_cluster_version, name="up", version="1.34")
    assert code == "ResourceInUseException" and u["id"] in message
    status, code, message = error(eks.delete_cluster, name="up")
    assert (code, message) == ("ResourceInUseException",
                               "Cannot delete because cluster up currently has an update in progress")
    assert update_done(eks, "up", u["id"])["status"] == "Successful"
    eks.get_waiter("cluster_active").wait(name="up", WaiterConfig=FAST)
    assert eks.describe_cluster(name="up")["cluster"]["version"] == "1.34"
    # The cluster's Kubernetes API reports its new version.
    token = json.load(urllib.request.urlopen(f"{server.url}/_localfargate/clusters/up/token"))["token"]
    endpoint = eks.describe_cluster(name="up")["cluster"]["endpoint"]
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def minor():
        try:
            req = urllib.request.Request(f"{endpoint}/version", headers={"Authorization": f"Bearer {token}"})
            return json.load(urllib.request.urlopen(req, context=ctx, timeout=2))["minor"]
        except OSError:
            return None
    wait_for(lambda: minor() == "34", timeout=20)


def test_cancel_update(server, eks):
    active_cluster(eks, "cx")
    slow = eks.update_cluster_config(name="cx", logging={"clusterLogging": [{"types": ["scheduler"], "enabled": True}]})
    u = slow["update"]
    try:
        cancelled = eks.cancel_update(name="cx", updateId=u["id"])["update"]
    except botocore.exceptions.ClientError as e:
        # Finished before the cancel came: nothing is left to cancel.
        assert e.response["Error"]["Code"] == "InvalidRequestException"
        return
    assert cancelled["status"] == "Cancelled"
    assert eks.describe_cluster(name="cx")["cluster"]["status"] == "ACTIVE"


def test_nodegroup_fields_and_updates(server, eks):
    active_cluster(eks, "ngc")
    ng = eks.create_nodegroup(clusterName="ngc", nodegroupName="workers", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE,
                              remoteAccess={"ec2SshKey": "my-key"}, labels={"a": "1"},
                              scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2})["nodegroup"]
    assert ng["remoteAccess"] == {"ec2SshKey": "my-key"}
    asg = ng["resources"]["autoScalingGroups"][0]["name"]
    assert asg.startswith("eks-workers-") and len(asg) == len("eks-workers-") + 36
    assert ng["resources"]["remoteAccessSecurityGroup"].startswith("sg-")
    assert ng["updateConfig"] == {"maxUnavailable": 1} and ng["diskSize"] == 20
    eks.get_waiter("nodegroup_active").wait(clusterName="ngc", nodegroupName="workers", WaiterConfig=FAST)

    lt = eks.create_nodegroup(clusterName="ngc", nodegroupName="lt", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE,
                              launchTemplate={"name": "my-template", "version": "2"})["nodegroup"]
    assert lt["launchTemplate"] == {"name": "my-template", "version": "2"} and "diskSize" not in lt
    status, code, message = error(eks.create_nodegroup, clusterName="ngc", nodegroupName="bad", subnets=PRIVATE[:2],
                                  nodeRole=CLUSTER_ROLE, launchTemplate={"id": "lt-0123"}, diskSize=50)
    assert (status, code, message) == (400, "InvalidParameterException",
                                       "Disk size must be specified within the launch template.")
    status, code, message = error(eks.create_nodegroup, clusterName="ngc", nodegroupName="bad", subnets=PRIVATE[:2],
                                  nodeRole=CLUSTER_ROLE, launchTemplate={"id": "lt-0123"},
                                  remoteAccess={"ec2SshKey": "k"})
    assert (code, message) == ("InvalidParameterException",
                               "Remote access configuration cannot be specified with a launch template.")

    u = server.aws("eks", "update-nodegroup-config", "--cluster-name", "ngc", "--nodegroup-name", "workers",
                   "--scaling-config", "minSize=1,maxSize=5,desiredSize=4",
                   "--labels", '{"addOrUpdateLabels": {"b": "2"}, "removeLabels": ["a"]}')["update"]
    assert u["type"] == "ConfigUpdate"
    assert {p["type"] for p in u["params"]} >= {"DesiredSize", "MaxSize", "LabelsToAdd", "LabelsToRemove"}
    status, code, _ = error(eks.update_nodegroup_config, clusterName="ngc", nodegroupName="workers",
                            scalingConfig={"desiredSize": 1})
    assert (status, code) == (409, "ResourceInUseException")
    done = update_done(eks, "ngc", u["id"], nodegroupName="workers")
    assert done["status"] == "Successful"
    eks.get_waiter("nodegroup_active").wait(clusterName="ngc", nodegroupName="workers", WaiterConfig=FAST)
    ng = eks.describe_nodegroup(clusterName="ngc", nodegroupName="workers")["nodegroup"]
    assert ng["scalingConfig"] == {"minSize": 1, "maxSize": 5, "desiredSize": 4}
    assert ng["labels"] == {"b": "2"}
    assert eks.list_updates(name="ngc", nodegroupName="workers")["updateIds"] == [u["id"]]
    assert eks.list_updates(name="ngc")["updateIds"] == []
    status, code, message = error(eks.update_nodegroup_config, clusterName="ngc", nodegroupName="workers",
                                  scalingConfig={"minSize": 3, "desiredSize": 2})
    assert code == "InvalidParameterException"

    u = eks.update_nodegroup_version(clusterName="ngc", nodegroupName="workers")["update"]
    assert u["type"] == "VersionUpdate"
    update_done(eks, "ngc", u["id"], nodegroupName="workers")
    status, code, _ = error(eks.update_nodegroup_version, clusterName="ngc", nodegroupName="workers", version="1.35")
    assert code == "InvalidParameterException"
    status, code, _ = error(eks.update_nodegroup_version, clusterName="ngc", nodegroupName="workers",
                            launchTemplate={"name": "x", "version": "3"})
    assert code in ("InvalidParameterException", "ResourceInUseException")


def test_paginators_of_the_new_lists(server, eks):
    active_cluster(eks, "pg")
    ids = []
    for i in range(5):
        types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
        u = eks.update_cluster_config(name="pg", logging={"clusterLogging": [{"types": [types[i]], "enabled": True}]})
        update_done(eks, "pg", u["update"]["id"])
        wait_for(lambda: eks.describe_cluster(name="pg")["cluster"]["status"] == "ACTIVE")
        ids.append(u["update"]["id"])
    pages = list(eks.get_paginator("list_updates").paginate(name="pg", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3 and sorted(i for p in pages for i in p["updateIds"]) == sorted(ids)
    for n in range(3):
        eks.create_pod_identity_association(clusterName="pg", namespace="ns", serviceAccount=f"sa{n}",
                                            roleArn=CLUSTER_ROLE)
    pages = list(eks.get_paginator("list_pod_identity_associations").paginate(clusterName="pg",
                                                                             PaginationConfig={"PageSize": 2}))
    assert [len(p["associations"]) for p in pages] == [2, 1]
    addons = list(eks.get_paginator("describe_addon_versions").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["addons"]) for p in addons] == [3, 1]
    configs = list(eks.get_paginator("list_identity_provider_configs").paginate(clusterName="pg"))
    assert configs[0]["identityProviderConfigs"] == []
    insights = list(eks.get_paginator("list_insights").paginate(clusterName="pg", PaginationConfig={"PageSize": 2}))
    assert sum(len(p["insights"]) for p in insights) == 3


def test_identity_provider_configs(server, eks):
    active_cluster(eks, "idp")
    out = eks.associate_identity_provider_config(clusterName="idp", oidc={
        "identityProviderConfigName": "dex", "issuerUrl": "https://dex.example.com", "clientId": "kubernetes",
        "usernameClaim": "email", "groupsClaim": "groups"}, tags={"team": "auth"})
    assert out["update"]["type"] == "AssociateIdentityProviderConfig" and out["tags"] == {"team": "auth"}
    ref = {"type": "oidc", "name": "dex"}
    desc = eks.describe_identity_provider_config(clusterName="idp", identityProviderConfig=ref)["identityProviderConfig"]
    assert desc["oidc"]["status"] == "CREATING" and desc["oidc"]["clientId"] == "kubernetes"
    # The cluster is UPDATING; node groups and add-ons can still be created (as Terraform does in parallel).
    assert eks.describe_cluster(name="idp")["cluster"]["status"] == "UPDATING"
    eks.create_nodegroup(clusterName="idp", nodegroupName="ng", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE)
    eks.create_addon(clusterName="idp", addonName="vpc-cni")
    update_done(eks, "idp", out["update"]["id"])
    wait_for(lambda: eks.describe_identity_provider_config(clusterName="idp", identityProviderConfig=ref)
             ["identityProviderConfig"]["oidc"]["status"] == "ACTIVE")
    assert eks.list_identity_provider_configs(clusterName="idp")["identityProviderConfigs"] == [ref]
    arn = desc["oidc"]["identityProviderConfigArn"]
    eks.tag_resource(resourceArn=arn, tags={"env": "dev"})
    assert eks.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "auth", "env": "dev"}
    wait_for(lambda: eks.describe_cluster(name="idp")["cluster"]["status"] == "ACTIVE")
    status, code, _ = error(eks.associate_identity_provider_config, clusterName="idp", oidc={
        "identityProviderConfigName": "dex", "issuerUrl": "https://dex.example.com", "clientId": "k"})
    assert code == "ResourceInUseException"
    status, code, _ = error(eks.associate_identity_provider_config, clusterName="idp", oidc={
        "identityProviderConfigName": "other", "issuerUrl": "http://insecure", "clientId": "k"})
    assert code == "InvalidParameterException"
    d = eks.disassociate_identity_provider_config(clusterName="idp", identityProviderConfig=ref)["update"]
    assert d["type"] == "DisassociateIdentityProviderConfig"
    update_done(eks, "idp", d["id"])
    wait_for(lambda: eks.list_identity_provider_configs(clusterName="idp")["identityProviderConfigs"] == [])
    status, code, _ = error(eks.describe_identity_provider_config, clusterName="idp", identityProviderConfig=ref)
    assert (status, code) == (404, "ResourceNotFoundException")


def test_pod_identity_associations(server, eks):
    active_cluster(eks, "pia")
    a = server.aws("eks", "create-pod-identity-association", "--cluster-name", "pia", "--namespace", "default",
                   "--service-account", "app", "--role-arn", CLUSTER_ROLE, "--tags", "team=a")["association"]
    assert a["associationId"].startswith("a-") and a["associationArn"].endswith(f"/pia/{a['associationId']}")
    status, code, _ = error(eks.create_pod_identity_association, clusterName="pia", namespace="default",
                            serviceAccount="app", roleArn=CLUSTER_ROLE)
    assert (status, code) == (409, "ResourceInUseException")
    status, code, _ = error(eks.create_pod_identity_association, clusterName="pia", namespace="default",
                            serviceAccount="x", roleArn="not-an-arn")
    assert code == "InvalidParameterException"
    listed = eks.list_pod_identity_associations(clusterName="pia", namespace="default")["associations"]
    assert [x["serviceAccount"] for x in listed] == ["app"]
    assert eks.list_pod_identity_associations(clusterName="pia", namespace="other")["associations"] == []
    other_role = "arn:aws:iam::000000000000:role/other"
    up = eks.update_pod_identity_association(clusterName="pia", associationId=a["associationId"], roleArn=other_role)
    assert up["association"]["roleArn"] == other_role
    assert eks.list_tags_for_resource(resourceArn=a["associationArn"])["tags"] == {"team": "a"}
    eks.delete_pod_identity_association(clusterName="pia", associationId=a["associationId"])
    status, code, _ = error(eks.describe_pod_identity_association, clusterName="pia", associationId=a["associationId"])
    assert (status, code) == (404, "ResourceNotFoundException")


def test_insights_and_local_answers(server, eks):
    active_cluster(eks, "ins")
    insights = server.aws("eks", "list-insights", "--cluster-name", "ins")["insights"]
    assert {i["category"] for i in insights} == {"UPGRADE_READINESS"}
    assert all(i["insightStatus"]["status"] == "PASSING" for i in insights)
    one = eks.describe_insight(clusterName="ins", id=insights[0]["id"])["insight"]
    assert one["name"] == insights[0]["name"] and "recommendation" in one
    assert eks.list_insights(clusterName="ins", filter={"statuses": ["ERROR"]})["insights"] == []
    status, code, _ = error(eks.describe_insight, clusterName="ins", id="nope")
    assert code == "ResourceNotFoundException"
    # A node group behind the cluster's version shows in the version-skew insight.
    eks.create_nodegroup(clusterName="ins", nodegroupName="ng", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE)
    eks.get_waiter("nodegroup_active").wait(clusterName="ins", nodegroupName="ng", WaiterConfig=FAST)

    cas = eks.list_certificate_authorities(clusterName="ins")["certificateAuthorities"]
    assert len(cas) == 1 and cas[0]["signingStatus"] == "IN_USE"
    ca = eks.describe_certificate_authority(clusterName="ins", certificateAuthorityId=cas[0]["id"])
    assert ca["certificateAuthority"]["data"] == eks.describe_cluster(name="ins")["cluster"]["certificateAuthority"]["data"]

    status, code, message = error(eks.register_cluster, name="ext",
                                  connectorConfig={"roleArn": CLUSTER_ROLE, "provider": "OTHER"})
    assert code == "InvalidRequestException" and "EKS Connector" in message
    assert eks.list_capabilities(clusterName="ins")["capabilities"] == []
    assert eks.list_eks_anywhere_subscriptions()["subscriptions"] == []
    status, code, _ = error(eks.describe_capability, clusterName="ins", capabilityName="argocd")
    assert (status, code) == (404, "ResourceNotFoundException")

    u = eks.associate_encryption_config(clusterName="ins", encryptionConfig=[
        {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:000000000000:key/k1"}}])["update"]
    assert u["type"] == "AssociateEncryptionConfig"
    update_done(eks, "ins", u["id"])
    assert eks.describe_cluster(name="ins")["cluster"]["encryptionConfig"][0]["provider"]["keyArn"].endswith("/k1")


def _model():
    root = os.path.dirname(botocore.__file__)
    with gzip.open(os.path.join(root, "data", "eks", "2017-11-01", "service-2.json.gz")) as f:
        return json.load(f)


def test_every_operation_of_the_model_is_answered(server, eks):
    """Each operation of botocore's EKS model, sent on its HTTP method and path with placeholder
    values: whatever the answer (often ResourceNotFoundException for the placeholder cluster), it
    is never UnknownOperationException."""
    model = _model()
    unknown = []
    for name, op in sorted(model["operations"].items()):
        method = op["http"]["method"]
        path = op["http"]["requestUri"].split("?")[0]
        for placeholder in ["{name}", "{nodegroupName}", "{fargateProfileName}", "{addonName}", "{updateId}",
                            "{associationId}", "{capabilityName}", "{certificateAuthorityId}", "{id}",
                            "{principalArn}", "{policyArn}", "{resourceArn}"]:
            value = "arn%3Aaws%3Aeks%3Aus-east-1%3A000000000000%3Acluster%2Fnone" if placeholder == "{resourceArn}" \
                else "placeholder"
            path = path.replace(placeholder, value)
        data = b"{}" if method in ("POST", "PUT") else None
        req = urllib.request.Request(f"{server.url}{path}", method=method, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                error_type = r.headers.get("x-amzn-errortype")
        except urllib.error.HTTPError as e:
            error_type = e.headers.get("x-amzn-errortype")
        if error_type and error_type.startswith("UnknownOperation"):
            unknown.append(f"{name} {method} {path}")
    assert unknown == []


def test_boto3_waiters_for_every_resource(server, eks):
    eks.create_cluster(name="w", roleArn=CLUSTER_ROLE, resourcesVpcConfig={"subnetIds": PRIVATE[:2]})
    eks.get_waiter("cluster_active").wait(name="w", WaiterConfig=FAST)
    eks.create_fargate_profile(clusterName="w", fargateProfileName="fp", podExecutionRoleArn=CLUSTER_ROLE,
                               selectors=[{"namespace": "default"}])
    eks.get_waiter("fargate_profile_active").wait(clusterName="w", fargateProfileName="fp", WaiterConfig=FAST)
    eks.create_nodegroup(clusterName="w", nodegroupName="ng", subnets=PRIVATE[:2], nodeRole=CLUSTER_ROLE)
    eks.get_waiter("nodegroup_active").wait(clusterName="w", nodegroupName="ng", WaiterConfig=FAST)
    eks.create_addon(clusterName="w", addonName="kube-proxy")
    eks.get_waiter("addon_active").wait(clusterName="w", addonName="kube-proxy", WaiterConfig=FAST)
    eks.delete_addon(clusterName="w", addonName="kube-proxy")
    eks.get_waiter("addon_deleted").wait(clusterName="w", addonName="kube-proxy", WaiterConfig=FAST)
    eks.delete_nodegroup(clusterName="w", nodegroupName="ng")
    eks.get_waiter("nodegroup_deleted").wait(clusterName="w", nodegroupName="ng", WaiterConfig=FAST)
    eks.delete_fargate_profile(clusterName="w", fargateProfileName="fp")
    eks.get_waiter("fargate_profile_deleted").wait(clusterName="w", fargateProfileName="fp", WaiterConfig=FAST)
    eks.delete_cluster(name="w")
    eks.get_waiter("cluster_deleted").wait(name="w", WaiterConfig=FAST)
