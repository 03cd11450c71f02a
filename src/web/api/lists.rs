//! `GET /api/v1/lists`; for admins, a site's own sign-up form and unsubscribes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::Problem;
use super::{ApiJson, ApiPath, Caller};
use crate::domain::{Category, CategorySet, EmailAddress, MAX_NAME_CHARS, Role, clean_text_within};
use crate::store::{ListRow, SignupOutcome, StoreError, WebSignup};
use crate::web::{AppState, ClientIp};

/// A list as answered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListOut {
    slug: String,
    name: String,
    schedule: Option<String>,
    timezone: String,
    categories: Vec<String>,
    breaking: bool,
    double_opt_in: bool,
    subscribers: Counts,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Counts {
    pending: i64,
    active: i64,
    unsubscribed: i64,
}

/// Every list with its subscriber counts.
#[utoipa::path(
    get,
    path = "/api/v1/lists",
    tag = "lists",
    summary = "Every list with its subscriber counts",
    responses(
        (status = 200, description = "by slug", body = Vec<ListOut>),
        (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn lists(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ListOut>>, Problem> {
    caller.require(Role::Editor)?;
    let rows = st
        .store
        .all_lists()
        .await
        .map_err(|e| Problem::internal("reading lists failed", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for l in rows {
        let (pending, active, unsubscribed) = st
            .store
            .subscription_counts(l.id)
            .await
            .map_err(|e| Problem::internal("counting subscribers failed", e))?;
        out.push(ListOut {
            categories: l
                .category_set()
                .map(|c| c.iter().map(|c| c.as_str().to_owned()).collect())
                .unwrap_or_default(),
            slug: l.slug,
            name: l.name,
            schedule: l.schedule,
            timezone: l.timezone,
            breaking: l.sends_breaking,
            double_opt_in: l.double_opt_in,
            subscribers: Counts {
                pending,
                active,
                unsubscribed,
            },
        });
    }
    Ok(Json(out))
}

async fn list(st: &AppState, slug: &str) -> Result<ListRow, Problem> {
    match st.store.list_by_slug(slug).await {
        Ok(l) => Ok(l),
        Err(StoreError::NotFound(_)) => Err(Problem::not_found(format!("list {slug:?}"))),
        Err(e) => Err(Problem::internal("reading a list failed", e)),
    }
}

/// A sign-up from the site's own form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeIn {
    email: String,
    /// The reader's name, stored with a new subscriber (or one stored without a name).
    name: Option<String>,
    /// Topics of the list; absent or empty: all of them.
    #[serde(default)]
    categories: Vec<String>,
}

/// What a sign-up answers: `active`, `confirmation_sent` or `already_active`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignupOut {
    list: String,
    status: &'static str,
}

/// What an unsubscribe answers: whether a subscription changed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnsubscribeOut {
    list: String,
    unsubscribed: bool,
}

/// Subscribes an address as our sign-up page does: double opt-in applies (202, a
/// confirmation is mailed), else the subscription is active at once (201).
#[utoipa::path(
    post,
    path = "/api/v1/lists/{slug}/subscribers",
    tag = "subscribers",
    summary = "Sign a reader up (admin; double opt-in applies)",
    params(("slug" = String, Path, description = "The list")),
    request_body = SubscribeIn,
    responses(
        (status = 201, description = "active at once (single opt-in list)", body = SignupOut),
        (status = 202, description = "a confirmation message is queued", body = SignupOut),
        (status = 200, description = "already subscribed; nothing changed", body = SignupOut),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"), (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 404, description = "no such thing", body = Problem, content_type = "application/problem+json"), (status = 413, description = "body over 1 MB", body = Problem, content_type = "application/problem+json"), (status = 415, description = "not application/json", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn subscribe(
    State(st): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<SubscribeIn>,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let list = list(&st, &slug).await?;
    let email =
        EmailAddress::parse(&body.email).map_err(|e| Problem::field("email", e.to_string()))?;
    let name = match &body.name {
        Some(raw) => Some(
            clean_text_within(raw, MAX_NAME_CHARS)
                .map_err(|e| Problem::field("name", e.to_string()))?,
        )
        .filter(|n| !n.is_empty()),
        None => None,
    };
    let mut wanted = Vec::new();
    for (i, raw) in body.categories.iter().enumerate() {
        wanted.push(
            Category::parse(raw)
                .map_err(|e| Problem::field(format!("categories[{i}]"), e.to_string()))?,
        );
    }
    let wanted = CategorySet::new(wanted);
    let categories = match list.category_set() {
        _ if wanted.is_empty() => None,
        Some(carried) => {
            if let Some(c) = wanted.iter().find(|c| !carried.contains(c)) {
                return Err(Problem::field(
                    "categories",
                    format!(
                        "{:?} is not a topic of the list {:?}",
                        c.as_str(),
                        list.slug
                    ),
                ));
            }
            (wanted.len() < carried.len()).then_some(wanted)
        }
        None => Some(wanted),
    };
    // Consent evidence: where the request came from, and through which key.
    let evidence = format!("{ip} (api key {})", caller.name);
    let outcome = st
        .store
        .web_subscribe(&WebSignup {
            email: &email,
            list_id: list.id,
            categories,
            ip: &evidence,
            name: name.as_deref(),
        })
        .await
        .map_err(|e| Problem::internal("recording a sign-up failed", e))?;
    tracing::info!(key = %caller.name, list = %list.slug, domain = %email.domain(), outcome = ?outcome, "API sign-up");
    let (status, word) = match outcome {
        SignupOutcome::ConfirmationQueued => (StatusCode::ACCEPTED, "confirmation_sent"),
        SignupOutcome::Activated => (StatusCode::CREATED, "active"),
        SignupOutcome::AlreadyActive => (StatusCode::OK, "already_active"),
    };
    Ok((
        status,
        Json(SignupOut {
            list: list.slug,
            status: word,
        }),
    )
        .into_response())
}

/// Unsubscribes an address from the list (erasing stays a CLI act).
#[utoipa::path(
    delete,
    path = "/api/v1/lists/{slug}/subscribers/{email}",
    tag = "subscribers",
    summary = "Unsubscribe a reader from a list (admin)",
    params(
        ("slug" = String, Path, description = "The list"),
        ("email" = String, Path, description = "The reader's address"),
    ),
    responses(
        (status = 200, description = "done (or already unsubscribed)", body = UnsubscribeOut),
        (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 404, description = "no such thing", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn unsubscribe(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((slug, raw_email)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let list = list(&st, &slug).await?;
    let email =
        EmailAddress::parse(&raw_email).map_err(|e| Problem::field("email", e.to_string()))?;
    let changed = match st.store.unsubscribe_email(&email, Some(list.id)).await {
        Ok(n) => n,
        Err(StoreError::NotFound(_)) => {
            return Err(Problem::not_found("a subscriber with that address"));
        }
        Err(e) => return Err(Problem::internal("unsubscribing failed", e)),
    };
    tracing::info!(key = %caller.name, list = %list.slug, domain = %email.domain(), changed, "API unsubscribe");
    Ok((
        StatusCode::OK,
        Json(UnsubscribeOut {
            list: list.slug,
            unsubscribed: changed > 0,
        }),
    )
        .into_response())
}
