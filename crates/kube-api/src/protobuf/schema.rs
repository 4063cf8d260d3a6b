//! The Kubernetes v1.33 message descriptors (compiled by `build.rs` from the vendored
//! `proto/`), and which message carries a given `apiVersion` + `kind`.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

use super::ProtobufError;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.fds.bin"));

/// The pool, built once (a few milliseconds) from the embedded descriptor set.
pub fn pool() -> Result<&'static DescriptorPool, ProtobufError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ProtobufError::Schema(e.clone()))
}

/// Kinds of `meta.k8s.io/v1` that every group version also serves under its own apiVersion
/// (a `DeleteOptions` posted to `apps/v1`, a `Status` answering a core request).
const META_KINDS: &[&str] = &[
    "DeleteOptions",
    "Status",
    "WatchEvent",
    "ListOptions",
    "GetOptions",
    "CreateOptions",
    "PatchOptions",
    "UpdateOptions",
];

/// Kinds that stay JSON even though a message exists: kube-apiserver serves Tables through
/// its own content types, and the vendored protos name no custom resources.
const JSON_ONLY_KINDS: &[&str] = &["Table", "TableOptions"];

/// The proto package prefix of a built-in API group (`apps` → `api.apps`). Only built-in
/// groups: a custom resource group such as `apps.example.com` has no protobuf form.
fn package(group: &str) -> Option<&'static str> {
    Some(match group {
        "" => "api.core",
        "meta.k8s.io" => "apimachinery.pkg.apis.meta",
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions",
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration",
        "internal.apiserver.k8s.io" => "api.apiserverinternal",
        "apps" => "api.apps",
        "batch" => "api.batch",
        "autoscaling" => "api.autoscaling",
        "policy" => "api.policy",
        "extensions" => "api.extensions",
        "admission.k8s.io" => "api.admission",
        "admissionregistration.k8s.io" => "api.admissionregistration",
        "authentication.k8s.io" => "api.authentication",
        "authorization.k8s.io" => "api.authorization",
        "certificates.k8s.io" => "api.certificates",
        "coordination.k8s.io" => "api.coordination",
        "discovery.k8s.io" => "api.discovery",
        "events.k8s.io" => "api.events",
        "flowcontrol.apiserver.k8s.io" => "api.flowcontrol",
        "imagepolicy.k8s.io" => "api.imagepolicy",
        "networking.k8s.io" => "api.networking",
        "node.k8s.io" => "api.node",
        "rbac.authorization.k8s.io" => "api.rbac",
        "resource.k8s.io" => "api.resource",
        "scheduling.k8s.io" => "api.scheduling",
        "storage.k8s.io" => "api.storage",
        "storagemigration.k8s.io" => "api.storagemigration",
        _ => return None,
    })
}

/// The message for objects of `api_version` + `kind`, if that kind has a protobuf form.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !word(kind) || JSON_ONLY_KINDS.contains(&kind) {
        return None;
    }
    let pool = pool().ok()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if !word(version) {
        return None;
    }
    let package = package(group)?;
    let name = format!("{package}.{version}.{kind}");
    pool.get_message_by_name(&name).or_else(|| {
        META_KINDS
            .contains(&kind)
            .then(|| pool.get_message_by_name(&format!("apimachinery.pkg.apis.meta.v1.{kind}")))
            .flatten()
    })
}

/// Whether objects of `api_version` + `kind` can be sent as protobuf.
pub fn has_protobuf_form(api_version: &str, kind: &str) -> bool {
    message_for(api_version, kind).is_some()
}
