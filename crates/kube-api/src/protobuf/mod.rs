//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) for every built-in kind of
//! Kubernetes v1.33, both ways, over the JSON objects the server stores.
//!
//! kubectl 1.32+ sends protobuf bodies for `create deployment|job|cronjob|configmap|secret|…`,
//! `create token` and drain's DeleteOptions; client-go clients (kubectl's typed clients, Helm,
//! controllers) ask for protobuf answers first. A body is the `k8s\0` magic and a
//! `runtime.Unknown{typeMeta{apiVersion, kind}, raw}` envelope around the object's message;
//! a watch is a stream of `metav1.WatchEvent`s, each framed by its 4-byte big-endian length.
//!
//! The messages come from the vendored upstream `generated.proto` files (`proto/`), compiled
//! into descriptors at build time; `transcode` walks them generically (see
//! docs/kube-protobuf.md for why, and for the JSON special cases).
//!
//! Interface:
//! * [`decode`]: a request body → the JSON object (`apiVersion`/`kind` included);
//! * [`encode`]: a JSON object, list or Status → a protobuf body;
//! * [`watch_frame`]: one watch event → its framed bytes;
//! * [`negotiate`]: what the client's `Accept` asks for; [`respond`] re-encodes a JSON
//!   response as protobuf when it should.

mod negotiate;
mod schema;
mod time;
mod transcode;

#[cfg(test)]
mod tests;

use k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use localfargate_registry::KubeError;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::Value;

pub use negotiate::{negotiate, not_acceptable, respond};
pub use schema::has_protobuf_form;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The content type of a protobuf watch stream.
pub const WATCH_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

const MAGIC: &[u8] = b"k8s\0";

/// Why a value could not be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("it does not start with the k8s protobuf magic")]
    NoMagic,
    #[error("{0}")]
    Wire(#[from] prost::DecodeError),
    #[error("{api_version} {kind} has no protobuf form")]
    NoProtobufForm { api_version: String, kind: String },
    #[error("content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Invalid { path: String, message: String },
    #[error("the protobuf schema: {0}")]
    Schema(String),
}

impl ProtobufError {
    /// The error, one field further out (`spec.template` + `metadata` → `spec.template.metadata`).
    fn at(self, segment: &str) -> Self {
        match self {
            ProtobufError::Invalid { path, message } => ProtobufError::Invalid {
                path: if path.is_empty() {
                    segment.to_string()
                } else {
                    format!("{segment}.{path}")
                },
                message,
            },
            other => other,
        }
    }
}

fn type_meta(value: &Value) -> (&str, &str) {
    (
        value["apiVersion"].as_str().unwrap_or(""),
        value["kind"].as_str().unwrap_or(""),
    )
}

/// The envelope's type and the object's message bytes.
fn unwrap_envelope(body: &[u8]) -> Result<(String, String, Vec<u8>), ProtobufError> {
    let framed = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let unknown = Unknown::decode(framed)?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok((
        type_meta.api_version.unwrap_or_default(),
        type_meta.kind.unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    ))
}

/// The JSON object a protobuf body (the `k8s\0` envelope) carries, with its `apiVersion`
/// and `kind`.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let (api_version, kind, raw) = unwrap_envelope(body)?;
    // drain's DeleteOptions comes without a type.
    let (lookup_version, lookup_kind) = if api_version.is_empty() && kind.is_empty() {
        ("meta.k8s.io/v1", "DeleteOptions")
    } else {
        (api_version.as_str(), kind.as_str())
    };
    let desc = schema::message_for(lookup_version, lookup_kind).ok_or_else(|| {
        ProtobufError::NoProtobufForm {
            api_version: api_version.clone(),
            kind: kind.clone(),
        }
    })?;
    let message = DynamicMessage::decode(desc, raw.as_slice())?;
    let mut object = transcode::to_json(&message)?;
    if let Value::Object(map) = &mut object
        && !kind.is_empty()
    {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

/// A `RawExtension`'s bytes as JSON: an embedded protobuf object or a JSON document.
fn embedded(raw: &[u8]) -> Result<Value, ProtobufError> {
    if raw.starts_with(MAGIC) {
        return decode_object(raw);
    }
    serde_json::from_slice(raw).map_err(|e| ProtobufError::Invalid {
        path: String::new(),
        message: format!("embedded object: {e}"),
    })
}

/// A request body in protobuf, as the JSON object the rest of the API works on. Errors are
/// the client's: 415 for a kind without a protobuf form, 400 for bytes that do not decode.
pub fn decode(body: &[u8]) -> Result<Value, KubeError> {
    decode_object(body).map_err(|e| match e {
        // kube-apiserver's 415 for a protobuf body of a custom resource.
        ProtobufError::NoProtobufForm { api_version, kind } => {
            tracing::debug!(%api_version, %kind, "protobuf body of a kind without a protobuf form");
            KubeError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".into(),
            )
        }
        ProtobufError::Schema(message) => KubeError::Internal(message),
        other => KubeError::BadRequest(format!(
            "the protobuf request body could not be decoded: {other}"
        )),
    })
}

/// The message bytes of a JSON object (no envelope).
fn encode_message(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let (api_version, kind) = type_meta(value);
    let desc =
        schema::message_for(api_version, kind).ok_or_else(|| ProtobufError::NoProtobufForm {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let mut out = Vec::new();
    transcode::encode_message(&desc, value, &mut out)?;
    Ok(out)
}

/// A JSON object (an object, an `XxxList`, a `Status`) as a protobuf body, envelope included.
pub fn encode(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let raw = encode_message(value)?;
    let (api_version, kind) = type_meta(value);
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(MAGIC);
    unknown
        .encode(&mut out)
        .map_err(|e| ProtobufError::Invalid {
            path: String::new(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// One event of a protobuf watch stream: a `metav1.WatchEvent` whose object is the encoded
/// object (envelope included), without an envelope of its own, after its length as 4
/// big-endian bytes (apimachinery's length-delimited framer).
pub fn watch_frame(event_type: &str, object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let event = WatchEvent {
        r#type: Some(event_type.to_string()),
        object: Some(RawExtension {
            raw: Some(encode(object)?),
        }),
    };
    let len = u32::try_from(event.encoded_len()).map_err(|_| ProtobufError::Invalid {
        path: String::new(),
        message: "watch event larger than 4 GiB".into(),
    })?;
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    event.encode(&mut out).map_err(|e| ProtobufError::Invalid {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(out)
}
