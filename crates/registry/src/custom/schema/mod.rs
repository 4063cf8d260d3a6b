//! The structural schema of a custom resource version (`spec.versions[i].schema.openAPIV3Schema`
//! of a CustomResourceDefinition), as apiextensions-apiserver uses it:
//!
//! ```text
//! structural_errors(&schema, path)  -> Vec<FieldError>  // the CRD's schema checks, at `path`
//! let s = Structural::new(schema);                      // patterns compiled once
//! let s = Structural::from_value(&json)?;               // from the stored CRD JSON
//! s.admit(&mut obj)                 -> Vec<FieldError>  // prune, default, validate, in that order
//! s.prune(&mut obj) / s.default(&mut obj) / s.validate(&obj)
//! ```
//!
//! - **Pruning** drops every field the schema does not specify, except under
//!   `x-kubernetes-preserve-unknown-fields: true`; the resource root and embedded resources
//!   (`x-kubernetes-embedded-resource: true`) keep `apiVersion`, `kind` and `metadata`
//!   as they are. A `null` where the schema neither allows null (`nullable`) nor
//!   has a default is dropped too, as the API server does when it decodes a custom resource.
//! - **Defaulting** fills absent fields (and disallowed nulls) from `default`, in objects that
//!   exist, in array items and in `additionalProperties` values; a default is pruned by its own
//!   schema before it is applied.
//! - **Validation** is kube-openapi's schema validator with its errors turned into field errors
//!   as kube-apiserver (1.31) returns them in the 422 `Status` (`spec.replicas: Invalid value:
//!   "string": spec.replicas in body must be of type integer: "string"`), followed by the
//!   embedded-resource checks (`apiVersion`/`kind` required, `metadata` valid) and the
//!   `x-kubernetes-list-type` `set`/`map` uniqueness checks (`Duplicate value`).
//!
//! Not done here: **CEL rules (`x-kubernetes-validations`) are not evaluated** — a CRD that
//! relies on them is served without those checks (their static shape is checked on the CRD).
//! Validation ratcheting on update, the root object's own `metadata` (the strategy's
//! `ValidateObjectMeta`) and the scale subresource's replica checks belong to the caller. Of
//! the string formats, `isbn*`, `creditcard`, `ssn`, `hexcolor`, `rgbcolor` and
//! `bsonobjectid` are accepted unchecked. Patterns use the `regex` crate, whose syntax is RE2's
//! (Go's `regexp`), with Go's ASCII-only `\d`, `\w`, `\s`, `\b`; a pattern's compile error
//! reads differently from Go's.

mod embedded;
mod formats;
mod lists;
mod pattern;
mod prune;
mod report;
mod structural;
mod validate;

#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use localfargate_core::validation::FieldError;
use serde_json::Value;

pub use structural::structural_errors;
use validate::{Patterns, Validator};

/// A version's schema, ready to prune, default and validate custom resources. Build it from a
/// schema [`structural_errors`] accepted (for another, results are whatever the schema says).
#[derive(Debug, Clone)]
pub struct Structural {
    schema: JSONSchemaProps,
    patterns: Patterns,
}

impl Structural {
    pub fn new(schema: JSONSchemaProps) -> Structural {
        let mut patterns = Patterns::new();
        collect_patterns(&schema, &mut patterns);
        Structural { schema, patterns }
    }

    /// From a version's `schema.openAPIV3Schema` as JSON (as stored in the CRD object).
    pub fn from_value(schema: &Value) -> Result<Structural, serde_json::Error> {
        serde_json::from_value(schema.clone()).map(Structural::new)
    }

    /// The schema it was built from.
    pub fn schema(&self) -> &JSONSchemaProps {
        &self.schema
    }

    /// Drops unknown fields and disallowed nulls from a custom resource (see the module docs).
    pub fn prune(&self, obj: &mut Value) {
        prune::prune_root(obj, &self.schema);
        prune::prune_nulls(obj, Some(&self.schema));
    }

    /// Applies the schema's defaults to a custom resource.
    pub fn default(&self, obj: &mut Value) {
        prune::default(obj, &self.schema);
    }

    /// The field errors of a custom resource: schema validation, then embedded resources, then
    /// list sets and maps. Paths are relative to the object (`spec.replicas`).
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errors = Validator {
            patterns: &self.patterns,
        }
        .validate(&self.schema, obj, "");
        errors.extend(embedded::embedded_meta_errors(obj, &self.schema, ""));
        errors.extend(lists::list_errors(obj, &self.schema, ""));
        errors
    }

    /// What the API server does to a custom resource it is given on create or update, in its
    /// order: [`prune`](Self::prune), [`default`](Self::default), [`validate`](Self::validate).
    /// The object is left pruned and defaulted; an empty list means it may be stored.
    pub fn admit(&self, obj: &mut Value) -> Vec<FieldError> {
        self.prune(obj);
        self.default(obj);
        self.validate(obj)
    }
}

fn collect_patterns(s: &JSONSchemaProps, out: &mut Patterns) {
    if let Some(p) = s.pattern.as_deref().filter(|p| !p.is_empty()) {
        out.entry(p.to_string())
            .or_insert_with(|| pattern::compile(p).ok());
    }
    let mut children: Vec<&JSONSchemaProps> = Vec::new();
    children.extend(s.properties.iter().flat_map(|p| p.values()));
    children.extend(s.all_of.iter().flatten());
    children.extend(s.any_of.iter().flatten());
    children.extend(s.one_of.iter().flatten());
    children.extend(s.not.as_deref());
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => children.push(item),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => children.extend(list),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &s.additional_properties {
        children.push(extra);
    }
    for child in children {
        collect_patterns(child, out);
    }
}
