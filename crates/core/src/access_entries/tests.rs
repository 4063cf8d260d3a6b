use super::aws_auth::AwsAuth;
use super::*;

const PREFIX: &str = "arn:aws:eks:us-east-1:111122223333";

fn request(principal: &str) -> NewEntry<'_> {
    NewEntry {
        cluster: "c1",
        principal_arn: principal,
        ..NewEntry::default()
    }
}

fn stored(entry: AccessEntry, policies: Vec<AssociatedPolicy>) -> StoredAccessEntry {
    StoredAccessEntry {
        resource: entry,
        associated_access_policies: policies,
    }
}

#[test]
fn principals_parse_and_canonicalize() {
    let role = Principal::parse("arn:aws:iam::111122223333:role/team/dev").unwrap();
    assert_eq!(
        (role.kind, role.name.as_str(), role.path.as_str()),
        (PrincipalKind::Role, "dev", "/team/")
    );
    assert_eq!(role.iam_arn(), "arn:aws:iam::111122223333:role/team/dev");
    assert_eq!(role.canonical_arn(), "arn:aws:iam::111122223333:role/dev");
    let session = Principal::parse("arn:aws:sts::111122223333:assumed-role/dev/alice").unwrap();
    assert_eq!(session.session.as_deref(), Some("alice"));
    assert_eq!(session.canonical_arn(), role.canonical_arn());
    assert_eq!(
        session.caller_arn(),
        "arn:aws:sts::111122223333:assumed-role/dev/alice"
    );
    for bad in [
        "arn:aws:iam::111122223333:group/g",
        "arn:aws:iam::1111:user/u",
        "arn:aws:s3:::bucket",
        "not-an-arn",
        "arn:aws:iam::111122223333:user/",
    ] {
        assert!(Principal::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn new_entries_get_eks_defaults() {
    let user = new_entry(
        &request("arn:aws:iam::111122223333:user/alice"),
        PREFIX,
        "id1",
        1.0,
    )
    .unwrap();
    assert_eq!(user.username, "arn:aws:iam::111122223333:user/alice");
    assert_eq!(user.entry_type, "STANDARD");
    assert_eq!(
        user.access_entry_arn,
        "arn:aws:eks:us-east-1:111122223333:access-entry/c1/user/111122223333/alice/id1"
    );
    let role = new_entry(
        &request("arn:aws:iam::111122223333:role/dev"),
        PREFIX,
        "id2",
        1.0,
    )
    .unwrap();
    assert_eq!(
        role.username,
        "arn:aws:sts::111122223333:assumed-role/dev/{{SessionName}}"
    );
    let mut fargate = request("arn:aws:iam::111122223333:role/pods");
    fargate.entry_type = Some("FARGATE_LINUX");
    let fargate = new_entry(&fargate, PREFIX, "id3", 1.0).unwrap();
    assert_eq!(fargate.username, "system:node:{{SessionName}}");
    assert!(
        fargate
            .kubernetes_groups
            .contains(&"system:nodes".to_string())
    );
}

#[test]
fn new_entries_are_validated_as_eks_does() {
    let mut r = request("arn:aws:iam::111122223333:user/alice");
    r.kubernetes_groups = vec!["system:masters".into()];
    assert_eq!(
        new_entry(&r, PREFIX, "x", 1.0).unwrap_err().to_string(),
        "The kubernetes group name system:masters is invalid, it cannot start with system:"
    );
    r.kubernetes_groups = vec![];
    r.username = Some("system:admin");
    assert_eq!(
        new_entry(&r, PREFIX, "x", 1.0).unwrap_err().to_string(),
        "The username must not begin with system:"
    );
    assert!(matches!(
        new_entry(
            &request("arn:aws:iam::111122223333:bogus/x"),
            PREFIX,
            "x",
            1.0
        ),
        Err(EntryError::InvalidPrincipal(_))
    ));
    let mut t = request("arn:aws:iam::111122223333:user/alice");
    t.entry_type = Some("EC2_LINUX");
    assert!(matches!(
        new_entry(&t, PREFIX, "x", 1.0),
        Err(EntryError::TypeNeedsRole(_))
    ));
    t.entry_type = Some("WHATEVER");
    assert!(matches!(
        new_entry(&t, PREFIX, "x", 1.0),
        Err(EntryError::InvalidType(_))
    ));
}

#[test]
fn scopes() {
    assert_eq!(
        parse_scope(&json!({"type": "cluster"})),
        Ok(AccessScope::Cluster)
    );
    assert_eq!(
        parse_scope(&json!({"type": "namespace", "namespaces": ["b", "a", "a"]})),
        Ok(AccessScope::Namespaces(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        parse_scope(&json!({"type": "namespace"})),
        Err(ScopeError::NoNamespaces)
    );
    assert_eq!(
        parse_scope(&json!({"type": "cluster", "namespaces": ["a"]})),
        Err(ScopeError::NamespacesWithCluster)
    );
    assert!(parse_scope(&json!({"type": "galaxy"})).is_err());
    assert!(parse_scope(&json!({"type": "namespace", "namespaces": ["Bad_NS"]})).is_err());
}

fn aws_auth() -> AwsAuth {
    AwsAuth::from_config_map(&json!({"data": {
        "mapRoles": "- rolearn: arn:aws:iam::111122223333:role/ops\n  username: ops:{{SessionName}}\n  groups: [ops-team]\n",
        "mapUsers": "- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n  groups:\n    - readers\n",
    }}))
    .unwrap()
}

#[test]
fn aws_auth_maps_roles_and_users() {
    let auth = aws_auth();
    let ops =
        Principal::parse("arn:aws:sts::111122223333:assumed-role/ops/me@example.com").unwrap();
    let mappings = Mappings {
        mode: AuthenticationMode::ConfigMap,
        creator_arn: None,
        entries: &[],
        aws_auth: Some(&auth),
    };
    let mapped = map_identity(&ops, &mappings).unwrap();
    assert_eq!(mapped.username, "ops:me-example.com");
    assert_eq!(mapped.groups, ["ops-team"]);
    let bob = Principal::parse("arn:aws:iam::111122223333:user/bob").unwrap();
    assert_eq!(map_identity(&bob, &mappings).unwrap().groups, ["readers"]);
    let nobody = Principal::parse("arn:aws:iam::111122223333:user/eve").unwrap();
    assert!(map_identity(&nobody, &mappings).is_none());
    assert!(AwsAuth::from_config_map(&json!({"data": {"mapUsers": "- [oops"}})).is_err());
    assert_eq!(
        AwsAuth::from_config_map(&json!({"data": {}})).unwrap(),
        AwsAuth::default()
    );
}

#[test]
fn the_authentication_mode_decides_which_mapping_counts() {
    let auth = aws_auth();
    let bob = Principal::parse("arn:aws:iam::111122223333:user/bob").unwrap();
    let entry = new_entry(
        &NewEntry {
            kubernetes_groups: vec!["devs".into()],
            ..request("arn:aws:iam::111122223333:user/bob")
        },
        PREFIX,
        "id",
        1.0,
    )
    .unwrap();
    let policy = AssociatedPolicy {
        policy_arn: crate::rbac::eks_access_policies::policy_arn("AmazonEKSViewPolicy"),
        access_scope: json!({"type": "namespace", "namespaces": ["team"]}),
        associated_at: 1.0,
        modified_at: 1.0,
    };
    let entries = [stored(entry, vec![policy])];
    let with = |mode| Mappings {
        mode,
        creator_arn: Some("arn:aws:iam::111122223333:user/creator"),
        entries: &entries,
        aws_auth: Some(&auth),
    };
    let api = map_identity(&bob, &with(AuthenticationMode::Api)).unwrap();
    assert_eq!(api.username, "arn:aws:iam::111122223333:user/bob");
    assert_eq!(api.groups, ["devs"]);
    assert_eq!(
        api.access_policies[0].scope,
        AccessScope::Namespaces(vec!["team".into()])
    );
    // Access entries come first in API_AND_CONFIG_MAP; only aws-auth counts in CONFIG_MAP.
    assert_eq!(
        map_identity(&bob, &with(AuthenticationMode::ApiAndConfigMap))
            .unwrap()
            .groups,
        ["devs"]
    );
    assert_eq!(
        map_identity(&bob, &with(AuthenticationMode::ConfigMap))
            .unwrap()
            .username,
        "bob"
    );
    // The creator is the hidden admin of a CONFIG_MAP cluster, and nobody in API mode without
    // its entry.
    let creator = Principal::parse("arn:aws:iam::111122223333:user/creator").unwrap();
    let admin = map_identity(&creator, &with(AuthenticationMode::ConfigMap)).unwrap();
    assert_eq!(admin.groups, [crate::rbac::SYSTEM_MASTERS]);
    assert!(map_identity(&creator, &with(AuthenticationMode::Api)).is_none());
}
