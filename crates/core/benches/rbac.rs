//! One RBAC decision against kube-apiserver's bootstrap policy plus 1,000 user bindings, beside
//! two anchors measured in the same run (a HashMap lookup among 1,000 keys, and serde_json
//! decoding a small Pod). Run with `cargo bench -p localfargate-core --bench rbac`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use localfargate_core::rbac::{Attributes, Policy, UserInfo, bootstrap_policy};

const USERS: usize = 1_000;
const ROLES: [&str; 3] = ["view", "edit", "admin"];

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: None,
    }
}

fn role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// The bootstrap policy, aggregated, plus one RoleBinding per user (`user-N` gets view, edit or
/// admin in `team-N%100`) and one ClusterRoleBinding per ten users (a group `group-N%100` gets
/// view cluster-wide).
fn policy() -> Policy {
    let mut bootstrap = bootstrap_policy();
    for n in 0..USERS {
        bootstrap.role_bindings.push(RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("user-{n}")),
                namespace: Some(format!("team-{}", n % 100)),
                ..ObjectMeta::default()
            },
            role_ref: role_ref(ROLES[n % 3]),
            subjects: Some(vec![subject("User", &format!("user-{n}"))]),
        });
        if n % 10 == 0 {
            bootstrap.cluster_role_bindings.push(ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(format!("group-{n}")),
                    ..ObjectMeta::default()
                },
                role_ref: role_ref("view"),
                subjects: Some(vec![subject("Group", &format!("group-{}", n / 10))]),
            });
        }
    }
    bootstrap.into_policy()
}

fn user(n: usize) -> UserInfo {
    UserInfo::new(format!("user-{n}"), &["system:authenticated"])
}

const SMALL_POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"team-1","labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1.27","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"250m","memory":"256Mi"}}}]}}"#;

fn bench(c: &mut Criterion) {
    let policy = policy();
    // user-5 has admin in team-5: allowed by its RoleBinding after the cluster bindings.
    let allowed = Attributes::resource(
        user(5),
        "create",
        "team-5",
        "rbac.authorization.k8s.io",
        "rolebindings",
    );
    assert!(policy.authorize(&allowed).is_allowed());
    // user-5 in another namespace: every applicable rule is checked, then no opinion.
    let denied = Attributes::resource(user(5), "delete", "team-6", "", "secrets");
    assert!(!policy.authorize(&denied).is_allowed());
    // A group member reading pods cluster-wide through a ClusterRoleBinding to view.
    let group = Attributes::resource(
        UserInfo::new("someone", &["group-42", "system:authenticated"]),
        "list",
        "",
        "",
        "pods",
    );
    assert!(policy.authorize(&group).is_allowed());

    let mut g = c.benchmark_group("rbac");
    g.bench_function("authorize allowed (RoleBinding, admin)", |b| {
        b.iter(|| policy.authorize(black_box(&allowed)))
    });
    g.bench_function("authorize denied (no rule applies)", |b| {
        b.iter(|| policy.authorize(black_box(&denied)))
    });
    g.bench_function("authorize allowed (group ClusterRoleBinding, view)", |b| {
        b.iter(|| policy.authorize(black_box(&group)))
    });

    let map: HashMap<String, u64> = (0..USERS as u64)
        .map(|n| (format!("user-{n}"), n))
        .collect();
    let key = "user-517".to_string();
    g.bench_function("anchor: HashMap<String, u64> lookup (1,000 keys)", |b| {
        b.iter(|| map.get(black_box(&key)).copied())
    });
    g.bench_function("anchor: serde_json decode of a small Pod", |b| {
        b.iter(|| {
            serde_json::from_str::<k8s_openapi::api::core::v1::Pod>(black_box(SMALL_POD)).ok()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
