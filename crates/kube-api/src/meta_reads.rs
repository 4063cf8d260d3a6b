//! Borrowed reads of an object's metadata that `localfargate_registry::meta` does not offer
//! (its `name_of`, `uid_of`, … cover the rest): for objects passed through as JSON, where
//! converting the metadata to read one field would copy it for nothing.

use serde_json::Value;

/// `metadata.resourceVersion` of an object, borrowed.
pub(crate) fn resource_version_of(v: &Value) -> Option<&str> {
    metadata_of(v).get("resourceVersion")?.as_str()
}

/// `metadata.creationTimestamp` of an object, borrowed.
pub(crate) fn creation_timestamp_of(v: &Value) -> Option<&str> {
    metadata_of(v).get("creationTimestamp")?.as_str()
}

/// An object's `metadata` as written (`null` when absent), for a response that passes it on
/// (a Table row's `PartialObjectMetadata`).
pub(crate) fn metadata_of(v: &Value) -> &Value {
    static NULL: Value = Value::Null;
    v.get("metadata").unwrap_or(&NULL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_borrow_the_metadata() {
        let v = json!({"metadata": {"name": "p", "resourceVersion": "7",
                                    "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(resource_version_of(&v), Some("7"));
        assert_eq!(creation_timestamp_of(&v), Some("2026-01-01T00:00:00Z"));
        assert_eq!(metadata_of(&v)["name"], "p");
        assert_eq!(resource_version_of(&json!({})), None);
        assert!(metadata_of(&json!({})).is_null());
    }
}
