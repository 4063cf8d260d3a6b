//! The Kubernetes object semantics of one cluster over the store: what the API server's storage
//! layer does. Names, uids, timestamps, generations, defaulting, status subresources, optimistic
//! concurrency, namespaces that must exist, graceful and finalizer-held deletion, and Fargate's
//! admission on pod creation. The HTTP front end and every reconciler write through this, so a pod
//! a ReplicaSet controller makes is admitted exactly like one `kubectl apply` makes.

use std::sync::Arc;

use crate::resources::{self, ResourceType};
use localfargate_core::validation;
use localfargate_store::{Object, Revision, Store, StoreError, Tx, transaction};
use serde_json::{Value, json};

use crate::custom::catalog::CRD_GROUP;
use crate::custom::{Catalog, CustomResources};
pub use crate::error::{KubeError, Result};
use crate::meta::{DynamicObject, Field, ObjectMeta};
pub use crate::meta::{
    finalizers, into_resource_version, is_deleting, is_finished, name_of, namespace_of, new_uid,
    now_rfc3339, rfc3339, set_resource_version, uid_of, with_resource_version,
};
use crate::settings::Settings;
use crate::strategy::{Deletion, strategy_for};

/// How dependents go when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone; this is how it was.
    Gone(Value),
    /// Deletion started (a finalizer or a running pod holds it); this is how it is now.
    Pending(Value),
}

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

/// One cluster's objects.
#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn Store>,
    pub cluster: String,
    pub settings: Arc<Settings>,
    kind: Arc<str>,
    profiles: Arc<crate::profile_index::IndexCache>,
    custom: Arc<CustomResources>,
    pub(crate) webhooks: Arc<crate::webhooks::Webhooks>,
}

const NAME_CHARS: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Whether `name` is a DNS-1123 subdomain, as most object names must be.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Why a name cannot be a path segment (`ValidatePathSegmentName`), if it cannot.
fn unsafe_path_segment(name: &str) -> Option<String> {
    if name == "." || name == ".." {
        return Some(format!("may not be '{name}'"));
    }
    ["/", "%"]
        .iter()
        .find(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
}

/// Five characters the way upstream's `generateName` picks them (no vowels, no look-alikes).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Objects {
    pub fn new(store: Arc<dyn Store>, cluster: &str, settings: Arc<Settings>) -> Self {
        Objects {
            store,
            cluster: cluster.to_string(),
            settings,
            kind: resources::store_kind(cluster).into(),
            profiles: Arc::default(),
            custom: Arc::default(),
            webhooks: Arc::default(),
        }
    }

    /// What this cluster serves beyond the built-ins: its established custom resources.
    pub fn catalog(&self) -> Result<Arc<Catalog>> {
        self.custom
            .get(&*self.store, &self.kind)
            .map_err(KubeError::from_store)
    }

    /// A CustomResourceDefinition changed (here or elsewhere): read them again when next asked.
    pub fn definitions_changed(&self) {
        self.custom.invalidate();
    }

    /// Follow the definitions written through other `Objects` of the cluster (the API's or the
    /// controllers'), until the task is dropped.
    pub async fn follow_definitions(self) {
        let store = self.store.clone();
        let kind = self.kind.to_string();
        // The webhook configurations too: a chart's webhook is called once it is registered.
        let hooks = |prefix: &str| {
            let objects = self.clone();
            crate::custom::catalog::on_changes(
                store.clone(),
                kind.clone(),
                prefix.to_string(),
                move || objects.webhooks_changed(),
            )
        };
        let mutating = hooks(crate::webhooks::MUTATING_PREFIX);
        let validating = hooks(crate::webhooks::VALIDATING_PREFIX);
        let definitions = crate::custom::catalog::on_changes(
            store.clone(),
            kind.clone(),
            crate::custom::catalog::CRD_KEY_PREFIX.to_string(),
            || self.definitions_changed(),
        );
        tokio::join!(definitions, mutating, validating);
    }

    /// After a write to `rt`: a definition written changes what is served.
    fn wrote(&self, rt: &ResourceType) {
        if rt.group == CRD_GROUP && rt.resource == "customresourcedefinitions" {
            self.custom.invalidate();
        }
        if crate::webhooks::is_configuration(rt) {
            self.webhooks.invalidate();
        }
    }

    /// The cluster's Fargate profiles, indexed for matching.
    pub fn profile_index(&self) -> Arc<localfargate_core::ProfileIndex> {
        self.profiles.get(&*self.store, &self.cluster)
    }

    /// The store kind this cluster's objects live under.
    pub fn store_kind(&self) -> &str {
        &self.kind
    }

    pub fn get_object(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Object>>> {
        self.store
            .get(&self.kind, &rt.key(namespace, name))
            .map_err(KubeError::from_store)
    }

    /// One object, as the API returns it.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        self.get_object(rt, namespace, name)?
            .map(|o| self.present_one(rt, into_resource_version(o)))
            .ok_or_else(|| KubeError::not_found(rt, name))?
    }

    /// Objects in one namespace (or all), in key order, and the revision of the list.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Object>>, Revision)> {
        self.store
            .list(&self.kind, &rt.key_prefix(namespace))
            .map_err(KubeError::from_store)
    }

    /// Each object in one namespace (or all), in key order, one at a time (see `Store::scan`).
    pub fn scan(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        f: &mut dyn FnMut(Object),
    ) -> Result<Revision> {
        self.store
            .scan(&self.kind, &rt.key_prefix(namespace), f)
            .map_err(KubeError::from_store)
    }

    fn check_namespace(&self, tx: &mut dyn Tx, rt: &ResourceType, ns: &str) -> Result<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let nsrt = namespaces();
        let Some(found) = tx
            .get(&self.kind, &nsrt.key("", ns))
            .map_err(KubeError::from_store)?
        else {
            return Err(KubeError::not_found(nsrt, ns));
        };
        if is_deleting(&found.value) {
            return Err(KubeError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Create an object as POST does. Returns it as stored.
    pub fn create(&self, rt: &ResourceType, namespace: &str, body: Value) -> Result<Value> {
        let generated = name_of(&body).is_empty();
        // Only a Service chooses an address; one whose body does not decode fails validation.
        let chosen_ip = crate::service_ips::is_service(rt)
            && crate::typed::decode::<k8s_openapi::api::core::v1::Service>(&body)
                .ok()
                .and_then(|s| s.spec?.cluster_ip)
                .is_some_and(|ip| !ip.is_empty());
        let named_node_ports = if crate::service_ips::is_service(rt) {
            crate::node_ports::named(&body)
        } else {
            Default::default()
        };
        let mut obj = self.prepare_create(rt, namespace, body)?;
        // A generated name that collides is retried with another suffix, as upstream does.
        for attempt in 0..5 {
            if generated && attempt > 0 {
                let mut renamed = DynamicObject::from_value(std::mem::take(&mut obj))?;
                let meta = &mut renamed.metadata;
                meta.name = Some(format!("{}{}", meta.generate_name(), random_suffix()));
                obj = renamed.into_value();
            }
            match self.create_prepared(rt, namespace, &obj) {
                Err(Refused::Kube(KubeError::AlreadyExists { .. })) if generated => continue,
                // Another Service took the address this one was given: give it another.
                Err(Refused::AddressTaken(_)) if !chosen_ip => {
                    crate::service_ips::reallocate(self, &mut obj)?;
                }
                Err(Refused::AddressTaken(ip)) => {
                    return Err(crate::service_ips::taken(rt, name_of(&obj), &ip));
                }
                Err(Refused::NodePortTaken(port)) => {
                    crate::node_ports::retry_taken(self, &mut obj, port, &named_node_ports)?;
                }
                Err(Refused::Kube(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
        Err(KubeError::Internal(
            "could not generate a unique name".into(),
        ))
    }

    /// A server-side dry run of a create: checked, defaulted and admitted as the create would
    /// be, quota included (upstream's quota admission refuses a dry run it would refuse, and
    /// charges nothing), and returned without writing it.
    pub fn preview_create(&self, rt: &ResourceType, namespace: &str, body: Value) -> Result<Value> {
        let obj = self.prepare_create_as(rt, namespace, body, true)?;
        let ns = match namespace_of(&obj) {
            "" => namespace,
            ns => ns,
        };
        let catalog = self.catalog()?;
        self.check_quota_uncharged(|tx| {
            crate::quota::admit_create(tx, &self.kind, &catalog, rt, ns, &obj)
        })?;
        Ok(obj)
    }

    /// Run a quota check in a transaction that is always rolled back, so a dry run is refused
    /// as its write would be without charging any quota.
    fn check_quota_uncharged(
        &self,
        mut check: impl FnMut(&mut dyn localfargate_store::Tx) -> Result<()>,
    ) -> Result<()> {
        enum Verdict {
            Allowed,
            Refused(KubeError),
        }
        impl From<StoreError> for Verdict {
            fn from(e: StoreError) -> Self {
                Verdict::Refused(KubeError::from_store(e))
            }
        }
        let outcome: std::result::Result<(), Verdict> = transaction(&*self.store, |tx| {
            match check(tx) {
                // Rolled back by returning an error: nothing the check charged is kept.
                Ok(()) => Err(Verdict::Allowed),
                Err(e) => Err(Verdict::Refused(e)),
            }
        });
        match outcome {
            Ok(()) | Err(Verdict::Allowed) => Ok(()),
            Err(Verdict::Refused(e)) => Err(e),
        }
    }

    /// Validate, default and stamp a new object, and run admission; does not write.
    pub fn prepare_create(&self, rt: &ResourceType, namespace: &str, body: Value) -> Result<Value> {
        self.prepare_create_as(rt, namespace, body, false)
    }

    /// `prepare_create`, for a dry run (webhooks are told, and those with side effects refuse).
    fn prepare_create_as(
        &self,
        rt: &ResourceType,
        namespace: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Value> {
        writable(rt, "use aws eks create-fargate-profile")?;
        let mut obj = DynamicObject::from_value(body)?;
        check_type(rt, &mut obj)?;
        let meta = &mut obj.metadata;
        if rt.namespaced {
            match meta.namespace.as_deref() {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(KubeError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                _ => meta.namespace = Some(namespace.to_string()),
            }
        } else {
            meta.clear(Field::Namespace);
        }
        let name = meta.name();
        if name.is_empty() {
            let generate = meta.generate_name();
            if generate.is_empty() {
                return Err(KubeError::invalid(
                    rt,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            // Named now, as upstream's BeforeCreate does, so validation sees the name.
            meta.name = Some(format!("{generate}{}", random_suffix()));
        } else if let Some(detail) = unsafe_path_segment(name) {
            // Every name becomes a path segment (and a store key): checked for every kind.
            let detail = format!("Invalid value: \"{name}\": {detail}");
            return Err(KubeError::invalid(rt, name, "metadata.name", &detail));
        } else if !validation::knows(rt.group, rt.kind) && !valid_name(name) {
            // Kinds with their own rules (RBAC names may hold ':') are validated below.
            let detail = format!("Invalid value: \"{name}\": {NAME_CHARS}");
            return Err(KubeError::invalid(rt, name, "metadata.name", &detail));
        }
        for drop in [
            Field::ResourceVersion,
            Field::DeletionTimestamp,
            Field::DeletionGracePeriodSeconds,
            Field::SelfLink,
        ] {
            meta.clear(drop);
        }
        meta.uid = Some(new_uid());
        meta.creation_timestamp = Some(now_rfc3339());
        let strategy = strategy_for(rt);
        if strategy.tracks_generation() {
            meta.generation = Some(1);
        } else {
            meta.clear(Field::Generation);
        }
        strategy.default(rt, &mut obj)?;
        if let Some(status) = strategy.initial_status(&obj) {
            obj.body.insert("status".into(), status);
        }
        strategy.admit_create(self, &mut obj)?;
        // Webhooks, custom resources' schemas and validation read the object as JSON.
        let name = obj.metadata.name().to_string();
        let mut body = obj.into_value();
        // Mutating webhooks after the built-in mutating admission, before validation.
        let hooked = crate::webhooks::Attributes {
            operation: crate::webhooks::Operation::Create,
            rt,
            kind: "",
            subresource: "",
            namespace,
            name: &name,
            old: None,
            dry_run,
        };
        if self.webhooks_mutate(&hooked, &mut body)? {
            let mut mutated = DynamicObject::from_value(body)?;
            check_type(rt, &mut mutated)?;
            strategy.default(rt, &mut mutated)?;
            body = mutated.into_value();
        }
        if rt.custom {
            self.admit_custom(rt, &mut body, None)?;
        }
        if rt.group == crate::events_v1::GROUP {
            body = crate::events_v1::to_core(&body);
        }
        // Validation after defaulting and mutating admission, as kube-apiserver orders them.
        let errors = validation::validate_create(rt.group, rt.kind, &body);
        if !errors.is_empty() {
            let name = name_of(&body).to_string();
            return Err(KubeError::invalid_fields(rt, &name, &errors));
        }
        // Validating webhooks after validation, with the object as the request sees it.
        self.webhooks_validate(&hooked, Some(&body))?;
        Ok(body)
    }

    fn create_prepared(
        &self,
        rt: &ResourceType,
        namespace: &str,
        obj: &Value,
    ) -> std::result::Result<Value, Refused> {
        let name = name_of(obj).to_string();
        let key = rt.key(namespace, &name);
        let cluster_ip = crate::service_ips::allocated(rt, obj);
        let catalog = self.catalog()?;
        let stored = transaction(&*self.store, |tx| {
            self.check_namespace(tx, rt, namespace)?;
            // The address was free when it was chosen; checked again where no other create
            // can interleave, as kube-apiserver's allocator commits in one transaction.
            if let Some(ip) = &cluster_ip
                && crate::service_ips::held(tx, &self.kind, ip)?
            {
                return Err(Refused::AddressTaken(ip.clone()));
            }
            if crate::service_ips::is_service(rt)
                && let Some(port) = crate::node_ports::taken_in(tx, &self.kind, obj)?
            {
                return Err(Refused::NodePortTaken(port));
            }
            // In the transaction, so two quick creates cannot both slip under a quota.
            crate::quota::admit_create(tx, &self.kind, &catalog, rt, namespace, obj)?;
            tx.create(&self.kind, &key, obj)
                .map_err(|e| Refused::Kube(self.map_store(rt, &name, e)))
        })?;
        self.wrote(rt);
        Ok(self.present_done(rt, with_resource_version(&stored)))
    }

    /// Replace an object as PUT does; `status` writes the status subresource. With `dry_run`,
    /// checked and defaulted as the write would be, and returned without writing it.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value> {
        let mut body = DynamicObject::from_value(body)?;
        let precondition = body
            .metadata
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Revision>()
                    .map_err(|_| KubeError::BadRequest(format!("invalid resourceVersion {s:?}")))
            })
            .transpose()?;
        check_type(rt, &mut body)?;
        let body_name = body.metadata.name();
        if !body_name.is_empty() && body_name != name {
            return Err(KubeError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body = body.into_value();
        self.update_or_preview(
            rt,
            namespace,
            name,
            status,
            precondition,
            dry_run,
            &mut |_| Ok(body.clone()),
        )
    }

    /// Read-modify-write: `f` gets the current object (with its resourceVersion) and returns the
    /// new one. Retried on a concurrent write unless `precondition` pins the revision.
    pub fn update_with(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        status: bool,
        precondition: Option<Revision>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        self.update_or_preview(rt, namespace, name, status, precondition, false, f)
    }

    /// Writes `status.<field>` of a stored object through its status subresource: the part of
    /// a status one controller owns (a Service's or an Ingress's `loadBalancer`), leaving the
    /// rest as it is.
    pub fn update_status_field(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        field: &str,
        value: &Value,
    ) -> Result<Value> {
        self.update_with(rt, namespace, name, true, None, &mut |current| {
            let mut next = DynamicObject::from_value(current.clone())?;
            next.set_status_field(field, value.clone());
            Ok(next.into_value())
        })
    }

    /// `update_with`, or with `dry_run` (a server-side dry run) everything but the write: the
    /// object comes back checked, defaulted and merged as it would be stored.
    #[allow(clippy::too_many_arguments)]
    pub fn update_or_preview(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        status: bool,
        precondition: Option<Revision>,
        dry_run: bool,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        self.update_admitted(rt, namespace, name, status, precondition, dry_run, true, f)
    }

    /// `update_or_preview` through the `scale` subresource: `f` admits the `Scale` itself
    /// (`admit_subresource_update`), so the object's own webhooks are not called, as upstream
    /// admits a scale as `deployments/scale`.
    pub fn update_through_scale(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        dry_run: bool,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        self.update_admitted(rt, namespace, name, false, None, dry_run, false, f)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_admitted(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        status: bool,
        precondition: Option<Revision>,
        dry_run: bool,
        webhooks: bool,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        writable(rt, "change them through the EKS API")?;
        let key = rt.key(namespace, name);
        for _ in 0..16 {
            let current = self.current(rt, &key, name)?;
            if let Some(expected) = precondition
                && expected != current.revision
            {
                return Err(KubeError::conflict(rt, name));
            }
            let old = self.present_one(rt, with_resource_version(&current))?;
            let current_meta = ObjectMeta::of(&current.value);
            let mut new = merge_update(rt, &current.value, &current_meta, f(&old)?, status)?;
            let hooked = crate::webhooks::Attributes {
                operation: crate::webhooks::Operation::Update,
                rt,
                kind: "",
                subresource: if status { "status" } else { "" },
                namespace,
                name,
                old: Some(&old),
                dry_run,
            };
            if webhooks && self.webhooks_mutate(&hooked, &mut new)? {
                new = merge_update(rt, &current.value, &current_meta, new, status)?;
            }
            if rt.custom {
                self.admit_custom(rt, &mut new, Some(&current.value))?;
            }
            if rt.group == crate::events_v1::GROUP {
                new = crate::events_v1::to_core(&new);
            }
            if !status {
                // Updates are defaulted and validated as creates are, so a patch cannot remove
                // a pod's containers, and an unchanged manifest compares equal to what is stored.
                let strategy = strategy_for(rt);
                let stored = DynamicObject::from_value(current.value.clone())?;
                let mut typed = DynamicObject::from_value(new)?;
                strategy.default(rt, &mut typed)?;
                strategy.admit_update(self, &stored, &mut typed)?;
                bump_generation(rt, &stored, &mut typed);
                strategy.validate_update(rt, &stored, &typed)?;
                new = typed.into_value();
                let errors = validation::validate_update(rt.group, rt.kind, &current.value, &new);
                if !errors.is_empty() {
                    return Err(KubeError::invalid_fields(rt, name, &errors));
                }
            }
            if webhooks {
                self.webhooks_validate(&hooked, Some(&new))?;
            }
            if new == current.value {
                return Ok(old);
            }
            if dry_run {
                if !status {
                    let catalog = self.catalog()?;
                    self.check_quota_uncharged(|tx| {
                        crate::quota::admit_update(
                            tx,
                            &self.kind,
                            &catalog,
                            rt,
                            namespace,
                            &current.value,
                            &new,
                        )
                    })?;
                }
                set_resource_version(&mut new, current.revision);
                return self.present_one(rt, new);
            }
            // Removing the last finalizer finishes a deletion; other writes to an object being
            // deleted do not (a terminating namespace waits for its contents, a pod on a node for
            // its node agent).
            let finished = !current_meta.finalizers().is_empty()
                && {
                    let new_meta = ObjectMeta::of(&new);
                    new_meta.is_deleting() && new_meta.finalizers().is_empty()
                }
                && strategy_for(rt)
                    .last_finalizer_deletes(&DynamicObject::from_value(current.value.clone())?);
            // A quota refusal aborts the write; checked in its transaction, as creates are.
            let catalog = self.catalog()?;
            let mut refused: Option<KubeError> = None;
            let result = transaction(&*self.store, |tx| {
                if finished {
                    return tx.delete(&self.kind, &key, Some(current.revision));
                }
                if !status
                    && let Err(e) = crate::quota::admit_update(
                        tx,
                        &self.kind,
                        &catalog,
                        rt,
                        namespace,
                        &current.value,
                        &new,
                    )
                {
                    refused = Some(e);
                    return Err(StoreError::Aborted);
                }
                tx.update(&self.kind, &key, &new, Some(current.revision))
            });
            if let Some(e) = refused {
                return Err(e);
            }
            match result {
                Ok(o) => {
                    self.wrote(rt);
                    return Ok(self.present_done(rt, with_resource_version(&o)));
                }
                Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(self.map_store(rt, name, e)),
            }
        }
        Err(KubeError::conflict(rt, name))
    }

    /// Delete as DELETE does: at once, or by starting a graceful or finalizer-held deletion.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted> {
        writable(rt, "delete the profile with aws eks delete-fargate-profile")?;
        let key = rt.key(namespace, name);
        for attempt in 0..16 {
            let current = self.current(rt, &key, name)?;
            if attempt == 0 {
                self.delete_webhooks(rt, namespace, name, &current, false)?;
            }
            let mut new = DynamicObject::from_value(current.value.clone())?;
            if let Some(uid) = &opts.precondition_uid
                && uid != new.metadata.uid()
            {
                return Err(KubeError::Conflict {
                    message: format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        rt.qualified(),
                        new.metadata.uid()
                    ),
                    kind: rt.qualified(),
                    name: name.to_string(),
                });
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != current.revision.to_string()
            {
                return Err(KubeError::Conflict {
                    message: format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in meta: {}",
                        rt.qualified(),
                        current.revision
                    ),
                    kind: rt.qualified(),
                    name: name.to_string(),
                });
            }
            let already = new.metadata.is_deleting();
            let mut fins = new.metadata.finalizers().to_vec();
            if !already {
                for f in strategy_for(rt).finalizers_on_delete() {
                    if !fins.iter().any(|x| x == f) {
                        fins.push(f.to_string());
                    }
                }
            }
            match opts.propagation {
                Some(Propagation::Foreground)
                    if !fins.iter().any(|f| f == FOREGROUND_FINALIZER) =>
                {
                    fins.push(FOREGROUND_FINALIZER.to_string())
                }
                Some(Propagation::Orphan) if !fins.iter().any(|f| f == ORPHAN_FINALIZER) => {
                    fins.push(ORPHAN_FINALIZER.to_string())
                }
                _ => {}
            }
            // A pod on a node stops first: its node agent finishes the deletion. A namespace
            // waits for its controller to empty it.
            let deletion = strategy_for(rt).deletion(&new, opts.grace_period_seconds);
            if fins.is_empty() && deletion == Deletion::Immediate {
                match transaction(&*self.store, |tx| {
                    tx.delete(&self.kind, &key, Some(current.revision))
                }) {
                    Ok(o) => {
                        self.wrote(rt);
                        return Ok(Deleted::Gone(
                            self.present_done(rt, with_resource_version(&o)),
                        ));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(StoreError::NotFound { .. }) => {
                        return Err(KubeError::not_found(rt, name));
                    }
                    Err(e) => return Err(self.map_store(rt, name, e)),
                }
            }
            if already && fins == new.metadata.finalizers() {
                return Ok(Deleted::Pending(
                    self.present_done(rt, with_resource_version(&current)),
                ));
            }
            let meta = &mut new.metadata;
            if !already {
                meta.deletion_timestamp = Some(now_rfc3339());
                meta.deletion_grace_period_seconds = Some(match deletion {
                    Deletion::Graceful { seconds } => seconds,
                    _ => 0,
                });
            }
            meta.set_finalizers(fins);
            if deletion == Deletion::HeldUntilFinalized {
                let status = new.body.entry("status").or_insert_with(|| json!({}));
                if !status.is_object() {
                    *status = json!({});
                }
                status["phase"] = json!("Terminating");
            }
            let new = new.into_value();
            match transaction(&*self.store, |tx| {
                tx.update(&self.kind, &key, &new, Some(current.revision))
            }) {
                Ok(o) => {
                    self.wrote(rt);
                    return Ok(Deleted::Pending(
                        self.present_done(rt, with_resource_version(&o)),
                    ));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(self.map_store(rt, name, e)),
            }
        }
        Err(KubeError::conflict(rt, name))
    }

    /// A server-side dry run of a delete: the object as it is, once the webhooks (told it is a
    /// dry run) let it go.
    pub fn preview_delete(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        let current = self.current(rt, &rt.key(namespace, name), name)?;
        self.delete_webhooks(rt, namespace, name, &current, true)?;
        self.present_one(rt, with_resource_version(&current))
    }

    fn delete_webhooks(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        current: &Object,
        dry_run: bool,
    ) -> Result<()> {
        if !self.webhooks_configured()? {
            return Ok(());
        }
        let old = self.present_one(rt, with_resource_version(current))?;
        self.webhooks_delete(&crate::webhooks::Attributes {
            operation: crate::webhooks::Operation::Delete,
            rt,
            kind: "",
            subresource: "",
            namespace,
            name,
            old: Some(&old),
            dry_run,
        })
    }

    fn current(&self, rt: &ResourceType, key: &str, name: &str) -> Result<Arc<Object>> {
        self.store
            .get(&self.kind, key)
            .map_err(KubeError::from_store)?
            .ok_or_else(|| KubeError::not_found(rt, name))
    }

    /// Remove an object now, whatever holds it (the node agent finishing a pod, the namespace
    /// controller emptying a namespace). Gone already is fine.
    pub fn purge(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<()> {
        match transaction(&*self.store, |tx| {
            tx.delete(&self.kind, &rt.key(namespace, name), None)
        }) {
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                self.wrote(rt);
                Ok(())
            }
            Err(e) => Err(KubeError::from_store(e)),
        }
    }

    fn map_store(&self, rt: &ResourceType, name: &str, e: StoreError) -> KubeError {
        match e {
            StoreError::AlreadyExists { .. } => KubeError::AlreadyExists {
                message: format!("{} \"{name}\" already exists", rt.qualified()),
                kind: rt.qualified(),
                name: name.to_string(),
            },
            StoreError::NotFound { .. } => KubeError::not_found(rt, name),
            StoreError::Conflict { .. } => KubeError::conflict(rt, name),
            StoreError::Expired { .. } | StoreError::Backend(_) | StoreError::Aborted => {
                KubeError::from_store(e)
            }
        }
    }
}

/// Why a prepared create was not stored.
enum Refused {
    Kube(KubeError),
    /// The Service's ClusterIP was taken between its allocation and the write.
    AddressTaken(String),
    /// A node port of the Service was taken between its allocation and the write.
    NodePortTaken(u32),
}

impl From<KubeError> for Refused {
    fn from(e: KubeError) -> Self {
        Refused::Kube(e)
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Kube(KubeError::from_store(e))
    }
}

/// Read-only resources (the mirrored Fargate profiles) refuse writes, saying what to do instead.
fn writable(rt: &ResourceType, instead: &str) -> Result<()> {
    if rt.read_only {
        return Err(KubeError::MethodNotAllowed(format!(
            "{} are read-only here: they mirror the EKS API's Fargate profiles; {instead}",
            rt.qualified()
        )));
    }
    Ok(())
}

/// Objects of cluster `c` in a fresh in-memory store that holds one namespace: where the
/// registry's unit tests start.
#[cfg(test)]
pub(crate) fn in_memory_with_namespace(namespace: &str) -> Objects {
    let store: Arc<dyn Store> = Arc::new(localfargate_store::SqliteStore::in_memory().unwrap());
    let o = Objects::new(store, "c", Arc::new(Settings::new("us-east-1")));
    o.create(namespaces(), "", json!({"metadata": {"name": namespace}}))
        .unwrap();
    o
}

pub fn namespaces() -> &'static ResourceType {
    resource("", "namespaces")
}

/// A served resource by group and plural; the registry is static, so a miss is a programming error
/// caught by the tests, and falls back to namespaces rather than panicking.
pub fn resource(group: &str, plural: &str) -> &'static ResourceType {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == plural)
        .unwrap_or(&resources::RESOURCES[0])
}

/// An object as a request through `rt` sees it: a custom resource is stored in its storage
/// version and read in the version asked for (`None` conversion: only `apiVersion` changes).
pub fn present(rt: &ResourceType, mut v: Value) -> Value {
    if rt.group == crate::events_v1::GROUP {
        return crate::events_v1::from_core(&v);
    }
    if rt.custom
        && let Some(o) = v.as_object_mut()
    {
        o.insert("apiVersion".into(), Value::String(rt.api_version()));
    }
    v
}

/// `apiVersion` and `kind` must be this resource's, or absent (then they are filled in).
fn check_type(rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
    let expected = rt.api_version();
    match obj.api_version.as_deref() {
        Some(v) if v != expected => {
            return Err(KubeError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        Some(_) => {}
        None => obj.set_api_version(expected),
    }
    match obj.kind.as_deref() {
        Some(k) if k != rt.kind => {
            return Err(KubeError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Some(_) => {}
        None => obj.set_kind(rt.kind.to_string()),
    }
    Ok(())
}

/// The object an update writes: its type checked, what an update may not change carried over
/// from `old` (whose metadata is `old_meta`), and status or everything but status kept
/// depending on the endpoint.
fn merge_update(
    rt: &ResourceType,
    old: &Value,
    old_meta: &ObjectMeta,
    new: Value,
    status: bool,
) -> Result<Value> {
    let mut new = DynamicObject::from_value(new)?;
    check_type(rt, &mut new)?;
    if status {
        let mut replaced = DynamicObject::from_value(old.clone())?;
        // A status write records its owner (the front end's field manager) with the object.
        if new.metadata.has(Field::ManagedFields) {
            replaced.metadata.carry(Field::ManagedFields, &new.metadata);
        }
        match new.body.remove("status") {
            Some(s) => {
                replaced.body.insert("status".into(), s);
            }
            None => {
                replaced.body.remove("status");
            }
        }
        return Ok(replaced.into_value());
    }
    for keep in [
        Field::Uid,
        Field::CreationTimestamp,
        Field::DeletionTimestamp,
        Field::DeletionGracePeriodSeconds,
        Field::Namespace,
        Field::Name,
        Field::Generation,
    ] {
        new.metadata.carry(keep, old_meta);
    }
    new.metadata.clear(Field::ResourceVersion);
    new.metadata.clear(Field::SelfLink);
    if rt.has_status {
        match old.get("status") {
            Some(s) => {
                new.body.insert("status".into(), s.clone());
            }
            None => {
                new.body.remove("status");
            }
        }
    }
    Ok(new.into_value())
}

/// `generation` counts changes to everything but metadata and status.
fn bump_generation(rt: &ResourceType, old: &DynamicObject, new: &mut DynamicObject) {
    if strategy_for(rt).tracks_generation()
        && (old.kind != new.kind || spec_of(rt, old) != spec_of(rt, new))
    {
        new.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
    }
}

/// Everything in the body but (when it has its own subresource) status: with `kind`, what
/// `generation` counts changes of. `apiVersion` is left out: a custom resource written through
/// another version is the same object.
fn spec_of<'a>(rt: &ResourceType, o: &'a DynamicObject) -> Vec<(&'a String, &'a Value)> {
    o.body
        .iter()
        .filter(|(k, _)| match k.as_str() {
            "apiVersion" => false,
            "status" => !rt.has_status,
            _ => true,
        })
        .collect()
}

pub mod custom_resources;
#[cfg(test)]
mod tests;
