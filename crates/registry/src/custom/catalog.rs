//! The custom resources one cluster serves: its established CustomResourceDefinitions read as
//! resource types, next to the built-in ones of [`crate::resources`]. The API's routing,
//! discovery and OpenAPI ask a [`Catalog`] what exists; [`CustomResources`] keeps the current one
//! and is told when a definition changes, so a CRD is served from the next request on, as
//! kube-apiserver's discovery is updated at once.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};

use internment::Intern;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use localfargate_store::{Store, StoreError};
use serde_json::Value;

use super::schema::Structural;
use crate::resources::{self, RESOURCES, ResourceType, Subresource};

/// The group of CustomResourceDefinitions, whose store keys all start with it.
pub const CRD_GROUP: &str = "apiextensions.k8s.io";
/// Where the definitions live in a cluster's store.
pub const CRD_KEY_PREFIX: &str = "apiextensions.k8s.io/customresourcedefinitions/";
/// Held on every definition until its custom resources are gone, as upstream's finalizer is.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// A string that lives as long as the process: resource types are `'static` (the built-ins are
/// constants), and a custom one is made of the same strings each time its definition is read,
/// so interning keeps the memory bounded by the distinct names ever defined.
fn intern(s: &str) -> &'static str {
    Intern::<str>::from(s).as_ref()
}

fn intern_all(items: &[String]) -> &'static [&'static str] {
    let interned: Vec<&'static str> = items.iter().map(|s| intern(s)).collect();
    Intern::new(interned).as_ref().as_slice()
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// One `additionalPrinterColumns` entry (with the `Age` column upstream adds when there are
/// none).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// integer, number, string, boolean or date.
    pub column_type: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    pub json_path: String,
}

/// Where a custom resource keeps what `/scale` reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    /// `.spec.replicas`
    pub spec_replicas: String,
    /// `.status.replicas`
    pub status_replicas: String,
    /// `.status.selector`: a label selector in its string form.
    pub label_selector: Option<String>,
}

/// A version's compiled schema, shared by every request through it. Two are equal when they
/// are the same compilation (what a request's target compares).
#[derive(Debug, Clone)]
pub struct CompiledSchema(pub Arc<Structural>);

impl PartialEq for CompiledSchema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for CompiledSchema {
    type Target = Structural;
    fn deref(&self) -> &Structural {
        &self.0
    }
}

/// One served version of a custom resource.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomVersion {
    pub rt: &'static ResourceType,
    pub storage: bool,
    /// `schema.openAPIV3Schema`, compiled: what prunes, defaults and validates objects.
    pub schema: Option<CompiledSchema>,
    /// The same, as JSON (for the OpenAPI documents).
    pub schema_json: Value,
    pub scale: Option<ScalePaths>,
    pub columns: Vec<PrinterColumn>,
    /// The warning a request to a deprecated version gets.
    pub deprecation_warning: Option<String>,
}

/// A custom resource: its definition, read.
#[derive(Debug, Clone)]
pub struct CustomResource {
    /// `crontabs.stable.example.com`
    pub crd_name: String,
    pub group: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub list_kind: String,
    pub namespaced: bool,
    /// The version objects are stored in.
    pub storage_version: &'static str,
    /// The served versions, highest priority first (the preferred version leads).
    pub versions: Vec<Arc<CustomVersion>>,
    /// `spec.conversion.strategy: Webhook`: objects are converted between versions by the
    /// webhook (see `webhooks::conversion`).
    pub conversion_webhook: bool,
    /// `spec.conversion.webhook` (`clientConfig`, `conversionReviewVersions`) then.
    pub conversion: Option<Arc<Value>>,
    /// Being deleted: its objects are being removed, and no new ones may be created.
    pub terminating: bool,
}

/// Why a stored definition cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("CustomResourceDefinition {name}: {reason}")]
pub struct Unservable {
    pub name: String,
    pub reason: String,
}

fn condition_true(crd: &CustomResourceDefinition, kind: &str) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

impl CustomResource {
    /// The served resource a stored definition describes, if it is established.
    pub fn from_crd(value: &Value) -> Result<Option<Self>, Unservable> {
        let name = crate::meta::name_of(value).to_string();
        let unservable = |reason: String| Unservable {
            name: name.clone(),
            reason,
        };
        let crd: CustomResourceDefinition =
            serde_json::from_value(value.clone()).map_err(|e| unservable(e.to_string()))?;
        if !condition_true(&crd, "Established") {
            return Ok(None);
        }
        Self::from_definition(&crd, value).map(Some)
    }

    /// The resource of a definition, whatever its conditions say (the cleanup of a
    /// definition being deleted needs it too).
    pub fn from_definition(
        crd: &CustomResourceDefinition,
        value: &Value,
    ) -> Result<Self, Unservable> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let spec = &crd.spec;
        let group = intern(&spec.group);
        let plural = intern(&spec.names.plural);
        let kind = intern(&spec.names.kind);
        let singular = intern(
            &spec
                .names
                .singular
                .clone()
                .unwrap_or_else(|| spec.names.kind.to_lowercase()),
        );
        let namespaced = spec.scope == "Namespaced";
        let short_names = intern_all(spec.names.short_names.as_deref().unwrap_or_default());
        let categories = intern_all(spec.names.categories.as_deref().unwrap_or_default());
        let storage_version = spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| intern(&v.name))
            .ok_or_else(|| Unservable {
                name: name.clone(),
                reason: "no storage version".into(),
            })?;
        let mut versions: Vec<Arc<CustomVersion>> = spec
            .versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.served)
            .map(|(i, v)| {
                // The schema as written (JSON by nature: the typed form re-shapes it).
                let schema_json = value["spec"]["versions"][i]["schema"]["openAPIV3Schema"].clone();
                Arc::new(version_of(
                    v,
                    schema_json,
                    ResourceType {
                        group,
                        version: intern(&v.name),
                        resource: plural,
                        singular,
                        kind,
                        namespaced,
                        short_names,
                        categories,
                        read_only: false,
                        has_status: false,
                        create_only: false,
                        custom: true,
                        subresources: &[],
                    },
                ))
            })
            .collect();
        versions.sort_by(|a, b| compare_versions(a.rt.version, b.rt.version));
        let conversion_webhook = spec
            .conversion
            .as_ref()
            .is_some_and(|c| c.strategy == "Webhook");
        // The webhook's settings as written, for the webhook client, which reads a
        // `clientConfig` from the CRD's and the webhook configurations' JSON alike.
        let conversion =
            conversion_webhook.then(|| Arc::new(value["spec"]["conversion"]["webhook"].clone()));
        Ok(CustomResource {
            crd_name: name,
            group,
            plural,
            kind,
            list_kind: spec
                .names
                .list_kind
                .clone()
                .unwrap_or_else(|| format!("{kind}List")),
            namespaced,
            storage_version,
            versions,
            conversion_webhook,
            conversion,
            terminating: crd.metadata.deletion_timestamp.is_some(),
        })
    }

    /// The served version `version`.
    pub fn version(&self, version: &str) -> Option<&Arc<CustomVersion>> {
        self.versions.iter().find(|v| v.rt.version == version)
    }

    /// The version discovery prefers: the highest by Kubernetes' version ordering.
    pub fn preferred(&self) -> Option<&Arc<CustomVersion>> {
        self.versions.first()
    }

    /// The resource type objects are stored as.
    pub fn storage(&self) -> Option<&'static ResourceType> {
        self.version(self.storage_version).map(|v| v.rt)
    }
}

fn version_of(
    v: &CustomResourceDefinitionVersion,
    schema_json: Value,
    base: ResourceType,
) -> CustomVersion {
    let sub = v.subresources.as_ref();
    let has_status = sub.is_some_and(|s| s.status.is_some());
    let scale = sub.and_then(|s| s.scale.as_ref()).map(|s| ScalePaths {
        spec_replicas: s.spec_replicas_path.clone(),
        status_replicas: s.status_replicas_path.clone(),
        label_selector: s.label_selector_path.clone(),
    });
    let mut subresources = Vec::new();
    if has_status {
        subresources.push(Subresource {
            name: "status",
            kind: base.kind,
            group: "",
            version: "",
            verbs: STATUS_VERBS,
        });
    }
    if scale.is_some() {
        subresources.push(Subresource {
            name: "scale",
            kind: "Scale",
            group: "autoscaling",
            version: "v1",
            verbs: STATUS_VERBS,
        });
    }
    let rt = ResourceType {
        has_status,
        subresources: Intern::new(subresources).as_ref().as_slice(),
        ..base
    };
    let mut columns: Vec<PrinterColumn> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| PrinterColumn {
            name: c.name.clone(),
            column_type: c.type_.clone(),
            format: c.format.clone().unwrap_or_default(),
            description: c.description.clone().unwrap_or_default(),
            priority: c.priority.unwrap_or(0),
            json_path: c.json_path.clone(),
        })
        .collect();
    if columns.is_empty() {
        columns.push(PrinterColumn {
            name: "Age".into(),
            column_type: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    }
    let deprecation_warning = v.deprecated.unwrap_or(false).then(|| {
        v.deprecation_warning
            .clone()
            .unwrap_or_else(|| format!("{}/{} {} is deprecated", base.group, v.name, base.kind))
    });
    CustomVersion {
        rt: Intern::new(rt).as_ref(),
        storage: v.storage,
        schema: v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.clone())
            .map(|s| CompiledSchema(Arc::new(Structural::new(s)))),
        schema_json,
        scale,
        columns,
        deprecation_warning,
    }
}

/// How a version looks to Kubernetes' version ordering: GA, beta or alpha with its numbers, or
/// not Kubernetes-like at all.
fn version_rank(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    for (level, prefix) in [(2u8, "beta"), (1u8, "alpha")] {
        if let Some(n) = tail.strip_prefix(prefix)
            && let Ok(minor) = n.parse::<u64>()
        {
            return (level, major, minor);
        }
    }
    (0, 0, 0)
}

/// Kubernetes' version ordering, highest priority first: GA before beta before alpha, higher
/// numbers first, then anything else alphabetically (`CompareKubeAwareVersionStrings`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (version_rank(a), version_rank(b));
    match (ra.0, rb.0) {
        (0, 0) => a.cmp(b),
        _ => rb.cmp(&ra),
    }
}

/// What one cluster serves beyond the built-ins: its established custom resources.
#[derive(Debug, Default)]
pub struct Catalog {
    resources: Vec<CustomResource>,
    /// Changes whenever the catalog is rebuilt, so what is derived from it (the OpenAPI
    /// documents) can tell it is stale.
    generation: u64,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A served group: its name and versions, the preferred first.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedGroup {
    pub name: &'static str,
    pub versions: Vec<&'static str>,
}

impl Catalog {
    /// The catalog of these stored definitions (unestablished and unreadable ones are left
    /// out; the latter are logged).
    pub fn from_crds<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut resources: Vec<CustomResource> = crds
            .into_iter()
            .filter_map(|v| match CustomResource::from_crd(v) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "a CustomResourceDefinition is not served");
                    None
                }
            })
            .filter(|r| !r.versions.is_empty())
            .collect();
        resources.sort_by(|a, b| a.crd_name.cmp(&b.crd_name));
        Catalog {
            resources,
            generation: GENERATIONS.fetch_add(1, AtomicOrdering::Relaxed),
        }
    }

    /// The catalog of a cluster's stored definitions.
    pub fn load(store: &dyn Store, store_kind: &str) -> Result<Self, StoreError> {
        let (crds, _) = store.list(store_kind, CRD_KEY_PREFIX)?;
        Ok(Self::from_crds(crds.iter().map(|o| &o.value)))
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn custom_resources(&self) -> &[CustomResource] {
        &self.resources
    }

    /// The custom resource `plural` of `group`.
    pub fn custom(&self, group: &str, plural: &str) -> Option<&CustomResource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
    }

    /// The custom resource and version behind a resource type, if it is a custom one.
    pub fn version_of(&self, rt: &ResourceType) -> Option<(&CustomResource, &Arc<CustomVersion>)> {
        if !rt.custom {
            return None;
        }
        let r = self.custom(rt.group, rt.resource)?;
        Some((r, r.version(rt.version)?))
    }

    /// The resource served at `group`/`version`/`plural`: a built-in, else a custom one.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceType> {
        resources::resource(group, version, plural).or_else(|| {
            self.custom(group, plural)
                .and_then(|r| r.version(version))
                .map(|v| v.rt)
        })
    }

    /// The resource of an object's `apiVersion` and `kind`.
    pub fn resource_for_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<&'static ResourceType> {
        resources::resource_for_kind(api_version, kind).or_else(|| {
            let (group, version) = api_version.split_once('/')?;
            self.resources
                .iter()
                .find(|r| r.group == group && r.kind == kind)
                .and_then(|r| r.version(version))
                .map(|v| v.rt)
        })
    }

    /// Every resource served in `group`/`version`, in discovery order.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&'static ResourceType> {
        let built_in = RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version);
        let custom = self
            .resources
            .iter()
            .filter(|r| r.group == group)
            .filter_map(|r| r.version(version).map(|v| v.rt));
        built_in.chain(custom).collect()
    }

    /// One resource type per served resource (custom ones in their preferred version): what
    /// every namespace, garbage collection and `kubectl api-resources` walk.
    pub fn all_resources(&self) -> Vec<&'static ResourceType> {
        RESOURCES
            .iter()
            .chain(self.resources.iter().filter_map(|r| r.storage()))
            .collect()
    }

    /// The groups served, built-ins first in discovery order, then custom ones by name, each
    /// with its versions, the preferred first.
    pub fn groups(&self) -> Vec<ServedGroup> {
        let mut out: Vec<ServedGroup> = resources::groups()
            .into_iter()
            .map(|name| ServedGroup {
                name,
                versions: resources::group_version(name).into_iter().collect(),
            })
            .collect();
        let mut custom: Vec<ServedGroup> = Vec::new();
        for r in &self.resources {
            let entry = match custom.iter_mut().find(|g| g.name == r.group) {
                Some(g) => g,
                None => {
                    custom.push(ServedGroup {
                        name: r.group,
                        versions: Vec::new(),
                    });
                    custom.last_mut().expect("just pushed")
                }
            };
            for v in &r.versions {
                if !entry.versions.contains(&v.rt.version) {
                    entry.versions.push(v.rt.version);
                }
            }
        }
        for g in &mut custom {
            g.versions.sort_by(|a, b| compare_versions(a, b));
        }
        custom.sort_by(|a, b| a.name.cmp(b.name));
        // A CRD in a built-in group adds its versions to that group.
        for g in custom {
            match out.iter_mut().find(|o| o.name == g.name) {
                Some(o) => {
                    for v in g.versions {
                        if !o.versions.contains(&v) {
                            o.versions.push(v);
                        }
                    }
                    o.versions.sort_by(|a, b| compare_versions(a, b));
                }
                None => out.push(g),
            }
        }
        out
    }

    /// The served group `group`, if any.
    pub fn group(&self, group: &str) -> Option<ServedGroup> {
        self.groups().into_iter().find(|g| g.name == group)
    }
}

/// One cluster's current catalog, kept until a definition changes.
#[derive(Debug, Default)]
pub struct CustomResources {
    current: RwLock<Option<Arc<Catalog>>>,
}

impl CustomResources {
    /// The current catalog, read from the store if a definition changed since the last one.
    pub fn get(&self, store: &dyn Store, store_kind: &str) -> Result<Arc<Catalog>, StoreError> {
        if let Some(c) = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(c.clone());
        }
        let catalog = Arc::new(Catalog::load(store, store_kind)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(catalog.clone());
        Ok(catalog)
    }

    /// A definition changed: the next `get` reads them again.
    pub fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Run `changed` whenever something under `prefix` of a cluster's store changes (and once at
/// the start), until the task is dropped: how caches of stored objects (the definitions here,
/// the RBAC policy in the API) learn of writes made through another `Objects`.
pub async fn on_changes(
    store: Arc<dyn Store>,
    store_kind: String,
    prefix: String,
    changed: impl Fn(),
) {
    loop {
        let revision = match store.list(&store_kind, &prefix) {
            Ok((_, revision)) => revision,
            Err(e) => {
                tracing::error!(error = %e, prefix, "listing to watch");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        changed();
        let mut watcher = match store.watch(&store_kind, &prefix, revision) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, prefix, "watching");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        while watcher.next().await.is_ok() {
            changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn crontab_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]},
                    {"name": "v2alpha1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            },
            "status": {"conditions": [{"type": "Established", "status": "True"}]}
        })
    }

    #[test]
    fn versions_order_as_kubernetes_orders_them() {
        let mut vs = vec![
            "v1beta1", "foo", "v2", "v1alpha1", "v1", "v10beta3", "bar", "v1beta2",
        ];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            vs,
            [
                "v2", "v1", "v10beta3", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }

    #[test]
    fn an_established_definition_is_served_in_its_served_versions() {
        let crd = crontab_crd();
        let catalog = Catalog::from_crds([&crd]);
        let r = catalog.custom("stable.example.com", "crontabs").unwrap();
        assert_eq!(r.storage_version, "v1");
        let versions: Vec<&str> = r.versions.iter().map(|v| v.rt.version).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let v1 = catalog
            .resource("stable.example.com", "v1", "crontabs")
            .unwrap();
        assert!(v1.custom && v1.has_status && v1.namespaced);
        assert_eq!(v1.short_names, ["ct"]);
        assert!(v1.subresource("scale").is_some());
        let beta = catalog
            .resource("stable.example.com", "v1beta1", "crontabs")
            .unwrap();
        assert!(!beta.has_status && beta.subresources.is_empty());
        assert!(
            catalog
                .resource("stable.example.com", "v2alpha1", "crontabs")
                .is_none()
        );
        assert_eq!(
            catalog.resource_for_kind("stable.example.com/v1beta1", "CronTab"),
            Some(beta)
        );
        let group = catalog.group("stable.example.com").unwrap();
        assert_eq!(group.versions, ["v1", "v1beta1"]);
        // Columns: the definition's, or Age when it has none.
        assert_eq!(r.version("v1").unwrap().columns[0].name, "Replicas");
        assert_eq!(r.version("v1beta1").unwrap().columns[0].name, "Age");
        // Built-ins are still found through the catalog.
        assert!(catalog.resource("apps", "v1", "deployments").is_some());
        assert_eq!(catalog.all_resources().len(), RESOURCES.len() + 1);
    }

    #[test]
    fn a_definition_not_yet_established_is_not_served() {
        let mut crd = crontab_crd();
        crd["status"] = json!({});
        assert!(Catalog::from_crds([&crd]).is_empty());
    }

    #[test]
    fn the_same_names_intern_to_the_same_resource_type() {
        let a = Catalog::from_crds([&crontab_crd()]);
        let b = Catalog::from_crds([&crontab_crd()]);
        let ra = a.resource("stable.example.com", "v1", "crontabs").unwrap();
        let rb = b.resource("stable.example.com", "v1", "crontabs").unwrap();
        assert!(std::ptr::eq(ra, rb));
        assert_ne!(a.generation(), b.generation());
    }
}
