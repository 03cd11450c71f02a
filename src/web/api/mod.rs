//! The HTTP API for a CMS, under `/api/v1/`: JSON in and out, bearer keys with roles.
//!
//! - `PUT /articles/{external_id}`, `POST /articles/{external_id}/breaking` (editor)
//! - `GET /editions`, `GET /editions/{id}`, `GET /lists` (editor)
//! - `POST /lists/{slug}/subscribers`, `DELETE /lists/{slug}/subscribers/{email}` (admin)
//! - `GET /openapi.json`: the OpenAPI 3.1 description ([`ApiDoc`]), without a key
//!
//! Every route is behind [`authenticate`]: `Authorization: Bearer <key>` (RFC 6750 §2.1),
//! looked up by its SHA-256; 401 when missing, malformed, unknown or revoked, 403 when the
//! key's role may not. Each call is logged with the key's name and the route's template,
//! never the key, nor an address from the path. Bodies are read up to [`API_BODY_LIMIT`]
//! (413 beyond); errors are RFC 9457 problem documents ([`problem::Problem`]), those of
//! axum's own extractors and routing included: 404 for an unknown path, 405 for a wrong
//! method, 400 for an undecodable path segment ([`ApiPath`]) or malformed JSON, 415 for
//! another media type, 422 naming the field for a value that is wrong ([`ApiJson`]).

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::domain::{ApiKey, Role};

mod articles;
mod editions;
mod lists;
pub mod problem;

use problem::Problem;

/// The largest API request body: a long article with its summary is a few kilobytes.
pub const API_BODY_LIMIT: usize = 1024 * 1024;

/// The API's routes, to nest under `/api/v1`.
pub(super) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/articles/{external_id}", put(articles::put_article))
        .route(
            "/articles/{external_id}/breaking",
            post(articles::send_breaking),
        )
        .route("/editions", get(editions::list_editions))
        .route("/editions/{id}", get(editions::edition))
        .route("/lists", get(lists::lists))
        .route("/lists/{slug}/subscribers", post(lists::subscribe))
        .route(
            "/lists/{slug}/subscribers/{email}",
            delete(lists::unsubscribe),
        )
        // After the routes, so it applies to each of them; inside the key check, so only a
        // caller with a key learns an endpoint's methods. Axum adds `Allow` (RFC 9110
        // §15.5.6).
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see the Allow header)",
            )
        })
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
        // Added after the key check's layer, so it is outside it.
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

/// 404 for any path under `/api/v1/` that is no endpoint.
pub(super) async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such API endpoint")
}

/// Who is calling: the key's name and role.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// 403 unless this caller's role may do what `needed` may.
    pub(crate) fn require(&self, needed: Role) -> Result<(), Problem> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the API key {:?} has the role {}; this needs {needed}",
                    self.name, self.role
                ),
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        // Set by `authenticate`, which runs before every API handler.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "missing API key"))
    }
}

/// Looks the bearer key up, refuses the request without a valid one, and logs the call.
async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "?".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let raw = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let Some(raw) = raw else {
        tracing::info!(%method, route, status = 401, "API call without a key");
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "send an API key as \"Authorization: Bearer <key>\" (dispatch api-keys create)",
        )
        .into_response();
    };
    let found = match ApiKey::parse(raw) {
        Some(key) => match st.store.api_key_by_key(&key).await {
            Ok(found) => found,
            Err(e) => return Problem::internal("looking up an API key failed", e).into_response(),
        },
        None => None,
    };
    let Some(key) = found else {
        tracing::warn!(%method, route, status = 401, "API call with an unknown or revoked key");
        return Problem::new(StatusCode::UNAUTHORIZED, "unknown or revoked API key")
            .into_response();
    };
    req.extensions_mut().insert(Caller {
        name: key.name.clone(),
        role: key.role,
    });
    let res = next.run(req).await;
    tracing::info!(key = %key.name, role = %key.role, %method, route, status = res.status().as_u16(), "API call");
    res
}

/// A path parameter, refused as a problem document: a segment whose percent-encoding does not
/// decode to UTF-8 (`/articles/%FF`) is a 400 naming the parameter, not axum's plain text.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(rejection) => {
                // Only a route without the parameter (our bug, not the caller's) is a 5xx.
                let status = if rejection.status().is_server_error() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                };
                Err(Problem::new(
                    status,
                    format!("the request path: {}", rejection.body_text()),
                ))
            }
        }
    }
}

/// A JSON body read up to [`API_BODY_LIMIT`]: 413 beyond it, 415 for another media type,
/// 400 for malformed JSON, 422 naming the field for a value of the wrong type.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        let bytes = axum::body::to_bytes(req.into_body(), API_BODY_LIMIT)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} bytes", API_BODY_LIMIT),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // No body: the same as `{}` (e.g. a breaking send to the default lists).
            return parse(b"{}").map(ApiJson);
        }
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as Content-Type: application/json",
            ));
        }
        parse(&bytes).map(ApiJson)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // serde reads a struct from an array too (`[1]` as its first field): every body of this
    // API is an object, and anything else is refused as a whole once it is known to be JSON.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(e) => Problem::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
                Ok(_) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the body must be a JSON object",
                ),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = without_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            Problem::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"))
        } else if let Some(name) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            Problem::field(name, "is required")
        } else if path.is_empty() || path == "." {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
        } else {
            Problem::field(path, msg)
        }
    })?;
    de.end()
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json's message without its " at line 1 column 9" suffix (the field is named).
fn without_position(msg: &str) -> String {
    msg.rsplit_once(" at line ")
        .map_or(msg, |(m, _)| m)
        .to_owned()
}

/// The OpenAPI 3.1 description of this API, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dispatch CMS API",
        description = "Articles in, breaking news out, for a newsroom's CMS. Authenticate with `Authorization: Bearer <key>` (`dispatch api-keys create`). Errors are RFC 9457 problem documents."
    ),
    paths(
        articles::put_article,
        articles::send_breaking,
        editions::list_editions,
        editions::edition,
        lists::lists,
        lists::subscribe,
        lists::unsubscribe,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key made by `dispatch api-keys create`"))
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`: public, like any API description.
async fn openapi() -> Response {
    use utoipa::OpenApi as _;
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => Problem::internal("serialising the OpenAPI document failed", e).into_response(),
    }
}
