//! Upstream's OpenAPI v2 spec (Kubernetes v1.33.1 `api/openapi-spec/swagger.json`), vendored
//! zstd-compressed (3.7 MB → 160 kB) and decompressed and parsed once, on first use.

use std::sync::OnceLock;

use serde_json::Value;

use super::OpenApiError;

const COMPRESSED: &[u8] = include_bytes!("../../openapi/swagger-v1.33.1.json.zst");

/// The Kubernetes version the vendored spec is from.
pub const KUBERNETES_VERSION: &str = "v1.33.1";

fn load() -> Result<Value, OpenApiError> {
    let json = zstd::decode_all(COMPRESSED).map_err(OpenApiError::Decompress)?;
    serde_json::from_slice(&json).map_err(OpenApiError::Parse)
}

/// The parsed spec.
pub fn spec() -> Result<&'static Value, OpenApiError> {
    static SPEC: OnceLock<Value> = OnceLock::new();
    if let Some(spec) = SPEC.get() {
        return Ok(spec);
    }
    let spec = load()?;
    Ok(SPEC.get_or_init(|| spec))
}
