//! `GET /api/v1/editions` and `GET /api/v1/editions/{id}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::problem::Problem;
use super::{ApiPath, Caller};
use crate::domain::{DbTime, DeliveryStatus, Role};
use crate::store::{EditionRow, StoreError};
use crate::web::AppState;

/// An edition and its deliveries by status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EditionOut {
    id: i64,
    list: String,
    kind: &'static str,
    status: &'static str,
    subject: String,
    created_at: String,
    finished_at: Option<String>,
    /// Every delivery status with its count, zeros included.
    deliveries: BTreeMap<&'static str, i64>,
}

async fn describe(st: &AppState, e: EditionRow) -> Result<EditionOut, Problem> {
    let list = st
        .store
        .list_by_id(e.list_id)
        .await
        .map_err(|err| Problem::internal("reading a list failed", err))?;
    let counts = st
        .store
        .delivery_counts(e.id)
        .await
        .map_err(|err| Problem::internal("counting deliveries failed", err))?;
    let deliveries = DeliveryStatus::ALL
        .iter()
        .map(|s| (s.as_str(), counts.get(s).copied().unwrap_or(0)))
        .collect();
    Ok(EditionOut {
        id: e.id,
        list: list.slug,
        kind: e.kind.as_str(),
        status: e.status.as_str(),
        subject: e.subject,
        created_at: e.created_at.to_text(),
        finished_at: e.finished_at.map(DbTime::to_text),
        deliveries,
    })
}

/// One edition.
#[utoipa::path(
    get,
    path = "/api/v1/editions/{id}",
    tag = "editions",
    summary = "An edition and its deliveries by status",
    params(("id" = i64, Path, description = "The edition's number")),
    responses(
        (status = 200, description = "the edition", body = EditionOut),
        (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 404, description = "no such thing", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn edition(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<EditionOut>, Problem> {
    caller.require(Role::Editor)?;
    let id: i64 = raw
        .parse()
        .map_err(|_| Problem::field("id", format!("expected an edition number, got {raw:?}")))?;
    let e = match st.store.edition(id).await {
        Ok(e) => e,
        Err(StoreError::NotFound(_)) => return Err(Problem::not_found(format!("edition {id}"))),
        Err(e) => return Err(Problem::internal("reading an edition failed", e)),
    };
    Ok(Json(describe(&st, e).await?))
}

#[derive(Debug)]
struct EditionsQuery {
    list: Option<String>,
    limit: Option<String>,
}

/// The newest editions, of one list (`?list=daily`) or all, at most `limit` (1-100, 20).
#[utoipa::path(
    get,
    path = "/api/v1/editions",
    tag = "editions",
    summary = "The newest editions",
    params(
        ("list" = Option<String>, Query, description = "Only this list's editions"),
        ("limit" = Option<i64>, Query, description = "At most this many (1-100, default 20)"),
    ),
    responses(
        (status = 200, description = "newest first", body = Vec<EditionOut>),
        (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_editions(
    State(st): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<EditionOut>>, Problem> {
    caller.require(Role::Editor)?;
    let mut q = EditionsQuery {
        list: None,
        limit: None,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "list" => q.list = Some(v.into_owned()),
            "limit" => q.limit = Some(v.into_owned()),
            other => {
                return Err(Problem::field(
                    other.to_owned(),
                    "unknown query parameter (expected list, limit)",
                ));
            }
        }
    }
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Problem::field("limit", format!("expected 1-100, got {raw:?}")))?,
    };
    let list_id = match q.list.as_deref() {
        None => None,
        Some(slug) => match st.store.list_by_slug(slug).await {
            Ok(l) => Some(l.id),
            Err(StoreError::NotFound(_)) => {
                return Err(Problem::field("list", format!("there is no list {slug:?}")));
            }
            Err(e) => return Err(Problem::internal("reading a list failed", e)),
        },
    };
    let rows = st
        .store
        .editions(list_id, limit)
        .await
        .map_err(|e| Problem::internal("reading editions failed", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for e in rows {
        out.push(describe(&st, e).await?);
    }
    Ok(Json(out))
}
