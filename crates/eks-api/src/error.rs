//! EKS errors on the wire: the `X-Amzn-ErrorType` header, a JSON body with `message` and the
//! modelled context members, and the modelled HTTP status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub error_type: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// Modelled members (`clusterName`, `fargateProfileName`, `nodegroupName`) that apply.
    pub context: Map<String, Value>,
}

impl ApiError {
    fn new(error_type: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            error_type,
            status,
            message: message.into(),
            context: Map::new(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            "InvalidParameterException",
            StatusCode::BAD_REQUEST,
            message,
        )
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new("InvalidRequestException", StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", StatusCode::NOT_FOUND, message)
    }
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", StatusCode::CONFLICT, message)
    }
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(
            "ResourceLimitExceededException",
            StatusCode::BAD_REQUEST,
            message,
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("BadRequestException", StatusCode::BAD_REQUEST, message)
    }
    pub fn tag_target_not_found(message: impl Into<String>) -> Self {
        Self::new("NotFoundException", StatusCode::NOT_FOUND, message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", StatusCode::BAD_REQUEST, message)
    }
    pub fn unknown_operation() -> Self {
        Self::new("UnknownOperationException", StatusCode::NOT_FOUND, "")
    }
    pub fn access_denied(error_type: &'static str, message: impl Into<String>) -> Self {
        Self::new(error_type, StatusCode::FORBIDDEN, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(
            "ServerException",
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    pub fn cluster(mut self, name: &str) -> Self {
        self.context.insert("clusterName".to_string(), json!(name));
        self
    }
    pub fn profile(mut self, name: &str) -> Self {
        self.context
            .insert("fargateProfileName".to_string(), json!(name));
        self
    }
    pub fn nodegroup(mut self, name: &str) -> Self {
        self.context
            .insert("nodegroupName".to_string(), json!(name));
        self
    }
}

impl From<localfargate_store::StoreError> for ApiError {
    fn from(e: localfargate_store::StoreError) -> Self {
        tracing::error!(error = %e, "store");
        ApiError::server(format!("internal store error: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.context;
        body.insert("message".to_string(), json!(self.message));
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if let Ok(v) = HeaderValue::from_str(self.error_type) {
            response.headers_mut().insert("x-amzn-errortype", v);
        }
        response
    }
}
