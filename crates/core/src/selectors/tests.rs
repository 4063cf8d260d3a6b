use super::*;
use serde_json::json;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn parse(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap()
}

fn parse_err(s: &str) -> String {
    let SelectorError::Invalid(m) = LabelSelector::parse(s).unwrap_err();
    m
}

#[test]
fn empty_label_selector_selects_everything() {
    let s = parse("");
    assert!(s.is_empty());
    assert!(s.matches(None));
    assert!(s.matches(Some(&labels(json!({"app": "web"})))));
    assert!(parse("  ").is_empty());
}

#[test]
fn equality_terms() {
    let web = labels(json!({"app": "web", "tier": "front"}));
    let db = labels(json!({"app": "db"}));
    for s in ["app=web", "app==web", " app = web "] {
        let sel = parse(s);
        assert!(sel.matches(Some(&web)), "{s}");
        assert!(!sel.matches(Some(&db)), "{s}");
        assert!(!sel.matches(None), "{s}");
    }
    let not_web = parse("app!=web");
    assert!(!not_web.matches(Some(&web)));
    assert!(not_web.matches(Some(&db)));
    // A missing label is "not equal".
    assert!(not_web.matches(None));
    // Commas AND the terms.
    let both = parse("app=web,tier=front");
    assert!(both.matches(Some(&web)));
    assert!(!both.matches(Some(&labels(json!({"app": "web", "tier": "back"})))));
    // `k=` selects the empty value.
    let empty = parse("app=");
    assert!(empty.matches(Some(&labels(json!({"app": ""})))));
    assert!(!empty.matches(Some(&db)));
}

#[test]
fn set_terms() {
    let sel = parse("env in (prod, staging),tier notin (cache)");
    assert!(sel.matches(Some(&labels(json!({"env": "prod", "tier": "front"})))));
    assert!(sel.matches(Some(&labels(json!({"env": "staging"})))));
    assert!(!sel.matches(Some(&labels(json!({"env": "dev"})))));
    assert!(!sel.matches(Some(&labels(json!({"env": "prod", "tier": "cache"})))));
    // `in`/`notin` are plain words as values.
    let words = parse("x in (in,notin)");
    assert!(words.matches(Some(&labels(json!({"x": "notin"})))));
    // `()` and a trailing comma mean the empty value.
    assert!(parse("x in ()").matches(Some(&labels(json!({"x": ""})))));
    assert!(parse("x in (a,)").matches(Some(&labels(json!({"x": ""})))));
    assert_eq!(parse("x in (b,a,b)").to_string(), "x in (a,b)");
}

#[test]
fn existence_and_numeric_terms() {
    let sel = parse("app,!canary");
    assert!(sel.matches(Some(&labels(json!({"app": "x"})))));
    assert!(!sel.matches(Some(&labels(json!({"app": "x", "canary": "1"})))));
    assert!(!sel.matches(None));
    assert!(parse("!canary").matches(None));

    let gt = parse("rank>5");
    assert!(gt.matches(Some(&labels(json!({"rank": "6"})))));
    assert!(!gt.matches(Some(&labels(json!({"rank": "5"})))));
    assert!(!gt.matches(Some(&labels(json!({"rank": "high"})))));
    assert!(!gt.matches(None));
    let lt = parse("rank<5");
    assert!(lt.matches(Some(&labels(json!({"rank": "4"})))));
    assert!(!lt.matches(Some(&labels(json!({"rank": "10"})))));
}

#[test]
fn label_selectors_print_sorted_like_upstream() {
    let sel = parse("tier notin (b,a),app==web,!canary,x>3,ns/env in (prod)");
    assert_eq!(
        sel.to_string(),
        "app==web,!canary,ns/env in (prod),tier notin (a,b),x>3"
    );
    assert_eq!(parse("").to_string(), "");
}

#[test]
fn label_selector_syntax_errors() {
    assert_eq!(
        parse_err("a b"),
        "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(
        parse_err("app in (a"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(
        parse_err("app in a"),
        "unable to parse requirement: found 'a' expected: '('"
    );
    assert_eq!(parse_err("a,"), "found '', expected: identifier after ','");
    assert_eq!(
        parse_err(",a"),
        "found ',', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        parse_err("a=b=c"),
        "found '=', expected: ',' or 'end of string'"
    );
    assert_eq!(
        parse_err("!"),
        "unable to parse requirement: found '', expected: identifier"
    );
    assert_eq!(
        parse_err("x>abc"),
        "unable to parse requirement: values[0]: Invalid value: \"abc\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
}

#[test]
fn label_keys_and_values_are_validated() {
    assert_eq!(
        parse_err("-foo=bar"),
        "unable to parse requirement: <nil>: Invalid value: \"-foo\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    assert_eq!(
        parse_err("Example.com/app=x"),
        "unable to parse requirement: <nil>: Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert!(parse_err("a/b/c").contains("with an optional DNS subdomain prefix and '/'"));
    assert!(parse_err("/a").contains("prefix part must be non-empty"));
    let long_key = "k".repeat(64);
    assert!(
        parse_err(&format!("{long_key}=v"))
            .contains("name part must be no more than 63 characters")
    );
    let long_value = "v".repeat(64);
    assert_eq!(
        parse_err(&format!("app={long_value}")),
        format!(
            "unable to parse requirement: values[0][app]: Invalid value: \"{long_value}\": must be no more than 63 characters"
        )
    );
    assert!(parse_err("app=-x").contains("a valid label must be an empty string"));
    // The longest legal pieces pass.
    let key = format!("example.com/{}", "k".repeat(63));
    assert!(LabelSelector::parse(&format!("{key}={}", "v".repeat(63))).is_ok());
    assert!(LabelSelector::parse("app.kubernetes.io/name in (web,api_v2,A.b-1)").is_ok());
}

#[test]
fn selectors_from_json() {
    for empty in [
        Value::Null,
        json!({}),
        json!({"matchLabels": {}, "matchExpressions": []}),
    ] {
        let s = LabelSelector::from_json(&empty).unwrap();
        assert!(s.is_empty());
        assert!(s.matches(None));
    }
    let s = LabelSelector::from_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "Exists", "values": []},
            {"key": "zone", "operator": "NotIn", "values": ["b"]}
        ]
    }))
    .unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env in (prod,staging),tier,zone notin (b)"
    );
    assert!(s.matches(Some(&labels(
        json!({"app": "web", "env": "prod", "tier": "x", "zone": "a"})
    ))));
    assert!(!s.matches(Some(&labels(
        json!({"app": "web", "env": "prod", "tier": "x", "canary": "y"})
    ))));
    assert!(!s.matches(Some(&labels(json!({"app": "web", "env": "prod"})))));
}

#[test]
fn typed_selectors_read_as_their_json_does() {
    let json = json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["staging", "prod", "prod"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]
    });
    let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
        serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        LabelSelector::from_typed(&typed).unwrap(),
        LabelSelector::from_json(&json).unwrap()
    );
    assert!(
        LabelSelector::from_typed(&Default::default())
            .unwrap()
            .is_empty()
    );
    let bad: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "Equals"}]}))
            .unwrap();
    let SelectorError::Invalid(m) = LabelSelector::from_typed(&bad).unwrap_err();
    assert_eq!(m, "\"Equals\" is not a valid label selector operator");
}

#[test]
fn invalid_json_selectors() {
    let err = |v: Value| {
        let SelectorError::Invalid(m) = LabelSelector::from_json(&v).unwrap_err();
        m
    };
    assert_eq!(
        err(json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})),
        "\"Equals\" is not a valid label selector operator"
    );
    assert_eq!(
        err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
        "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
    );
    assert!(
        err(json!({"matchLabels": {"bad key": "x"}}))
            .starts_with("key: Invalid value: \"bad key\"")
    );
    assert!(LabelSelector::from_json(&json!("app=web")).is_err());
}

// --- field selectors -------------------------------------------------------------------------

fn fields(s: &str, group: &str, resource: &str) -> FieldSelector {
    FieldSelector::parse(s, group, resource).unwrap()
}

fn field_err(s: &str, group: &str, resource: &str) -> String {
    let SelectorError::Invalid(m) = FieldSelector::parse(s, group, resource).unwrap_err();
    m
}

#[test]
fn describe_pod_events_selector() {
    let s = fields(
        "involvedObject.name=p1,involvedObject.namespace=default,involvedObject.uid=7fc6bc70-8788-428f-bbbb-f72700f3b599",
        "",
        "events",
    );
    let event = json!({
        "metadata": {"name": "p1.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default",
                           "uid": "7fc6bc70-8788-428f-bbbb-f72700f3b599"},
        "reason": "Scheduled", "type": "Normal"
    });
    assert!(s.matches(&event));
    let mut other = event.clone();
    other["involvedObject"]["uid"] = json!("another");
    assert!(!s.matches(&other));
    assert_eq!(s.name(), None);

    // describe node: a cluster-scoped object has an empty namespace.
    let node_events = fields(
        "involvedObject.name=n1,involvedObject.namespace=,involvedObject.kind=Node",
        "",
        "events",
    );
    assert!(node_events.matches(&json!({"involvedObject": {"kind": "Node", "name": "n1"}})));
    assert!(
        !node_events.matches(&json!({"involvedObject": {"kind": "Node", "name": "n1",
                                                             "namespace": "default"}}))
    );
}

#[test]
fn describe_node_pods_selector() {
    let s = fields(
        "spec.nodeName=n1,status.phase!=Failed,status.phase!=Succeeded",
        "",
        "pods",
    );
    let pod = |node: &str, phase: Option<&str>| {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"nodeName": node}});
        if let Some(phase) = phase {
            p["status"] = json!({"phase": phase});
        }
        p
    };
    assert!(s.matches(&pod("n1", Some("Running"))));
    assert!(s.matches(&pod("n1", None)), "no status is not Failed");
    assert!(!s.matches(&pod("n1", Some("Failed"))));
    assert!(!s.matches(&pod("n1", Some("Succeeded"))));
    assert!(!s.matches(&pod("n2", Some("Running"))));

    // `spec.nodeName=` selects unscheduled pods.
    let unscheduled = fields("spec.nodeName=", "", "pods");
    assert!(unscheduled.matches(&json!({"spec": {}})));
    assert!(!unscheduled.matches(&pod("n1", None)));
}

#[test]
fn field_selector_operators_and_name() {
    let p1 = json!({"metadata": {"name": "p1", "namespace": "default"}});
    let by_name = fields("metadata.name=p1", "", "pods");
    assert_eq!(by_name.name(), Some("p1"));
    assert!(by_name.matches(&p1));
    assert!(!by_name.matches(&json!({"metadata": {"name": "p2"}})));
    let double = fields("metadata.name==p1", "apps", "deployments");
    assert_eq!(double.name(), Some("p1"));
    let not = fields("metadata.name!=p1", "", "pods");
    assert_eq!(not.name(), None);
    assert!(!not.matches(&p1));
    assert!(fields("metadata.namespace=default", "example.com", "widgets").matches(&p1));

    let empty = fields("", "", "pods");
    assert!(empty.is_empty());
    assert!(empty.matches(&p1));
    assert_eq!(empty.name(), None);
    assert!(fields(",", "", "pods").is_empty());
    assert!(!by_name.is_empty());
}

#[test]
fn field_selector_escaping() {
    let s = fields(r"metadata.name=a\,b\=c\\d\!e", "", "configmaps");
    assert_eq!(s.name(), Some(r"a,b=c\d!e"));
    assert!(s.matches(&json!({"metadata": {"name": r"a,b=c\d!e"}})));
    // An escaped comma does not split terms; a plain one does.
    let two = fields(
        r"metadata.name=x\,y,metadata.namespace=ns",
        "",
        "configmaps",
    );
    assert!(two.matches(&json!({"metadata": {"name": "x,y", "namespace": "ns"}})));
    // `!` needs no escape.
    assert_eq!(fields("metadata.name=a!b", "", "pods").name(), Some("a!b"));

    assert_eq!(
        field_err(r"metadata.name=a\x", "", "pods"),
        r"invalid field selector: invalid escape sequence: \x"
    );
    assert_eq!(
        field_err(r"metadata.name=a\", "", "pods"),
        r"invalid field selector: invalid escape sequence: \"
    );
    assert_eq!(
        field_err("metadata.name=a=b", "", "pods"),
        "invalid field selector: unescaped character in value: ="
    );
}

#[test]
fn field_selector_errors() {
    assert_eq!(
        field_err("spec.foo=bar", "", "pods"),
        "field label not supported: spec.foo"
    );
    assert_eq!(
        field_err("spec.nodeName=n1", "apps", "deployments"),
        "field label not supported: spec.nodeName"
    );
    assert_eq!(
        field_err("status.phase=Running,metadata.name", "", "pods"),
        "invalid selector: 'status.phase=Running,metadata.name'; can't understand 'metadata.name'"
    );
    // Syntax errors come before unsupported fields.
    assert_eq!(
        field_err("a=b,c", "", "pods"),
        "invalid selector: 'a=b,c'; can't understand 'c'"
    );
}

#[test]
fn typed_fields_read_as_their_string_forms() {
    let hosted = json!({"spec": {"hostNetwork": true}, "status": {"podIPs": [{"ip": "10.0.0.7"}]}});
    assert!(fields("spec.hostNetwork=true", "", "pods").matches(&hosted));
    assert!(fields("status.podIP=10.0.0.7", "", "pods").matches(&hosted));
    // A missing boolean is false, a missing integer 0.
    assert!(fields("spec.hostNetwork=false", "", "pods").matches(&json!({"spec": {}})));
    assert!(fields("spec.unschedulable=false", "", "nodes").matches(&json!({"spec": {}})));
    assert!(
        fields("spec.unschedulable=true", "", "nodes")
            .matches(&json!({"spec": {"unschedulable": true}}))
    );
    assert!(fields("status.replicas=0", "apps", "replicasets").matches(&json!({})));
    assert!(
        fields("status.replicas=3", "apps", "replicasets")
            .matches(&json!({"status": {"replicas": 3}}))
    );
    assert!(
        fields("status.successful=1", "batch", "jobs")
            .matches(&json!({"status": {"succeeded": 1}}))
    );
    assert!(fields("type=Opaque", "", "secrets").matches(&json!({"type": "Opaque"})));
    assert!(
        fields("status.phase=Active", "", "namespaces")
            .matches(&json!({"status": {"phase": "Active"}}))
    );
}

#[test]
fn event_source_falls_back_to_the_reporting_component() {
    let s = fields("source=kubelet,type=Warning,reason=BackOff", "", "events");
    assert!(s.matches(
        &json!({"source": {"component": "kubelet"}, "type": "Warning",
                              "reason": "BackOff"})
    ));
    assert!(
        s.matches(&json!({"reportingComponent": "kubelet", "type": "Warning",
                              "reason": "BackOff"}))
    );
    assert!(!s.matches(
        &json!({"source": {"component": "scheduler"}, "type": "Warning",
                               "reason": "BackOff"})
    ));
    assert!(
        fields("reportingComponent=fargate-scheduler", "", "events")
            .matches(&json!({"reportingComponent": "fargate-scheduler"}))
    );
}
