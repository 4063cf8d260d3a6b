//! An object's metadata, typed: [`ObjectMeta`] (the fields the registry reads and stamps, plus
//! whatever else the metadata holds, kept as written) and [`DynamicObject`] (an object as the
//! registry handles it: `apiVersion`, `kind`, typed metadata and the rest of the body untyped,
//! the shape kube-core's `DynamicObject` has). Both convert from and to the store's JSON by
//! moving values, never through a serializer, so a write pays no encode/decode for them. Also
//! the pure helpers every part of the registry shares (timestamps, uids, and reads of a stored
//! object's metadata without converting it).

use std::collections::BTreeMap;
use std::sync::Arc;

use localfargate_store::{Object, Revision};
use serde_json::{Map, Value};

/// Why a JSON value cannot be read as an object (the words are the API's 400 messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("metadata must be an object")]
    MetadataNotAnObject,
}

/// A metadata field the registry reads or stamps, by its JSON name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    GenerateName,
    Namespace,
    Uid,
    ResourceVersion,
    Generation,
    CreationTimestamp,
    DeletionTimestamp,
    DeletionGracePeriodSeconds,
    Labels,
    Annotations,
    Finalizers,
    OwnerReferences,
    ManagedFields,
    /// Not kept by the registry (upstream stopped setting it); cleared from writes.
    SelfLink,
}

impl Field {
    pub fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::GenerateName => "generateName",
            Field::Namespace => "namespace",
            Field::Uid => "uid",
            Field::ResourceVersion => "resourceVersion",
            Field::Generation => "generation",
            Field::CreationTimestamp => "creationTimestamp",
            Field::DeletionTimestamp => "deletionTimestamp",
            Field::DeletionGracePeriodSeconds => "deletionGracePeriodSeconds",
            Field::Labels => "labels",
            Field::Annotations => "annotations",
            Field::Finalizers => "finalizers",
            Field::OwnerReferences => "ownerReferences",
            Field::ManagedFields => "managedFields",
            Field::SelfLink => "selfLink",
        }
    }
}

/// `metadata`, typed where the registry uses it.
///
/// A known field is typed when it has its JSON type; a value of another type (a `null`, a
/// number where a name belongs, a label that is not a string) stays in [`other`](Self::other)
/// as written, so it round-trips and validation reports it as it does today. Setting a typed
/// field writes over such a value; [`clear`](Self::clear) removes a field whatever it holds.
/// Timestamps stay the strings they were written as (RFC 3339), so they round-trip exactly and
/// a read parses nothing. Absent and empty differ: `None` writes nothing, `Some(empty)` writes
/// `[]` or `{}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<String>,
    pub deletion_timestamp: Option<String>,
    pub deletion_grace_period_seconds: Option<i64>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub finalizers: Option<Vec<String>>,
    pub owner_references: Option<Vec<OwnerReference>>,
    /// The field managers' entries: the API front end's field manager owns their shape.
    pub managed_fields: Option<Vec<Value>>,
    /// Every other field (and known fields of another JSON type), as written.
    pub other: Map<String, Value>,
}

/// One entry of `metadata.ownerReferences`, typed as [`ObjectMeta`] is (absent and empty differ;
/// fields of another JSON type and unknown fields stay in `other`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerReference {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub controller: Option<bool>,
    pub block_owner_deletion: Option<bool>,
    pub other: Map<String, Value>,
}

/// Remove `key` from `m` when its value `fits`; else leave it where it is.
fn take_if(m: &mut Map<String, Value>, key: &str, fits: impl Fn(&Value) -> bool) -> Option<Value> {
    if m.get(key).is_some_and(fits) {
        m.remove(key)
    } else {
        None
    }
}

fn take_string(m: &mut Map<String, Value>, key: &str) -> Option<String> {
    match take_if(m, key, Value::is_string)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn take_i64(m: &mut Map<String, Value>, key: &str) -> Option<i64> {
    take_if(m, key, Value::is_i64)?.as_i64()
}

fn take_bool(m: &mut Map<String, Value>, key: &str) -> Option<bool> {
    take_if(m, key, Value::is_boolean)?.as_bool()
}

fn take_string_map(m: &mut Map<String, Value>, key: &str) -> Option<BTreeMap<String, String>> {
    let fits = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.values().all(Value::is_string))
    };
    match take_if(m, key, fits)? {
        Value::Object(o) => Some(
            o.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

fn take_array(
    m: &mut Map<String, Value>,
    key: &str,
    item_fits: impl Fn(&Value) -> bool,
) -> Option<Vec<Value>> {
    let fits = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(&item_fits));
    match take_if(m, key, fits)? {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.to_string(), v);
    }
}

fn string_map_value(map: BTreeMap<String, String>) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn strings_value(list: Vec<String>) -> Value {
    Value::Array(list.into_iter().map(Value::String).collect())
}

impl OwnerReference {
    fn from_map(mut m: Map<String, Value>) -> Self {
        OwnerReference {
            api_version: take_string(&mut m, "apiVersion"),
            kind: take_string(&mut m, "kind"),
            name: take_string(&mut m, "name"),
            uid: take_string(&mut m, "uid"),
            controller: take_bool(&mut m, "controller"),
            block_owner_deletion: take_bool(&mut m, "blockOwnerDeletion"),
            other: m,
        }
    }

    fn into_value(self) -> Value {
        let mut m = self.other;
        put(&mut m, "apiVersion", self.api_version.map(Value::String));
        put(&mut m, "kind", self.kind.map(Value::String));
        put(&mut m, "name", self.name.map(Value::String));
        put(&mut m, "uid", self.uid.map(Value::String));
        put(&mut m, "controller", self.controller.map(Value::Bool));
        put(
            &mut m,
            "blockOwnerDeletion",
            self.block_owner_deletion.map(Value::Bool),
        );
        Value::Object(m)
    }

    /// The uid of the owner, or "".
    pub fn uid(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }

    pub fn is_controller(&self) -> bool {
        self.controller == Some(true)
    }
}

impl ObjectMeta {
    /// Typed from a metadata object, by moving its values.
    pub fn from_map(mut m: Map<String, Value>) -> Self {
        let owner_references = take_array(&mut m, Field::OwnerReferences.key(), Value::is_object)
            .map(|refs| {
                refs.into_iter()
                    .filter_map(|r| match r {
                        Value::Object(o) => Some(OwnerReference::from_map(o)),
                        _ => None,
                    })
                    .collect()
            });
        let finalizers = take_array(&mut m, Field::Finalizers.key(), Value::is_string).map(|a| {
            a.into_iter()
                .filter_map(|f| match f {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect()
        });
        ObjectMeta {
            name: take_string(&mut m, Field::Name.key()),
            generate_name: take_string(&mut m, Field::GenerateName.key()),
            namespace: take_string(&mut m, Field::Namespace.key()),
            uid: take_string(&mut m, Field::Uid.key()),
            resource_version: take_string(&mut m, Field::ResourceVersion.key()),
            generation: take_i64(&mut m, Field::Generation.key()),
            creation_timestamp: take_string(&mut m, Field::CreationTimestamp.key()),
            deletion_timestamp: take_string(&mut m, Field::DeletionTimestamp.key()),
            deletion_grace_period_seconds: take_i64(
                &mut m,
                Field::DeletionGracePeriodSeconds.key(),
            ),
            labels: take_string_map(&mut m, Field::Labels.key()),
            annotations: take_string_map(&mut m, Field::Annotations.key()),
            finalizers,
            owner_references,
            managed_fields: take_array(&mut m, Field::ManagedFields.key(), |_| true),
            other: m,
        }
    }

    /// The metadata of a borrowed object (a stored one), typed from a copy of its metadata.
    pub fn of(object: &Value) -> Self {
        match object.get("metadata") {
            Some(Value::Object(m)) => Self::from_map(m.clone()),
            _ => Self::default(),
        }
    }

    /// Back to a metadata object, by moving the values; the map orders the keys as every
    /// object the API writes orders them.
    pub fn into_map(self) -> Map<String, Value> {
        let mut m = self.other;
        put(&mut m, Field::Name.key(), self.name.map(Value::String));
        put(
            &mut m,
            Field::GenerateName.key(),
            self.generate_name.map(Value::String),
        );
        put(
            &mut m,
            Field::Namespace.key(),
            self.namespace.map(Value::String),
        );
        put(&mut m, Field::Uid.key(), self.uid.map(Value::String));
        put(
            &mut m,
            Field::ResourceVersion.key(),
            self.resource_version.map(Value::String),
        );
        put(
            &mut m,
            Field::Generation.key(),
            self.generation.map(Value::from),
        );
        put(
            &mut m,
            Field::CreationTimestamp.key(),
            self.creation_timestamp.map(Value::String),
        );
        put(
            &mut m,
            Field::DeletionTimestamp.key(),
            self.deletion_timestamp.map(Value::String),
        );
        put(
            &mut m,
            Field::DeletionGracePeriodSeconds.key(),
            self.deletion_grace_period_seconds.map(Value::from),
        );
        put(
            &mut m,
            Field::Labels.key(),
            self.labels.map(string_map_value),
        );
        put(
            &mut m,
            Field::Annotations.key(),
            self.annotations.map(string_map_value),
        );
        put(
            &mut m,
            Field::Finalizers.key(),
            self.finalizers.map(strings_value),
        );
        put(
            &mut m,
            Field::OwnerReferences.key(),
            self.owner_references.map(|refs| {
                Value::Array(refs.into_iter().map(OwnerReference::into_value).collect())
            }),
        );
        put(
            &mut m,
            Field::ManagedFields.key(),
            self.managed_fields.map(Value::Array),
        );
        m
    }

    /// Whether the field is there, typed or as written.
    pub fn has(&self, field: Field) -> bool {
        let typed = match field {
            Field::Name => self.name.is_some(),
            Field::GenerateName => self.generate_name.is_some(),
            Field::Namespace => self.namespace.is_some(),
            Field::Uid => self.uid.is_some(),
            Field::ResourceVersion => self.resource_version.is_some(),
            Field::Generation => self.generation.is_some(),
            Field::CreationTimestamp => self.creation_timestamp.is_some(),
            Field::DeletionTimestamp => self.deletion_timestamp.is_some(),
            Field::DeletionGracePeriodSeconds => self.deletion_grace_period_seconds.is_some(),
            Field::Labels => self.labels.is_some(),
            Field::Annotations => self.annotations.is_some(),
            Field::Finalizers => self.finalizers.is_some(),
            Field::OwnerReferences => self.owner_references.is_some(),
            Field::ManagedFields => self.managed_fields.is_some(),
            Field::SelfLink => false,
        };
        typed || self.other.contains_key(field.key())
    }

    /// Remove a field, typed or as written.
    pub fn clear(&mut self, field: Field) {
        self.carry(field, &ObjectMeta::default());
    }

    /// Make a field what it is in `from` (absent there: absent here), typed or as written.
    pub fn carry(&mut self, field: Field, from: &ObjectMeta) {
        match field {
            Field::Name => self.name.clone_from(&from.name),
            Field::GenerateName => self.generate_name.clone_from(&from.generate_name),
            Field::Namespace => self.namespace.clone_from(&from.namespace),
            Field::Uid => self.uid.clone_from(&from.uid),
            Field::ResourceVersion => self.resource_version.clone_from(&from.resource_version),
            Field::Generation => self.generation = from.generation,
            Field::CreationTimestamp => {
                self.creation_timestamp.clone_from(&from.creation_timestamp)
            }
            Field::DeletionTimestamp => {
                self.deletion_timestamp.clone_from(&from.deletion_timestamp)
            }
            Field::DeletionGracePeriodSeconds => {
                self.deletion_grace_period_seconds = from.deletion_grace_period_seconds
            }
            Field::Labels => self.labels.clone_from(&from.labels),
            Field::Annotations => self.annotations.clone_from(&from.annotations),
            Field::Finalizers => self.finalizers.clone_from(&from.finalizers),
            Field::OwnerReferences => self.owner_references.clone_from(&from.owner_references),
            Field::ManagedFields => self.managed_fields.clone_from(&from.managed_fields),
            Field::SelfLink => {}
        }
        let key = field.key();
        match from.other.get(key) {
            Some(raw) => {
                self.other.insert(key.to_string(), raw.clone());
            }
            None => {
                self.other.remove(key);
            }
        }
    }

    /// The name, or "".
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The namespace, or "".
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// The uid, or "".
    pub fn uid(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }

    /// `generateName`, or "".
    pub fn generate_name(&self) -> &str {
        self.generate_name.as_deref().unwrap_or("")
    }

    /// Whether a deletion has started.
    pub fn is_deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// The finalizers (none when absent).
    pub fn finalizers(&self) -> &[String] {
        self.finalizers.as_deref().unwrap_or_default()
    }

    pub fn has_finalizer(&self, name: &str) -> bool {
        self.finalizers().iter().any(|f| f == name)
    }

    /// Set the finalizers; none removes the field, as upstream writes it (`omitempty`).
    pub fn set_finalizers(&mut self, finalizers: Vec<String>) {
        self.other.remove(Field::Finalizers.key());
        self.finalizers = (!finalizers.is_empty()).then_some(finalizers);
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Make a field what `value` is, typed when it has the field's JSON type, else as written
    /// (for values copied from elsewhere in an object, whose type nothing has checked).
    pub fn set_raw(&mut self, field: Field, value: Value) {
        let mut one = Map::new();
        one.insert(field.key().to_string(), value);
        self.carry(field, &ObjectMeta::from_map(one));
    }

    /// Set a label, as indexing the JSON did: into the labels as written when they are an
    /// object of another shape (its wrong-typed values stay for validation to report), else
    /// into the typed labels (a non-object written there is replaced).
    pub fn insert_label(&mut self, key: &str, value: String) {
        insert_into(&mut self.labels, &mut self.other, Field::Labels, key, value);
    }

    /// Set an annotation, as [`insert_label`](Self::insert_label) sets a label.
    pub fn insert_annotation(&mut self, key: &str, value: String) {
        insert_into(
            &mut self.annotations,
            &mut self.other,
            Field::Annotations,
            key,
            value,
        );
    }

    /// The owner reference marked as the controller, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references
            .as_deref()?
            .iter()
            .find(|r| r.is_controller())
    }
}

fn insert_into(
    typed: &mut Option<BTreeMap<String, String>>,
    other: &mut Map<String, Value>,
    field: Field,
    key: &str,
    value: String,
) {
    if let Some(Value::Object(raw)) = other.get_mut(field.key()) {
        raw.insert(key.to_string(), Value::String(value));
        return;
    }
    other.remove(field.key());
    typed.get_or_insert_default().insert(key.to_string(), value);
}

/// An object as the registry handles it: typed metadata, `apiVersion` and `kind`, and the rest
/// of the body (spec, status, data, …) untyped.
///
/// Converting from JSON and back moves the values (no copy, no serializer), and gives back the
/// same JSON: the body is a JSON map, which orders keys as every object the API writes orders
/// them, and what was absent stays absent. One exception: an object always has `metadata`
/// (`{}` when it had none, or `null`), as every stored object does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicObject {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: ObjectMeta,
    /// Everything but `apiVersion`, `kind` and `metadata` (and those of another JSON type, as
    /// written).
    pub body: Map<String, Value>,
}

impl DynamicObject {
    pub fn from_value(v: Value) -> Result<Self, ShapeError> {
        let Value::Object(mut body) = v else {
            return Err(ShapeError::NotAnObject);
        };
        let metadata = match body.remove("metadata") {
            None | Some(Value::Null) => ObjectMeta::default(),
            Some(Value::Object(m)) => ObjectMeta::from_map(m),
            Some(_) => return Err(ShapeError::MetadataNotAnObject),
        };
        Ok(DynamicObject {
            api_version: take_string(&mut body, "apiVersion"),
            kind: take_string(&mut body, "kind"),
            metadata,
            body,
        })
    }

    pub fn into_value(self) -> Value {
        let mut m = self.body;
        put(&mut m, "apiVersion", self.api_version.map(Value::String));
        put(&mut m, "kind", self.kind.map(Value::String));
        m.insert(
            "metadata".to_string(),
            Value::Object(self.metadata.into_map()),
        );
        Value::Object(m)
    }

    /// A field of the body (`spec`, `status`, `data`, …), `null` when absent: what indexing
    /// the object's JSON by `key` read.
    pub fn field(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.body.get(key).unwrap_or(&NULL)
    }

    /// A field of the body to write, `null` when it was absent (and then written, as indexing
    /// the object's JSON mutably wrote it; indexing into a `null` makes it an object).
    pub fn field_mut(&mut self, key: &str) -> &mut Value {
        self.body.entry(key).or_insert(Value::Null)
    }

    /// `spec`, `null` when absent.
    pub fn spec(&self) -> &Value {
        self.field("spec")
    }

    /// `status`, `null` when absent.
    pub fn status(&self) -> &Value {
        self.field("status")
    }

    /// Set one field of `status` (made an object first when it was absent or not one): how a
    /// controller writes the part of a status it owns and leaves the rest as stored.
    pub fn set_status_field(&mut self, key: &str, value: Value) {
        let status = self.field_mut("status");
        if !status.is_object() {
            *status = Value::Object(Map::new());
        }
        if let Some(status) = status.as_object_mut() {
            status.insert(key.to_string(), value);
        }
    }

    /// Decode the object into a typed form (k8s-openapi's `Pod`, …), reading the body where it
    /// is and only the metadata from a copy, with the words and the order of the errors a
    /// decode of the whole JSON gives (keys in the order a JSON object holds them).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let metadata = Value::Object(self.metadata.clone().into_map());
        let api_version = self.api_version.clone().map(Value::String);
        let kind = self.kind.clone().map(Value::String);
        let mut entries: Vec<(&str, &Value)> = self
            .body
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain(api_version.as_ref().map(|v| ("apiVersion", v)))
            .chain(kind.as_ref().map(|v| ("kind", v)))
            .chain(std::iter::once(("metadata", &metadata)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let deserializer =
            serde::de::value::MapDeserializer::<_, serde_json::Error>::new(entries.into_iter());
        T::deserialize(deserializer)
    }

    /// Run `f` on the object as JSON, by moving it there and back (no copy); for code that
    /// still reads objects by string (the definitions' rules).
    pub fn with_json<R>(&mut self, f: impl FnOnce(&mut Value) -> R) -> Result<R, ShapeError> {
        let mut v = std::mem::take(self).into_value();
        let r = f(&mut v);
        *self = DynamicObject::from_value(v)?;
        Ok(r)
    }

    /// Set `apiVersion`, over whatever was written there.
    pub fn set_api_version(&mut self, api_version: String) {
        self.body.remove("apiVersion");
        self.api_version = Some(api_version);
    }

    /// Set `kind`, over whatever was written there.
    pub fn set_kind(&mut self, kind: String) {
        self.body.remove("kind");
        self.kind = Some(kind);
    }
}

impl TryFrom<Value> for DynamicObject {
    type Error = ShapeError;
    fn try_from(v: Value) -> Result<Self, ShapeError> {
        DynamicObject::from_value(v)
    }
}

impl From<DynamicObject> for Value {
    fn from(o: DynamicObject) -> Value {
        o.into_value()
    }
}

/// A time as the API writes timestamps: RFC 3339, seconds, UTC.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as the API writes timestamps.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// A pod whose containers are done for good: Succeeded or Failed.
pub fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// A fresh object uid.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `metadata.name` of an object, or "".
pub fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace_of(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid_of(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

/// The object with its `resourceVersion` filled in from the store revision.
pub fn with_resource_version(o: &Object) -> Value {
    let mut v = o.value.clone();
    set_resource_version(&mut v, o.revision);
    v
}

/// Like `with_resource_version`, without a copy when nothing else holds the object (a read
/// from the store decodes a fresh one).
pub fn into_resource_version(o: Arc<Object>) -> Value {
    let revision = o.revision;
    let mut v = Arc::try_unwrap(o).map_or_else(|shared| shared.value.clone(), |own| own.value);
    set_resource_version(&mut v, revision);
    v
}

pub fn set_resource_version(v: &mut Value, revision: Revision) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".to_string(),
            Value::String(revision.to_string()),
        );
    }
}

/// `metadata.resourceVersion` of an object, borrowed.
pub fn resource_version_of(v: &Value) -> Option<&str> {
    v["metadata"]["resourceVersion"].as_str()
}

/// `metadata.creationTimestamp` of an object as written, borrowed.
pub fn creation_timestamp_of(v: &Value) -> Option<&str> {
    v["metadata"]["creationTimestamp"].as_str()
}

/// `metadata.generation` of an object.
pub fn generation_of(v: &Value) -> Option<i64> {
    v["metadata"]["generation"].as_i64()
}

/// An object's `metadata` as written (`null` when absent), for a response that passes it on
/// (a Table row's `PartialObjectMetadata`).
pub fn metadata_of(v: &Value) -> &Value {
    static NULL: Value = Value::Null;
    v.get("metadata").unwrap_or(&NULL)
}

/// One label of a stored object, borrowed.
pub fn label_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["labels"][key].as_str()
}

/// One annotation of a stored object, borrowed.
pub fn annotation_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["annotations"][key].as_str()
}

/// The labels of a stored object, borrowed (`None` when it has none).
pub fn labels_of(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v["metadata"]["labels"].as_object()
}

/// The uid of a stored object's controller (its owner reference with `controller: true`).
pub fn controller_uid_of(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)?["uid"]
        .as_str()
}

pub fn is_deleting(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
