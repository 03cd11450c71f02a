//! RFC 9457 problem details: every API error is `application/problem+json` with the status,
//! a human `detail` and, for a bad field, a `field` member naming it (an extension member,
//! RFC 9457 §3.2).

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank` (RFC 9457 §4.2.1): the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What is wrong, for a person.
    pub detail: String,
    /// The request field at fault (`title`, `lists[1]`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// 422: `field` is invalid.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {}", detail.into()),
        );
        p.field = Some(field);
        p
    }

    /// 404 for a thing that does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{} not found", what.into()))
    }

    /// 500, logging the cause (never shown to the caller).
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side; nothing was changed, try again",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a bearer-protected resource names its scheme.
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dispatch\""),
            );
        }
        res
    }
}
