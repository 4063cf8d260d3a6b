//! `metrics.k8s.io/v1beta1`, as metrics-server serves it behind kube-apiserver: `GET` of
//! `nodes[/NAME]`, `namespaces/NS/pods[/NAME]` and `pods` (every namespace), with label and
//! field selectors, as objects, lists or Tables. Routing and serializing only: which pods and
//! nodes have what usage is `localfargate_registry::metrics`'s.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use localfargate_core::selectors::{FieldSelector, LabelSelector};
use localfargate_registry::KubeError;
use localfargate_registry::metrics::{GROUP, MetricsItem, Selection, VERSION, resources};

use crate::context::Api;
use crate::request::Query;
use crate::response::{TABLE_CONTENT_TYPE, error_response, json_response, json_typed, wants_table};

/// The part of a path below `/apis/metrics.k8s.io/v1beta1/`, when it is there.
pub fn resource_path(path: &str) -> Option<&str> {
    path.strip_prefix("/apis/")?
        .strip_prefix(GROUP)?
        .strip_prefix('/')?
        .strip_prefix(VERSION)?
        .strip_prefix('/')
}

/// What a path names.
enum Request<'a> {
    Node(&'a str),
    Nodes,
    Pod { namespace: &'a str, name: &'a str },
    Pods(Option<&'a str>),
}

impl Request<'_> {
    /// The resource, for selectors and messages.
    fn resource(&self) -> &'static str {
        match self {
            Request::Node(_) | Request::Nodes => "nodes",
            Request::Pod { .. } | Request::Pods(_) => "pods",
        }
    }
}

fn parse(rest: &str) -> Option<Request<'_>> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let nonempty = |s: &&str| !s.is_empty();
    Some(match segments.as_slice() {
        ["nodes"] => Request::Nodes,
        ["nodes", name] if nonempty(name) => Request::Node(name),
        ["pods"] => Request::Pods(None),
        ["namespaces", ns, "pods"] if nonempty(ns) => Request::Pods(Some(ns)),
        ["namespaces", ns, "pods", name] if nonempty(ns) && nonempty(name) => Request::Pod {
            namespace: ns,
            name,
        },
        _ => return None,
    })
}

/// The authorization attributes of a request below `/apis/metrics.k8s.io/v1beta1/`, as the
/// aggregated metrics-server's requests are authorized (`get`/`list`/`watch` on
/// `pods.metrics.k8s.io` or `nodes.metrics.k8s.io`), or None for a path it does not serve.
pub fn attributes(
    user: &localfargate_core::rbac::UserInfo,
    method: &Method,
    rest: &str,
    query: &Query,
) -> Option<localfargate_core::rbac::Attributes> {
    use localfargate_core::rbac::Attributes;
    let request = parse(rest)?;
    let verb = match (method, &request) {
        (&Method::GET, Request::Node(_) | Request::Pod { .. }) => "get",
        (&Method::GET, _) if query.flag("watch") => "watch",
        (&Method::GET, _) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "",
    };
    let (namespace, name) = match request {
        Request::Node(name) => ("", name),
        Request::Nodes | Request::Pods(None) => ("", ""),
        Request::Pods(Some(ns)) => (ns, ""),
        Request::Pod { namespace, name } => (namespace, name),
    };
    Some(
        Attributes::resource(user.clone(), verb, namespace, GROUP, request.resource())
            .with_name(name),
    )
}

/// Answers one request below `/apis/metrics.k8s.io/v1beta1/`.
pub fn serve(
    api: &Api,
    method: &Method,
    rest: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Response {
    match answer(api, method, rest, query, headers) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn answer(
    api: &Api,
    method: &Method,
    rest: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let request = parse(rest).ok_or_else(|| KubeError::NotFound {
        message: "the server could not find the requested resource".into(),
        kind: String::new(),
        name: String::new(),
    })?;
    let qualified = format!("{}.{GROUP}", request.resource());
    if method != Method::GET {
        return Err(KubeError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {qualified})"
        )));
    }
    let (objects, store) = (&api.objects, &*api.metrics);
    let one = |item: MetricsItem| {
        if wants_table(headers) {
            json_typed(
                StatusCode::OK,
                &resources::table(std::slice::from_ref(&item)),
                TABLE_CONTENT_TYPE,
            )
        } else {
            json_response(StatusCode::OK, &item.to_json())
        }
    };
    match request {
        Request::Node(name) => Ok(one(resources::node(objects, store, name)?)),
        Request::Pod { namespace, name } => {
            Ok(one(resources::pod(objects, store, namespace, name)?))
        }
        Request::Nodes | Request::Pods(_) => {
            if query.flag("watch") {
                return Err(KubeError::MethodNotAllowed(format!(
                    "watch is not supported on resources of kind \"{qualified}\""
                )));
            }
            let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
                .map_err(|e| KubeError::BadRequest(e.to_string()))?;
            let fields = FieldSelector::parse(
                query.get("fieldSelector").unwrap_or(""),
                GROUP,
                request.resource(),
            )
            .map_err(|e| KubeError::BadRequest(e.to_string()))?;
            let selection = Selection {
                labels: &labels,
                fields: &fields,
            };
            let (kind, items) = match request {
                Request::Pods(namespace) => (
                    "PodMetricsList",
                    resources::pods(objects, store, namespace, &selection)?,
                ),
                _ => (
                    "NodeMetricsList",
                    resources::nodes(objects, store, &selection)?,
                ),
            };
            Ok(if wants_table(headers) {
                json_typed(
                    StatusCode::OK,
                    &resources::table(&items),
                    TABLE_CONTENT_TYPE,
                )
            } else {
                json_response(StatusCode::OK, &resources::list(kind, &items))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_authorized_as_metrics_resources() {
        let user = localfargate_core::rbac::UserInfo::new("u", &[]);
        let q = Query::parse(None);
        let a = attributes(&user, &Method::GET, "namespaces/ns/pods/p", &q).unwrap();
        assert_eq!(
            (
                a.verb.as_str(),
                a.namespace.as_str(),
                a.api_group.as_str(),
                a.resource.as_str(),
                a.name.as_str()
            ),
            ("get", "ns", GROUP, "pods", "p")
        );
        let a = attributes(&user, &Method::GET, "nodes", &q).unwrap();
        assert_eq!((a.verb.as_str(), a.resource.as_str()), ("list", "nodes"));
        assert!(attributes(&user, &Method::GET, "widgets", &q).is_none());
    }

    #[test]
    fn paths_name_what_metrics_server_serves() {
        assert_eq!(
            resource_path("/apis/metrics.k8s.io/v1beta1/nodes"),
            Some("nodes")
        );
        assert_eq!(resource_path("/apis/metrics.k8s.io/v1beta1"), None);
        assert_eq!(resource_path("/apis/metrics.k8s.io/v1/nodes"), None);
        assert_eq!(resource_path("/apis/apps/v1/deployments"), None);
        assert!(matches!(parse("nodes"), Some(Request::Nodes)));
        assert!(matches!(parse("nodes/n1"), Some(Request::Node("n1"))));
        assert!(matches!(parse("pods"), Some(Request::Pods(None))));
        assert!(matches!(
            parse("namespaces/default/pods"),
            Some(Request::Pods(Some("default")))
        ));
        assert!(matches!(
            parse("namespaces/default/pods/p"),
            Some(Request::Pod {
                namespace: "default",
                name: "p"
            })
        ));
        for bad in [
            "",
            "nodes/n1/status",
            "namespaces/default/nodes",
            "namespaces//pods",
            "deployments",
            "namespaces/default/pods/p/log",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
