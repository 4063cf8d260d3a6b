//! Upstream's swagger cut down to what this server serves: the paths of served resources and
//! subresources, and the definitions and shared parameters they reach.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::ServedResource;
use super::upstream::KUBERNETES_VERSION;

pub type Gvk = (String, String, String);

/// Upstream's definition of each group-version-kind it declares.
pub fn kinds(spec: &Value) -> HashMap<Gvk, String> {
    let mut out = HashMap::new();
    for (name, def) in spec["definitions"].as_object().into_iter().flatten() {
        for gvk in def["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let part = |k: &str| gvk[k].as_str().unwrap_or("").to_string();
            out.entry((part("group"), part("version"), part("kind")))
                .or_insert_with(|| name.clone());
        }
    }
    out
}

/// Whether an upstream path is served: discovery paths of served groups, and resource paths
/// (not the deprecated `/watch/` ones, not `proxy` or `portforward`) of served resources.
fn served(path: &str, resources: &[ServedResource]) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] | ["apis"] | ["version"] => return true,
        ["apis", group] => return resources.iter().any(|r| r.group == *group),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return false,
    };
    let in_gv: Vec<&ServedResource> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if in_gv.is_empty() {
        return false;
    }
    let (namespaced_path, plural, more) = match rest {
        [] => return true,
        ["namespaces", "{namespace}", plural, more @ ..] => (true, *plural, more),
        [plural, more @ ..] => (false, *plural, more),
    };
    let Some(r) = in_gv.iter().find(|r| r.plural == plural) else {
        return false;
    };
    match more {
        // A list: in one namespace, or across all (for a namespaced resource too).
        [] => !namespaced_path || r.namespaced,
        [_name] => namespaced_path == r.namespaced,
        [_name, sub] => namespaced_path == r.namespaced && r.subresources.iter().any(|s| s == sub),
        _ => false,
    }
}

/// Every `$ref` in a value.
pub fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref"
                    && let Some(r) = child.as_str()
                {
                    out.push(r);
                } else {
                    refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

/// The definitions and parameters reachable from `roots` (definition names, and values whose
/// `$ref`s count), as sorted name sets.
pub fn reachable(
    spec: &Value,
    definition_roots: impl IntoIterator<Item = String>,
    value_roots: &[&Value],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut definitions = BTreeSet::new();
    let mut parameters = BTreeSet::new();
    let mut pending: Vec<String> = definition_roots
        .into_iter()
        .map(|d| format!("#/definitions/{d}"))
        .collect();
    let mut found = Vec::new();
    for v in value_roots {
        refs(v, &mut found);
    }
    pending.extend(found.into_iter().map(String::from));
    while let Some(r) = pending.pop() {
        let (target, set, section) = if let Some(name) = r.strip_prefix("#/definitions/") {
            (name.to_string(), &mut definitions, "definitions")
        } else if let Some(name) = r.strip_prefix("#/parameters/") {
            (name.to_string(), &mut parameters, "parameters")
        } else {
            continue;
        };
        if !set.insert(target.clone()) {
            continue;
        }
        let mut next = Vec::new();
        refs(&spec[section][&target], &mut next);
        pending.extend(next.into_iter().map(String::from));
    }
    (definitions, parameters)
}

/// The swagger 2.0 document of `resources`, from upstream's.
pub fn restrict(spec: &Value, resources: &[ServedResource]) -> Value {
    let upstream = kinds(spec);
    let paths: Map<String, Value> = spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(p, _)| served(p, resources))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect();
    let mut roots = Vec::new();
    for r in resources {
        for kind in [r.kind.clone(), format!("{}List", r.kind)] {
            if let Some(name) = upstream.get(&(r.group.clone(), r.version.clone(), kind)) {
                roots.push(name.clone());
            }
        }
    }
    let paths = Value::Object(paths);
    let (definitions, parameters) = reachable(spec, roots, &[&paths]);
    let pick = |section: &str, names: &BTreeSet<String>| -> Value {
        Value::Object(
            names
                .iter()
                .filter_map(|n| spec[section].get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        )
    };
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": pick("definitions", &definitions),
        "parameters": pick("parameters", &parameters),
        "security": spec["security"],
        "securityDefinitions": spec["securityDefinitions"],
    })
}
