//! `PUT /api/v1/articles/{external_id}` and `POST …/breaking`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::Problem;
use super::{ApiJson, ApiPath, Caller};
use crate::domain::{
    Category, MAX_AUTHOR_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, Role, WebUrl,
    clean_text_within, language_tag, parse_timestamp,
};
use crate::store::{ArticleRow, Created, NewArticle, Revision, StoreError, Upserted};
use crate::web::AppState;

/// The longest external id, as for feed GUIDs.
const MAX_EXTERNAL_ID_LEN: usize = 2048;

/// An article as the CMS sends it: the fields of `dispatch articles add`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArticleIn {
    title: String,
    url: String,
    category: String,
    #[serde(default)]
    summary: String,
    author: Option<String>,
    /// RFC 3339; absent: now for a new article, unchanged for a stored one.
    published_at: Option<String>,
    language: Option<String>,
    /// https only.
    image_url: Option<String>,
    #[serde(default)]
    breaking: bool,
}

/// An article as stored, as answered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArticleOut {
    id: i64,
    external_id: String,
    url: String,
    title: String,
    summary: String,
    author: Option<String>,
    category: String,
    language: Option<String>,
    image_url: Option<String>,
    published_at: String,
    breaking: bool,
}

impl From<ArticleRow> for ArticleOut {
    fn from(a: ArticleRow) -> Self {
        Self {
            id: a.id,
            external_id: a.external_id,
            url: a.url,
            title: a.title,
            summary: a.summary,
            author: a.author,
            category: a.category,
            language: a.language,
            image_url: a.image_url,
            published_at: a.published_at,
            breaking: a.breaking,
        }
    }
}

/// The path's external id, checked like a feed GUID.
fn external_id(raw: &str) -> Result<String, Problem> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(Problem::field("external_id", "must not be empty"));
    }
    if id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(Problem::field(
            "external_id",
            format!(
                "is {} bytes long; at most {MAX_EXTERNAL_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Problem::field("external_id", "contains control characters"));
    }
    Ok(id.to_owned())
}

/// Validates and cleans the body exactly as `articles add` does its flags.
fn validate(
    external_id: String,
    a: ArticleIn,
    stored: Option<&ArticleRow>,
) -> Result<NewArticle, Problem> {
    let text = |field: &str, raw: &str, max| {
        clean_text_within(raw, max).map_err(|e| Problem::field(field, e.to_string()))
    };
    let title = text("title", &a.title, MAX_TITLE_CHARS)?;
    if title.is_empty() {
        return Err(Problem::field("title", "must not be empty"));
    }
    let url = WebUrl::parse(&a.url).map_err(|e| Problem::field("url", e.to_string()))?;
    let category =
        Category::parse(&a.category).map_err(|e| Problem::field("category", e.to_string()))?;
    let summary = text("summary", &a.summary, MAX_SUMMARY_CHARS)?;
    let author = match a.author {
        Some(raw) => Some(text("author", &raw, MAX_AUTHOR_CHARS)?).filter(|s| !s.is_empty()),
        None => None,
    };
    let language = match a.language.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(l) => Some(language_tag(l).ok_or_else(|| {
            Problem::field(
                "language",
                format!("{l:?} is not a language tag such as \"en\" or \"ur\""),
            )
        })?),
    };
    let image_url = match a.image_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let u = WebUrl::parse(raw).map_err(|e| Problem::field("image_url", e.to_string()))?;
            if !u.as_str().starts_with("https://") {
                return Err(Problem::field("image_url", "must use https"));
            }
            Some(u.to_string())
        }
    };
    let published_at = match a.published_at.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => {
            parse_timestamp(t).map_err(|e| Problem::field("published_at", e.to_string()))?
        }
        // A repeated PUT without a time must not move the story to now.
        _ => stored
            .and_then(|s| crate::store::parse_db_time(&s.published_at))
            .unwrap_or_else(Utc::now),
    };
    Ok(NewArticle {
        external_id,
        url: url.to_string(),
        title,
        summary,
        author,
        category: category.to_string(),
        language,
        image_url,
        published_at,
        breaking: a.breaking,
    })
}

/// Creates (201) or updates (200) the article with this external id.
#[utoipa::path(
    put,
    path = "/api/v1/articles/{external_id}",
    tag = "articles",
    summary = "Create or update an article (idempotent)",
    params(("external_id" = String, Path, description = "The CMS's id for the article")),
    request_body = ArticleIn,
    responses(
        (status = 201, description = "created", body = ArticleOut),
        (status = 200, description = "updated, or already so", body = ArticleOut),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"), (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 413, description = "body over 1 MB", body = Problem, content_type = "application/problem+json"), (status = 415, description = "not application/json", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn put_article(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(body): ApiJson<ArticleIn>,
) -> Result<Response, Problem> {
    caller.require(Role::Editor)?;
    let id = external_id(&raw_id)?;
    // The stored article matters only for a PUT without a time (which keeps the stored
    // one); a CMS that sends the time, the usual case, is answered from one transaction.
    let keeps_time = body
        .published_at
        .as_deref()
        .is_none_or(|t| t.trim().is_empty());
    let stored = if keeps_time {
        st.store
            .article_by_external_id(&id)
            .await
            .map_err(|e| Problem::internal("reading an article failed", e))?
    } else {
        None
    };
    let article = validate(id, body, stored.as_ref())?;
    let (done, row) = match st.store.upsert_article_row(&article, Revision::Cms).await {
        Ok(done) => done,
        Err(StoreError::Conflict(why)) => return Err(Problem::field("published_at", why)),
        Err(e) => return Err(Problem::internal("storing an article failed", e)),
    };
    tracing::info!(key = %caller.name, article = row.id, outcome = ?done, "API article");
    let body = Json(ArticleOut::from(row));
    Ok(match done {
        Upserted::Created(_) => (
            StatusCode::CREATED,
            [(
                LOCATION,
                format!("/api/v1/articles/{}", urlencode(&article.external_id)),
            )],
            body,
        )
            .into_response(),
        // `KeptAsSent` is for polls only; the CMS's word is applied.
        Upserted::Updated(_) | Upserted::Unchanged(_) | Upserted::KeptAsSent(_) => {
            (StatusCode::OK, body).into_response()
        }
    })
}

/// Percent-encodes a path segment (RFC 3986 §3.3: unreserved characters stay).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{"lists": ["daily"]}`, all optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakingIn {
    /// The lists to send to; absent: every list that carries breaking news.
    lists: Option<Vec<String>>,
}

/// One edition a breaking send made or found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BreakingEdition {
    id: i64,
    list: String,
    /// False when the article already had an edition on this list: nothing more is sent.
    created: bool,
}

/// What a breaking send answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BreakingOut {
    /// The article's id.
    article: i64,
    editions: Vec<BreakingEdition>,
}

/// Sends the article as breaking news: once per article per list (202 with the editions).
#[utoipa::path(
    post,
    path = "/api/v1/articles/{external_id}/breaking",
    tag = "articles",
    summary = "Send an article as breaking news, once per list",
    params(("external_id" = String, Path, description = "The CMS's id for the article")),
    request_body(content = Option<BreakingIn>, description = "Optional; absent: every list that carries breaking news"),
    responses(
        (status = 202, description = "the editions made or found; a repeat makes none", body = BreakingOut),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"), (status = 401, description = "missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"), (status = 403, description = "the key's role may not", body = Problem, content_type = "application/problem+json"), (status = 404, description = "no such thing", body = Problem, content_type = "application/problem+json"), (status = 413, description = "body over 1 MB", body = Problem, content_type = "application/problem+json"), (status = 415, description = "not application/json", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn send_breaking(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(body): ApiJson<BreakingIn>,
) -> Result<Response, Problem> {
    caller.require(Role::Editor)?;
    let id = external_id(&raw_id)?;
    let article = st
        .store
        .article_by_external_id(&id)
        .await
        .map_err(|e| Problem::internal("reading an article failed", e))?
        .ok_or_else(|| Problem::not_found(format!("article {id:?}")))?;
    let mut lists = Vec::new();
    for (i, slug) in body.lists.iter().flatten().enumerate() {
        match st.store.list_by_slug(slug.trim()).await {
            Ok(l) => lists.push(l),
            Err(StoreError::NotFound(_)) => {
                return Err(Problem::field(
                    format!("lists[{i}]"),
                    format!("there is no list {slug:?}"),
                ));
            }
            Err(e) => return Err(Problem::internal("reading a list failed", e)),
        }
    }
    let mut made = Vec::new();
    let targets: Vec<Option<&crate::store::ListRow>> = if body.lists.is_some() {
        lists.iter().map(Some).collect()
    } else {
        vec![None]
    };
    for only in targets {
        let editions = crate::edition::create_breaking(&st.store, &st.config, article.id, only)
            .await
            .map_err(|e| {
                Problem::internal("recording a breaking edition failed", format!("{e:#}"))
            })?;
        for (list, c) in editions {
            let (id, created) = match c {
                Created::New { id, .. } => (id, true),
                Created::Existing { id } => (id, false),
            };
            made.push(BreakingEdition {
                id,
                list: list.slug,
                created,
            });
        }
    }
    tracing::info!(key = %caller.name, article = article.id, editions = made.len(), new = made.iter().filter(|e| e.created).count(), "API breaking news");
    Ok((
        StatusCode::ACCEPTED,
        Json(BreakingOut {
            article: article.id,
            editions: made,
        }),
    )
        .into_response())
}
