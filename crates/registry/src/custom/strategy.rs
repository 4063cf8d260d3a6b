//! The strategy of CustomResourceDefinitions: what kube-apiserver's apiextensions registry and
//! its naming and establishing controllers do to a definition, done as it is written (upstream's
//! controllers answer within milliseconds; here the next request already sees the result, which
//! is what clients waiting for `Established` observe either way).
//!
//! A definition's spec and status stay JSON here, as in `definition`: they carry the versions'
//! OpenAPI schemas, which must round-trip exactly as written (a typed decode would re-shape
//! them); only its metadata is read through `meta`.

use serde_json::{Value, json};

use super::catalog::{CLEANUP_FINALIZER, CRD_KEY_PREFIX};
use super::definition;
use crate::meta::DynamicObject;
use crate::objects::{KubeError, Objects, Result, is_deleting, name_of, now_rfc3339};
use crate::resources::ResourceType;
use crate::strategy::Strategy;

fn invalid(
    rt: &ResourceType,
    crd: &Value,
    errors: &[localfargate_core::validation::FieldError],
) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(KubeError::invalid_fields(rt, name_of(crd), errors))
}

pub struct DefinitionStrategy;

impl Strategy for DefinitionStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, _rt: &ResourceType, obj: &mut DynamicObject) -> Result<()> {
        obj.with_json(definition::default_crd)?;
        Ok(())
    }

    fn initial_status(&self, _obj: &DynamicObject) -> Option<Value> {
        // What Go writes for a status with nothing in it; `admit_create` fills it in.
        Some(json!({"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": []}))
    }

    fn admit_create(&self, objects: &Objects, obj: &mut DynamicObject) -> Result<()> {
        obj.with_json(|obj| admit_create(objects, obj))?
    }

    /// A definition's objects go before it does: its deletion holds it with the cleanup
    /// finalizer (added by the server, as upstream's DELETE adds it).
    fn finalizers_on_delete(&self) -> &'static [&'static str] {
        &[CLEANUP_FINALIZER]
    }

    fn validate_update(
        &self,
        rt: &ResourceType,
        old: &DynamicObject,
        new: &DynamicObject,
    ) -> Result<()> {
        // The definitions' rules read them as JSON; definitions are few and rarely written.
        let (old, new) = (old.clone().into_value(), new.clone().into_value());
        invalid(rt, &new, &definition::validate_crd_update(&old, &new))
    }

    fn admit_update(
        &self,
        objects: &Objects,
        old: &DynamicObject,
        new: &mut DynamicObject,
    ) -> Result<()> {
        let old = old.clone().into_value();
        new.with_json(|new| {
            definition::prepare_crd_for_update(&old, new);
            let others = other_definitions(objects, new)?;
            new["status"] = status(new, &others);
            Ok(())
        })?
    }
}

fn admit_create(objects: &Objects, obj: &mut Value) -> Result<()> {
    {
        definition::prepare_crd_for_create(obj);
        let rt = crate::objects::resource(super::catalog::CRD_GROUP, "customresourcedefinitions");
        invalid(rt, obj, &definition::validate_crd(obj))?;
        let others = other_definitions(objects, obj)?;
        obj["status"] = status(obj, &others);
        Ok(())
    }
}

/// The other definitions of the cluster (by name), as stored.
fn other_definitions(objects: &Objects, crd: &Value) -> Result<Vec<Value>> {
    let name = name_of(crd);
    let (all, _) = objects
        .store
        .list(objects.store_kind(), CRD_KEY_PREFIX)
        .map_err(crate::KubeError::from_store)?;
    Ok(all
        .iter()
        .map(|o| o.value.clone())
        .filter(|v| name_of(v) != name)
        .collect())
}

/// Why a definition's names cannot be accepted: another definition of the group has them.
fn conflict(crd: &Value, others: &[Value]) -> Option<(&'static str, String)> {
    let group = &crd["spec"]["group"];
    let names = &crd["spec"]["names"];
    for other in others.iter().filter(|o| &o["spec"]["group"] == group) {
        let accepted = &other["status"]["acceptedNames"];
        let plural = names["plural"].as_str().unwrap_or("");
        if accepted["plural"] == plural || accepted["singular"] == plural {
            return Some(("PluralConflict", format!("{plural:?} is already in use")));
        }
        let singular = names["singular"].as_str().unwrap_or("");
        if accepted["plural"] == singular || accepted["singular"] == singular {
            return Some((
                "SingularConflict",
                format!("{singular:?} is already in use"),
            ));
        }
        let kind = names["kind"].as_str().unwrap_or("");
        if accepted["kind"] == kind || accepted["listKind"] == kind {
            return Some(("KindConflict", format!("{kind:?} is already in use")));
        }
        let list_kind = names["listKind"].as_str().unwrap_or("");
        if accepted["kind"] == list_kind || accepted["listKind"] == list_kind {
            return Some((
                "ListKindConflict",
                format!("{list_kind:?} is already in use"),
            ));
        }
        for short in names["shortNames"].as_array().into_iter().flatten() {
            if accepted["shortNames"]
                .as_array()
                .is_some_and(|a| a.contains(short))
            {
                let short = short.as_str().unwrap_or("");
                return Some(("ShortNamesConflict", format!("{short:?} is already in use")));
            }
        }
    }
    None
}

/// A condition, keeping its transition time when its status did not change.
fn condition(old: &Value, kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let previous = old["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let time = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now_rfc3339()),
    };
    json!({
        "type": kind,
        "status": status,
        "lastTransitionTime": time,
        "reason": reason,
        "message": message,
    })
}

/// The status a definition gets from the naming and establishing controllers: its accepted
/// names, `NamesAccepted`, `Established`, the stored versions, and `Terminating` once deleted.
pub fn status(crd: &Value, others: &[Value]) -> Value {
    let names = &crd["spec"]["names"];
    let mut out = if crd["status"].is_object() {
        crd["status"].clone()
    } else {
        json!({})
    };
    let mut conditions = Vec::new();
    match conflict(crd, others) {
        None => {
            let mut accepted = json!({
                "plural": names["plural"],
                "singular": names["singular"],
                "kind": names["kind"],
                "listKind": names["listKind"],
            });
            for optional in ["shortNames", "categories"] {
                if names[optional].is_array() {
                    accepted[optional] = names[optional].clone();
                }
            }
            out["acceptedNames"] = accepted;
            conditions.push(condition(
                crd,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            ));
            conditions.push(condition(
                crd,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
        }
        Some((reason, message)) => {
            if !out["acceptedNames"].is_object() {
                out["acceptedNames"] = json!({"plural": "", "kind": ""});
            }
            conditions.push(condition(crd, "NamesAccepted", "False", reason, &message));
            conditions.push(condition(
                crd,
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            ));
        }
    }
    if is_deleting(crd) {
        conditions.push(condition(
            crd,
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    out["conditions"] = Value::Array(conditions);
    let mut stored: Vec<Value> = out["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"] == true && !stored.contains(&v["name"]) {
            stored.push(v["name"].clone());
        }
    }
    out["storedVersions"] = Value::Array(stored);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        let mut v = json!({
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        v["metadata"]["name"] = json!(name);
        definition::default_crd(&mut v);
        v
    }

    #[test]
    fn a_definition_without_conflicts_is_established() {
        let c = crd("widgets.example.com", "widgets", "Widget");
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        let s = status(&c, &[]);
        assert_eq!(s["acceptedNames"]["kind"], "Widget");
        assert_eq!(s["conditions"][0]["type"], "NamesAccepted");
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn a_kind_in_use_in_the_group_is_not_accepted() {
        let mut first = crd("widgets.example.com", "widgets", "Widget");
        first["status"] = status(&first, &[]);
        let mut second = crd("gadgets.example.com", "gadgets", "Widget");
        second["spec"]["names"]["singular"] = json!("gadget");
        let s = status(&second, &[first]);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "KindConflict");
        assert_eq!(
            s["conditions"][0]["message"],
            "\"Widget\" is already in use"
        );
        assert_eq!(s["conditions"][1]["status"], "False");
    }
}
