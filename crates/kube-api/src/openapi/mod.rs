//! OpenAPI for the Kubernetes API: `/openapi/v2` (JSON and gnostic protobuf) and `/openapi/v3`
//! (a root and one document per group-version), built from upstream's own v1.33 swagger
//! (vendored under `crates/kube-api/openapi/`, with every `x-kubernetes-*` extension) and
//! restricted to the resources this server serves, plus the schemas of custom resources; and
//! strict field validation (`fieldValidation=Strict|Warn`) against the same schemas.
//!
//! The interface is narrow on purpose, so it can be fed from whatever registry lists the served
//! resources: build a [`Catalog`] with [`CatalogBuilder`] from [`ServedResource`]s (and custom
//! resources' OpenAPI v3 schemas), then serve it with [`http::serve`] and validate writes with
//! [`Catalog::unknown_fields`]. [`served`] is the catalog of `localfargate_registry::resources::RESOURCES`.

mod custom;
pub mod gnostic;
pub mod http;
mod restrict;
mod upstream;
mod v3;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use localfargate_registry::resources::{self as kube, ResourceType};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

pub use validate::strict_decoding_message;

/// What could go wrong building the catalog: only a damaged vendored spec, or a custom schema
/// that is not a JSON object.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("decompressing the vendored OpenAPI spec: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("parsing the vendored OpenAPI spec: {0}")]
    Parse(#[source] serde_json::Error),
    #[error("the OpenAPI schema of {kind}.{group} is not an object")]
    CustomSchema { group: String, kind: String },
}

/// A resource the server serves, as OpenAPI needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedResource {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural name in URLs.
    pub plural: String,
    pub namespaced: bool,
    /// The served subresources (`status`, `scale`, `log`, …).
    pub subresources: Vec<String>,
}

impl From<&ResourceType> for ServedResource {
    fn from(r: &ResourceType) -> Self {
        ServedResource {
            group: r.group.to_string(),
            version: r.version.to_string(),
            kind: r.kind.to_string(),
            plural: r.resource.to_string(),
            namespaced: r.namespaced,
            subresources: r.subresources.iter().map(|s| s.name.to_string()).collect(),
        }
    }
}

impl ServedResource {
    fn group_version(&self) -> GroupVersion {
        GroupVersion::new(&self.group, &self.version)
    }
}

/// A custom resource and its structural OpenAPI v3 schema (a CRD version's
/// `schema.openAPIV3Schema`).
#[derive(Debug, Clone)]
struct CustomResource {
    resource: ServedResource,
    schema: Value,
}

/// A group-version, and where its documents are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupVersion {
    pub group: String,
    pub version: String,
}

impl GroupVersion {
    pub fn new(group: &str, version: &str) -> Self {
        GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        }
    }

    /// `api/v1` or `apis/apps/v1`: the path below `/openapi/v3/`.
    pub fn openapi_path(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// `/api/v1` or `/apis/apps/v1`: the resource paths' prefix.
    fn url_prefix(&self) -> String {
        format!("/{}", self.openapi_path())
    }
}

/// Collects the served resources and custom resources a [`Catalog`] is built from.
#[derive(Debug, Default, Clone)]
pub struct CatalogBuilder {
    resources: Vec<ServedResource>,
    custom: Vec<CustomResource>,
}

impl CatalogBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resources upstream's spec describes; one it does not describe is served with a schema
    /// that keeps every field (as a CRD without a schema would be).
    pub fn serve(mut self, resources: impl IntoIterator<Item = ServedResource>) -> Self {
        self.resources.extend(resources);
        self
    }

    /// A custom resource (a CRD's version) with its OpenAPI v3 schema; it replaces a served
    /// resource of the same group, version and kind. Its `status` and `scale` subresources get
    /// their paths as apiextensions-apiserver publishes them.
    #[allow(clippy::too_many_arguments)]
    pub fn with_custom_resource(
        mut self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        subresources: &[&str],
        openapi_v3_schema: &Value,
    ) -> Self {
        self.custom.push(CustomResource {
            resource: ServedResource {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                namespaced,
                subresources: subresources.iter().map(|s| s.to_string()).collect(),
            },
            schema: openapi_v3_schema.clone(),
        });
        self
    }

    pub fn build(self) -> Result<Catalog, OpenApiError> {
        let spec = upstream::spec()?;
        let upstream_kinds = restrict::kinds(spec);
        let mut custom = self.custom;
        let mut resources = Vec::new();
        for r in self.resources {
            let replaced = custom.iter().any(|c| {
                (&c.resource.group, &c.resource.version, &c.resource.kind)
                    == (&r.group, &r.version, &r.kind)
            });
            if replaced {
                continue;
            }
            if upstream_kinds.contains_key(&(r.group.clone(), r.version.clone(), r.kind.clone())) {
                resources.push(r);
            } else {
                // Not in upstream's spec: every field is kept, as for a CRD without a schema.
                custom.push(CustomResource {
                    schema: json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                    resource: r,
                });
            }
        }
        let mut v2 = restrict::restrict(spec, &resources);
        for c in &custom {
            custom::add(&mut v2, c)?;
        }
        let mut kinds = HashMap::new();
        let definitions = v2["definitions"].as_object().cloned().unwrap_or_default();
        for (name, def) in &definitions {
            for gvk in def["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let key = (
                    gvk["group"].as_str().unwrap_or("").to_string(),
                    gvk["version"].as_str().unwrap_or("").to_string(),
                    gvk["kind"].as_str().unwrap_or("").to_string(),
                );
                kinds.entry(key).or_insert_with(|| name.clone());
            }
        }
        let mut group_versions: Vec<GroupVersion> = resources
            .iter()
            .chain(custom.iter().map(|c| &c.resource))
            .map(ServedResource::group_version)
            .collect();
        group_versions.sort();
        group_versions.dedup();
        let reencoded_holders = validate::reencoded_holders(&definitions);
        Ok(Catalog {
            v2,
            reencoded_holders,
            definitions,
            kinds,
            group_versions,
            documents: OnceLock::new(),
        })
    }
}

/// One rendered document, with the entity tag kube-apiserver gives it (the SHA-512 of its JSON,
/// upper-case hex).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: String,
}

impl Rendered {
    fn json(value: &Value) -> Self {
        let body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let etag = etag(&body);
        Rendered { body, etag }
    }
}

fn etag(data: &[u8]) -> String {
    hex::encode_upper(Sha512::digest(data))
}

/// The documents, rendered once on first use.
#[derive(Debug)]
struct Documents {
    v2_json: Rendered,
    /// The protobuf carries the JSON's entity tag, as upstream's does.
    v2_protobuf: Bytes,
    v3_root: Rendered,
    v3: BTreeMap<String, Rendered>,
}

/// The OpenAPI of one set of served resources: documents to serve and schemas to validate
/// against. Immutable: a change of the served resources (a CRD) builds a new one.
#[derive(Debug)]
pub struct Catalog {
    /// The swagger 2.0 document, restricted to the served resources.
    v2: Value,
    /// `v2.definitions`, by name.
    definitions: serde_json::Map<String, Value>,
    /// The definitions with a quantity, a timestamp or a `[]byte` somewhere below them.
    reencoded_holders: HashSet<String>,
    /// The definition of each group-version-kind.
    kinds: HashMap<(String, String, String), String>,
    group_versions: Vec<GroupVersion>,
    documents: OnceLock<Documents>,
}

impl Catalog {
    /// The swagger 2.0 document (`/openapi/v2`).
    pub fn v2(&self) -> &Value {
        &self.v2
    }

    /// The name of the definition of a group-version-kind (`io.k8s.api.core.v1.Pod`).
    pub fn definition_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// The group-versions with a v3 document.
    pub fn group_versions(&self) -> &[GroupVersion] {
        &self.group_versions
    }

    /// The OpenAPI 3.0 document of one group-version (`api/v1`, `apis/apps/v1`).
    pub fn v3_document(&self, gv: &GroupVersion) -> Value {
        v3::document(&self.v2, gv)
    }

    /// The `/openapi/v3` root: each group-version's document URL with its hash.
    pub fn v3_root(&self) -> Value {
        let docs = self.documents();
        root_of(&docs.v3)
    }

    /// The JSON paths (`spec.containers[0].foo`) of the fields of `obj` that the schema of its
    /// group-version-kind does not know, in the order a decoder meets them; empty for a kind
    /// without a schema.
    pub fn unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        obj: &Value,
    ) -> Vec<String> {
        match self.definition_of(group, version, kind) {
            Some(name) => validate::unknown_fields(&self.definitions, name, obj),
            None => Vec::new(),
        }
    }

    fn documents(&self) -> &Documents {
        self.documents.get_or_init(|| {
            let v2_json = Rendered::json(&self.v2);
            let v2_protobuf =
                Bytes::from(prost::Message::encode_to_vec(&gnostic::document(&self.v2)));
            let v3: BTreeMap<String, Rendered> = self
                .group_versions
                .iter()
                .map(|gv| (gv.openapi_path(), Rendered::json(&self.v3_document(gv))))
                .collect();
            let v3_root = Rendered::json(&root_of(&v3));
            Documents {
                v2_json,
                v2_protobuf,
                v3_root,
                v3,
            }
        })
    }
}

fn root_of(v3: &BTreeMap<String, Rendered>) -> Value {
    let paths: serde_json::Map<String, Value> = v3
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"serverRelativeURL": server_relative_url(path, &doc.etag)}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn server_relative_url(path: &str, etag: &str) -> String {
    format!("/openapi/v3/{path}?hash={etag}")
}

/// The schema of the mirrored Fargate profiles, which upstream's spec does not have.
const FARGATE_PROFILE_SCHEMA: &str = include_str!("../../openapi/fargateprofile.json");

/// The catalog of the resources this server serves (`localfargate_registry::resources::RESOURCES`),
/// built once on first use.
pub fn served() -> Result<&'static Catalog, &'static OpenApiError> {
    static SERVED: OnceLock<Result<Catalog, OpenApiError>> = OnceLock::new();
    SERVED
        .get_or_init(|| {
            let catalog = built_in().build();
            if let Err(e) = &catalog {
                tracing::error!(error = %e, "building the OpenAPI catalog");
            }
            catalog
        })
        .as_ref()
}

/// The built-in resources, and the mirrored Fargate profiles with their schema.
fn built_in() -> CatalogBuilder {
    let mut builder = CatalogBuilder::new().serve(kube::RESOURCES.iter().map(ServedResource::from));
    if let Ok(schema) = serde_json::from_str::<Value>(FARGATE_PROFILE_SCHEMA)
        && let Some(fp) = kube::resource(kube::FARGATE_GROUP, "v1", "fargateprofiles")
    {
        builder = builder.with_custom_resource(
            fp.group,
            fp.version,
            fp.kind,
            fp.resource,
            fp.namespaced,
            &[],
            &schema,
        );
    }
    builder
}

/// The catalog of a cluster that also serves custom resources: the built-ins and each served
/// version of each custom resource, with its definition's schema (or one that keeps every
/// field, for a version without one).
pub fn with_custom_resources(
    custom: &localfargate_registry::custom::Catalog,
) -> Result<Catalog, OpenApiError> {
    let mut builder = built_in();
    for r in custom.custom_resources() {
        for v in &r.versions {
            let schema = if v.schema_json.is_object() {
                v.schema_json.clone()
            } else {
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
            };
            builder = builder.with_custom_resource(
                r.group,
                v.rt.version,
                r.kind,
                r.plural,
                r.namespaced,
                &v.rt.subresources.iter().map(|s| s.name).collect::<Vec<_>>(),
                &schema,
            );
        }
    }
    builder.build()
}

/// The OpenAPI catalog one cluster serves: the built-ins' when it has no custom resources,
/// else one built for its current definitions and kept until they change.
#[derive(Debug, Default)]
pub struct ClusterOpenApi {
    built: std::sync::Mutex<Option<(u64, Arc<Catalog>)>>,
}

/// A catalog: the shared built-in one, or a cluster's own.
pub enum CatalogRef {
    BuiltIn(&'static Catalog),
    Cluster(Arc<Catalog>),
}

impl std::ops::Deref for CatalogRef {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        match self {
            CatalogRef::BuiltIn(c) => c,
            CatalogRef::Cluster(c) => c,
        }
    }
}

impl ClusterOpenApi {
    pub fn catalog(
        &self,
        custom: &localfargate_registry::custom::Catalog,
    ) -> Result<CatalogRef, String> {
        if custom.is_empty() {
            return served().map(CatalogRef::BuiltIn).map_err(|e| e.to_string());
        }
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((generation, catalog)) = built.as_ref()
            && *generation == custom.generation()
        {
            return Ok(CatalogRef::Cluster(catalog.clone()));
        }
        let catalog = Arc::new(with_custom_resources(custom).map_err(|e| e.to_string())?);
        *built = Some((custom.generation(), catalog.clone()));
        Ok(CatalogRef::Cluster(catalog))
    }
}

/// The fields of `obj`, of a built-in kind, that its definition does not know, each as the
/// steps to it (field names as JSON strings, list indices as numbers); empty for a kind without
/// a definition here.
pub fn unknown_field_steps(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<Vec<Value>> {
    let Ok(catalog) = served() else {
        return Vec::new();
    };
    match catalog.definition_of(group, version, kind) {
        Some(name) => validate::unknown_field_steps(&catalog.definitions, name, obj),
        None => Vec::new(),
    }
}

/// A write's `fieldValidation` directive applied to the unknown fields of its object (by the
/// served catalog). Unknown fields are removed from `obj`, as kube-apiserver's decoding drops
/// them; the result is `Ok` with the warnings to send (`Warn`, upstream's default, or none for
/// `Ignore`) and the fields dropped, or `Err` with upstream's `BadRequest` message (`Strict`). A created or
/// replaced object (`before` None) is refused as a decoding failure of its kind; a patched one
/// with the bare strict-decoding error. `before`, for a patch, is the object patched: unknown
/// fields it had already are not the request's doing and stay (kube-apiserver never stores
/// any, so there this changes nothing; here it keeps a field the object machinery stored from
/// failing every later patch).
pub fn check_fields(
    group: &str,
    version: &str,
    kind: &str,
    directive: Option<&str>,
    obj: &mut Value,
    before: Option<&Value>,
) -> Result<FieldCheck, String> {
    let Ok(catalog) = served() else {
        return Ok(FieldCheck::default());
    };
    let Some(name) = catalog.definition_of(group, version, kind) else {
        return Ok(FieldCheck::default());
    };
    // kube-apiserver decodes the body into its Go type first: a value of the wrong JSON type
    // is a decoding error (400), before anything looks at the object.
    if let Some(e) = validate::type_error(&catalog.definitions, name, obj) {
        return Err(if before.is_some() {
            e
        } else {
            format!("{kind} in version {version:?} cannot be handled as a {kind}: {e}")
        });
    }
    let reencoded = reencode(catalog, name, kind, version, obj, before.is_some())?;
    let had = before
        .map(|b| validate::unknown_fields(&catalog.definitions, name, b))
        .unwrap_or_default();
    let dropped = validate::prune(&catalog.definitions, name, obj, &had);
    let mut checked = apply_directive(kind, version, directive, dropped, before.is_some())?;
    checked.rewritten |= reencoded;
    Ok(checked)
}

/// kube-apiserver's decoding error for a request body that is no stored object (a review, a
/// TokenRequest, an Eviction, a Binding): `TokenRequest in version "v1" cannot be handled as a
/// TokenRequest: json: cannot unmarshal string into Go struct field
/// TokenRequestSpec.spec.expirationSeconds of type int64`. The body's own `apiVersion` and
/// `kind` name its type when the served catalog knows them, else `default` (group, version,
/// kind) does, as upstream decodes into the endpoint's kind.
pub fn decode_check(default: (&str, &str, &str), obj: &Value) -> Result<(), String> {
    let Ok(catalog) = served() else {
        return Ok(());
    };
    let (group, version) = match obj.get("apiVersion").and_then(Value::as_str) {
        Some(api_version) => api_version.split_once('/').unwrap_or(("", api_version)),
        None => ("", ""),
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let ((_, version, kind), name) = match catalog.definition_of(group, version, kind) {
        Some(name) => ((group, version, kind), name),
        None => match catalog.definition_of(default.0, default.1, default.2) {
            Some(name) => (default, name),
            None => return Ok(()),
        },
    };
    match validate::type_error(&catalog.definitions, name, obj) {
        Some(e) => Err(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}"
        )),
        None => Ok(()),
    }
}

/// The quantities, timestamps and `[]byte` values of `obj`, of definition `name`, in the form
/// kube-apiserver stores them (see `validate::reencode`); whether one changed, or upstream's
/// decoding error.
fn reencode(
    catalog: &Catalog,
    name: &str,
    kind: &str,
    version: &str,
    obj: &mut Value,
    patched: bool,
) -> Result<bool, String> {
    validate::reencode(&catalog.definitions, &catalog.reencoded_holders, name, obj).map_err(|e| {
        if patched {
            e
        } else {
            format!("{kind} in version {version:?} cannot be handled as a {kind}: {e}")
        }
    })
}

/// The quantities, timestamps and `[]byte` values of `obj`, of a built-in kind, in the form
/// kube-apiserver stores them (`1000m` → `1`, a number → text, a time in UTC to the second,
/// base64 unwrapped), for writes that skip [`check_fields`] (server-side apply's merged
/// object): `Err` with upstream's `BadRequest` message for a value that does not parse.
pub fn reencode_values(
    group: &str,
    version: &str,
    kind: &str,
    obj: &mut Value,
) -> Result<(), String> {
    let Ok(catalog) = served() else {
        return Ok(());
    };
    match catalog.definition_of(group, version, kind) {
        Some(name) => reencode(catalog, name, kind, version, obj, true).map(|_| ()),
        None => Ok(()),
    }
}

/// A `fieldValidation` directive applied to the unknown fields `dropped` from a written object
/// (`patched`: the object came from a patch): the warnings to send, or `Strict`'s refusal.
pub fn apply_directive(
    kind: &str,
    version: &str,
    directive: Option<&str>,
    dropped: Vec<String>,
    patched: bool,
) -> Result<FieldCheck, String> {
    if dropped.is_empty() {
        return Ok(FieldCheck::default());
    }
    let warnings = match directive.unwrap_or("") {
        "Ignore" => Vec::new(),
        "Strict" => {
            let message = strict_decoding_message(&dropped);
            return Err(if patched {
                message
            } else {
                format!("{kind} in version {version:?} cannot be handled as a {kind}: {message}")
            });
        }
        _ => dropped
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect(),
    };
    Ok(FieldCheck {
        warnings,
        dropped,
        rewritten: true,
    })
}

/// What [`check_fields`] let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldCheck {
    /// The `Warning`s to send.
    pub warnings: Vec<String>,
    /// The paths of the fields removed from the object.
    pub dropped: Vec<String>,
    /// Whether the object changed: fields dropped, or values re-encoded as Go re-encodes them.
    pub rewritten: bool,
}

/// A `Warning` response header's value for one warning (`299 - "text"`), as kube-apiserver
/// sends them.
pub fn warning_header(text: &str) -> String {
    format!(
        "299 - \"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    )
}
