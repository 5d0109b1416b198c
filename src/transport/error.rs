//! The one place where the engine's typed errors become the protocol's
//! error codes; REST errors: `{"error":{"code","message"}}` with the status
//! of the code, and a JSON extractor whose rejections use the same shape.

use app::error::{ErrorBody, ErrorCode, ErrorResponse};
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::engine::errors::EngineError;

/// An engine error as the protocol writes it (REST bodies, WebSocket
/// replies and `error` events alike).
pub fn error_body(e: EngineError) -> ErrorBody {
    let (code, message, retry_after_ms) = match e {
        EngineError::BadRequest { message } => (ErrorCode::BadRequest, message, None),
        EngineError::Forbidden { message } => (ErrorCode::Forbidden, message, None),
        EngineError::NotFound { message } => (ErrorCode::NotFound, message, None),
        EngineError::Conflict { message } => (ErrorCode::Conflict, message, None),
        EngineError::TooLarge { message } => (ErrorCode::TooLarge, message, None),
        EngineError::Locked { message } => (ErrorCode::Locked, message, None),
        EngineError::Full { message } => (ErrorCode::Full, message, None),
        EngineError::RateLimited { message, retry_after_ms } => (ErrorCode::RateLimited, message, Some(retry_after_ms)),
        EngineError::Capacity { message } => (ErrorCode::Capacity, message, None),
        EngineError::Unavailable { message, retry_after_ms } => (ErrorCode::Unavailable, message, Some(retry_after_ms)),
        EngineError::Internal { message } => (ErrorCode::Internal, message, None),
    };
    ErrorBody { code, message, retry_after_ms }
}

#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, message))
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError(e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError(error_body(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1));
        let mut response = (status, axum::Json(ErrorResponse { error: self.0 })).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `axum::Json` whose rejections answer in the protocol's error shape.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(ErrorCode::BadRequest, "expected `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::TooLarge, "request body is too large")
            } else {
                ApiError::new(ErrorCode::BadRequest, r.body_text())
            }
        })?;
        object_body(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// REST bodies are JSON objects: serde would read a struct from an array
/// (`["pos-x","desc"]` as `{"id":"pos-x","description":"desc"}`).
pub fn object_body(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::new(ErrorCode::BadRequest, "the body must be a JSON object")),
    }
}

/// `axum::extract::Path` whose rejections (a segment that is not UTF-8,
/// a wrong type) answer in the protocol's error shape.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::new(ErrorCode::BadRequest, rejection.body_text())),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::TooLarge, "request body is too large");
    }
    let message = match &rejection {
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: <field>: <why>"
            let text = e.body_text();
            text.split_once(": ").map(|(_, rest)| rest.to_string()).unwrap_or(text)
        }
        JsonRejection::MissingJsonContentType(_) => "expected `Content-Type: application/json`".to_string(),
        other => other.body_text(),
    };
    ApiError::new(ErrorCode::BadRequest, message)
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
