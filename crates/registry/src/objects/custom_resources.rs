//! What storing a custom resource adds to the shared storage semantics: its definition must
//! still serve it, its schema prunes, defaults and validates it, and it is stored in the
//! definition's storage version whatever version it was written through.

use serde_json::Value;

use super::{KubeError, Objects, Result};
use crate::resources::ResourceType;

impl Objects {
    /// Admit a custom resource written through `rt` (`old`: the stored object, on an update).
    pub(super) fn admit_custom(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        let catalog = self.catalog()?;
        let Some((resource, version)) = catalog.version_of(rt) else {
            return Err(KubeError::NotFound {
                message: "the server could not find the requested resource".into(),
                kind: String::new(),
                name: String::new(),
            });
        };
        if old.is_none() && resource.terminating {
            return Err(KubeError::MethodNotAllowed(
                "create not allowed while custom resource definition is terminating".into(),
            ));
        }
        if let Some(message) = &version.unconvertible {
            return Err(KubeError::Internal(message.clone()));
        }
        if old.is_none() && rt.has_status {
            // The status subresource owns status: a create starts without one.
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        if let Some(schema) = &version.schema {
            let errors = schema.admit(obj);
            if !errors.is_empty() {
                let name = super::name_of(obj).to_string();
                return Err(KubeError::invalid_fields(rt, &name, &errors));
            }
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "apiVersion".into(),
                Value::String(format!("{}/{}", resource.group, resource.storage_version)),
            );
        }
        Ok(())
    }
}
