//! What a request asks for: the resource its path names (built-in or custom), its query
//! parameters decoded as kube-apiserver decodes them, and its label and field selectors.

use std::sync::Arc;

use localfargate_core::selectors::{FieldSelector, LabelSelector};
use localfargate_registry::custom::{Catalog, CustomVersion};
use localfargate_registry::meta::labels_of;
use localfargate_registry::objects::KubeError;
use localfargate_registry::resources::ResourceType;
use serde_json::Value;

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub rt: &'static ResourceType,
    /// For namespaced resources; `None` means every namespace (a list or watch).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// For a custom resource: its definition's version (schema, columns, scale paths).
    pub custom: Option<Arc<CustomVersion>>,
}

fn not_found() -> KubeError {
    KubeError::NotFound {
        message: "the server could not find the requested resource".into(),
        kind: String::new(),
        name: String::new(),
    }
}

/// `/api/v1/namespaces/demo/pods/p1/log` → pods, demo, p1, log; the resources are the built-in
/// ones and those of the cluster's custom resource definitions.
pub fn parse_target(path: &str, catalog: &Catalog) -> Result<Target, KubeError> {
    // Go serves the decoded path (`URL.Path`): clients that percent-encode a name's `:` (the
    // Python client sends `system%3Aview`) reach the same object as those that do not.
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    let lookup = |resource: &str| {
        catalog
            .resource(group, version, resource)
            .ok_or_else(not_found)
    };
    let t = |rt: &'static ResourceType,
             namespace: Option<&str>,
             name: Option<&str>,
             sub: Option<&str>| Target {
        rt,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        custom: catalog.version_of(rt).map(|(_, v)| v.clone()),
    };
    let target = match rest {
        ["namespaces", ns, resource, more @ ..]
            if catalog
                .resource(group, version, resource)
                .is_some_and(|r| r.namespaced) =>
        {
            let rt = lookup(resource)?;
            match more {
                [] => t(rt, Some(ns), None, None),
                [name] => t(rt, Some(ns), Some(name), None),
                [name, sub] => t(rt, Some(ns), Some(name), Some(sub)),
                _ => return Err(not_found()),
            }
        }
        [resource, more @ ..] => {
            let rt = lookup(resource)?;
            match more {
                [] => t(rt, None, None, None),
                [name] if !rt.namespaced => t(rt, None, Some(name), None),
                [name, sub] if !rt.namespaced => t(rt, None, Some(name), Some(sub)),
                _ => return Err(not_found()),
            }
        }
        [] => return Err(not_found()),
    };
    if let Some(sub) = &target.subresource
        && target.rt.subresource(sub).is_none()
        && !(target.rt.kind == "Namespace" && sub == "finalize")
    {
        return Err(not_found());
    }
    Ok(target)
}

/// Query parameters, decoded; repeated keys (exec's `command`) keep every value.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter as kube-apiserver decodes it (`Convert_Slice_string_To_bool`):
    /// absent, `0` or `false` in any case is false; anything else, `True` and empty included,
    /// is true. (The official Python client sends `watch=True`.)
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// A boolean parameter that may be absent: `Some` when the request set it.
    pub fn optional_flag(&self, key: &str) -> Option<bool> {
        self.get(key).map(|_| self.flag(key))
    }
}

/// Selectors from the query, checked against the resource.
pub fn selectors(
    rt: &ResourceType,
    query: &Query,
) -> Result<(LabelSelector, FieldSelector), KubeError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
        .map_err(|e| KubeError::BadRequest(e.to_string()))?;
    let fields = FieldSelector::parse(
        query.get("fieldSelector").unwrap_or(""),
        rt.group,
        rt.resource,
    )
    .map_err(|e| KubeError::BadRequest(e.to_string()))?;
    Ok((labels, fields))
}

pub fn selected(labels: &LabelSelector, fields: &FieldSelector, v: &Value) -> bool {
    labels.matches(labels_of(v)) && fields.matches(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources() {
        let t = parse_target("/api/v1/namespaces/demo/pods/p1/log", &Catalog::default()).unwrap();
        assert_eq!(t.rt.resource, "pods");
        assert_eq!(t.namespace.as_deref(), Some("demo"));
        assert_eq!(t.name.as_deref(), Some("p1"));
        assert_eq!(t.subresource.as_deref(), Some("log"));
        let t = parse_target("/api/v1/namespaces/demo", &Catalog::default()).unwrap();
        assert_eq!(
            (t.rt.resource, t.name.as_deref()),
            ("namespaces", Some("demo"))
        );
        let t = parse_target("/api/v1/namespaces", &Catalog::default()).unwrap();
        assert_eq!((t.rt.resource, t.name), ("namespaces", None));
        let t = parse_target("/api/v1/pods", &Catalog::default()).unwrap();
        assert_eq!((t.rt.resource, t.namespace), ("pods", None));
        let t = parse_target(
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            &Catalog::default(),
        )
        .unwrap();
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = parse_target("/api/v1/nodes/n1/status", &Catalog::default()).unwrap();
        assert_eq!((t.rt.resource, t.name.as_deref()), ("nodes", Some("n1")));
        assert!(parse_target("/api/v1/namespaces/d/pods/p/nope", &Catalog::default()).is_err());
        assert!(parse_target("/apis/example.com/v1/widgets", &Catalog::default()).is_err());
        assert!(parse_target("/api/v1/pods/p1", &Catalog::default()).is_err());
        let t = parse_target(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Aview",
            &Catalog::default(),
        )
        .unwrap();
        assert_eq!(t.name.as_deref(), Some("system:view"));
    }

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some(
            "fieldSelector=involvedObject.name%3Dp1%2Cx%3Dy&command=ls&command=%2F&watch=true",
        ));
        assert_eq!(q.get("fieldSelector"), Some("involvedObject.name=p1,x=y"));
        assert_eq!(q.all("command"), vec!["ls", "/"]);
        assert!(q.flag("watch"));
        assert!(!q.flag("follow"));
    }
}
