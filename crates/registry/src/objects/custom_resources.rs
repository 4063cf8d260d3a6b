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
        let storage = format!("{}/{}", resource.group, resource.storage_version);
        match &resource.conversion {
            // Stored in its storage version, converted by the definition's webhook.
            Some(hook) if rt.version != resource.storage_version => {
                let source = format!("{}, Kind={}", rt.api_version(), rt.kind);
                let converted = crate::webhooks::conversion::convert(
                    self,
                    hook,
                    &source,
                    &storage,
                    vec![obj.clone()],
                )?;
                if let Some(c) = converted.into_iter().next() {
                    *obj = c;
                }
            }
            _ => {
                if let Some(o) = obj.as_object_mut() {
                    o.insert("apiVersion".into(), Value::String(storage));
                }
            }
        }
        Ok(())
    }

    /// Objects as stored, as a request through `rt` sees them (`present`); a definition that
    /// converts by webhook has those stored in another version converted by it, in one review
    /// per stored version.
    pub fn present_all(&self, rt: &ResourceType, mut objs: Vec<Value>) -> Result<Vec<Value>> {
        let hook = if rt.custom {
            self.catalog()?
                .version_of(rt)
                .and_then(|(r, _)| r.conversion.clone())
        } else {
            None
        };
        let Some(hook) = hook else {
            return Ok(objs.into_iter().map(|o| super::present(rt, o)).collect());
        };
        let desired = rt.api_version();
        let mut by_source: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (i, o) in objs.iter().enumerate() {
            let version = o["apiVersion"].as_str().unwrap_or_default();
            if version != desired {
                by_source.entry(version.to_string()).or_default().push(i);
            }
        }
        for (source, at) in by_source {
            let batch: Vec<Value> = at.iter().map(|i| std::mem::take(&mut objs[*i])).collect();
            let shown = format!("{source}, Kind={}", rt.kind);
            let converted =
                crate::webhooks::conversion::convert(self, &hook, &shown, &desired, batch)?;
            for (i, c) in at.into_iter().zip(converted) {
                objs[i] = c;
            }
        }
        Ok(objs)
    }

    /// One object as stored, as a request through `rt` sees it (see `present_all`).
    pub fn present_one(&self, rt: &ResourceType, obj: Value) -> Result<Value> {
        Ok(self
            .present_all(rt, vec![obj])?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// `present_one` of an object already gone or written: its stored form when the
    /// conversion fails, since the write is done.
    pub(super) fn present_done(&self, rt: &ResourceType, obj: Value) -> Value {
        match self.present_one(rt, obj.clone()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "converting a written object for the response");
                super::present(rt, obj)
            }
        }
    }
}
