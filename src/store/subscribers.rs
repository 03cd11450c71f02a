//! Subscribers and their subscriptions.
//!
//! An address is unique case-insensitively through `email_key`, the lower-cased address. When a
//! subscriber is erased, the address and name are deleted and `email_key` becomes a SHA-256 of
//! the address: enough to recognise the address on a later import and keep an unsubscribe in
//! force, and nothing more.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteArguments;
use sqlx::{
    Arguments as _, AssertSqlSafe, FromRow, PgConnection, Postgres, QueryBuilder, Sqlite,
    SqliteConnection,
};

use super::backend::On;
use super::{Lock, Result, Store, StoreError, Tx, db, now_text};
use crate::domain::{CategorySet, EmailAddress};

/// A subscriber as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SubscriberRow {
    pub id: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: String,
    pub hard_bounces: i64,
    pub consent_source: Option<String>,
    pub consent_at: Option<String>,
    pub created_at: String,
}

/// One of a subscriber's subscriptions, with its list.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SubscriptionInfo {
    pub list: String,
    pub status: String,
    pub categories: Option<String>,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub unsubscribed_at: Option<String>,
    /// Why it ended when not by the reader's own click (a complaint, a `mailto:`).
    pub unsubscribe_reason: Option<String>,
}

/// A row of `subscribers list`.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SubscriberListing {
    pub email: String,
    pub name: Option<String>,
    pub subscriber_status: String,
    pub list: String,
    pub status: String,
    pub categories: Option<String>,
}

/// One subscriber to add to a list (from the CLI or one CSV row).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub email: EmailAddress,
    pub name: Option<String>,
    /// `None`: leave an existing choice alone (a new subscription gets every category).
    pub categories: Option<CategorySet>,
}

/// What happened to one [`NewSubscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new subscription (and perhaps a new subscriber) was created.
    Added,
    /// An existing subscription's name or categories changed.
    Updated,
    /// Already subscribed with the same details.
    Unchanged,
    /// Not applied, with the reason (e.g. the address had unsubscribed from this list).
    Skipped(String),
}

/// Counts for an import run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

impl ImportSummary {
    /// Counts one outcome.
    pub fn count(&mut self, o: &ImportOutcome) {
        match o {
            ImportOutcome::Added => self.added += 1,
            ImportOutcome::Updated => self.updated += 1,
            ImportOutcome::Unchanged => self.unchanged += 1,
            ImportOutcome::Skipped(_) => self.skipped += 1,
        }
    }
}

/// Subscriptions of live subscribers with their list, filtered by an optional list (`$1`).
const LISTING: &str = "SELECT p.email AS email, p.name, p.status AS subscriber_status, l.slug AS list, s.status, s.categories
     FROM subscriptions s
     JOIN subscribers p ON p.id = s.subscriber_id
     JOIN lists l ON l.id = s.list_id
     WHERE p.email IS NOT NULL AND ($1 IS NULL OR s.list_id = $1)";

/// The erasure record's key for an address.
pub(super) fn erased_key(canonical: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(canonical.as_bytes());
    let mut s = String::with_capacity(7 + 64);
    s.push_str("erased:");
    // Computed per imported row when erasure records exist: no `format!` per byte.
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Every erasure record's key starts with this (see [`erased_key`]). `;` is the byte after
/// `:`, so `ERASED_FIRST <= key < ERASED_AFTER` is the range of the `email_key` index that
/// holds them all (PostgreSQL's `email_key` is `COLLATE "C"`, so both compare bytes).
const ERASED_FIRST: &str = "erased:";
const ERASED_AFTER: &str = "erased;";

/// Keys per lookup and rows per `INSERT`: far under SQLite's 32,766 variables and
/// PostgreSQL's 65,535 binds, and large enough that a statement's fixed cost (parsing,
/// planning, a round trip to SQLite's worker thread) is spread over many rows.
const CHUNK: usize = 1000;

#[derive(FromRow)]
struct Existing {
    id: i64,
    email_key: String,
    name: Option<String>,
    sub_id: Option<i64>,
    sub_status: Option<String>,
    sub_categories: Option<String>,
}

/// The known addresses of a batch, by `email_key`, and the erasure key of each row that was
/// looked up by one (`None` where no erasure record could match, so none was computed).
struct Found {
    by_key: HashMap<String, Existing>,
    erased: Vec<Option<String>>,
}

impl Found {
    /// The subscriber row `i` names, live or erased, and whether it is live.
    fn get(&self, canonical: &str, i: usize) -> Option<(&Existing, bool)> {
        if let Some(live) = self.by_key.get(canonical) {
            return Some((live, true));
        }
        let key = self.erased.get(i)?.as_deref()?;
        self.by_key.get(key).map(|e| (e, false))
    }
}

/// What a batch does, decided from its lookups alone. The real import applies it; the dry
/// run stops before, so its report is the real import's by construction.
#[derive(Default)]
struct Plan {
    outcomes: Vec<ImportOutcome>,
    /// Rows (indexes into the batch) that become new subscribers of the list.
    new_subscribers: Vec<usize>,
    /// Known subscribers (id, row) who get a subscription to the list.
    new_subscriptions: Vec<(i64, usize)>,
    /// Erased subscribers (id, row) coming back to a list they never left: the address is
    /// restored so they can be mailed.
    restores: Vec<(i64, usize)>,
    /// Subscribers (id, row) whose name changes.
    names: Vec<(i64, usize)>,
    /// Subscriptions (id, stored categories) whose categories change.
    categories: Vec<(i64, Option<String>)>,
}

/// [`EmailAddress::canonical`] as one shared text: an ASCII address (nearly all of them) is
/// lower-cased on the stack and copied once.
fn canonical(email: &EmailAddress) -> Arc<str> {
    let s = email.as_str();
    if !s.is_ascii() || s.len() > 254 {
        return Arc::from(email.canonical());
    }
    let mut buf = [0u8; 254];
    let lower = &mut buf[..s.len()];
    lower.copy_from_slice(s.as_bytes());
    lower.make_ascii_lowercase();
    // ASCII stays ASCII, so this is UTF-8 (from_utf8 cannot fail, and checks it cheaply).
    match std::str::from_utf8(lower) {
        Ok(l) => Arc::from(l),
        Err(_) => Arc::from(email.canonical()),
    }
}

/// How a subscription stores a row's categories: `None` for all the list carries.
fn stored_categories(row: &NewSubscription) -> Option<String> {
    row.categories
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(CategorySet::to_stored)
}

/// Applies `subscribe_batch`'s rules to each row against what the lookups found.
fn plan(rows: &[NewSubscription], canon: &[Arc<str>], found: &Found) -> Plan {
    let mut plan = Plan {
        outcomes: Vec::with_capacity(rows.len()),
        ..Plan::default()
    };
    for (i, row) in rows.iter().enumerate() {
        let Some((found, live)) = found.get(&canon[i], i) else {
            plan.new_subscribers.push(i);
            plan.outcomes.push(ImportOutcome::Added);
            continue;
        };
        let name_changes = row
            .name
            .as_ref()
            .is_some_and(|n| Some(n) != found.name.as_ref());
        match found.sub_status.as_deref() {
            Some("unsubscribed") => {
                plan.outcomes.push(ImportOutcome::Skipped(
                    "the address unsubscribed from this list; it is not re-subscribed by an admin or an import".into(),
                ));
            }
            Some(_) => {
                let new_cats = row
                    .categories
                    .as_ref()
                    .map(|c| (!c.is_empty()).then(|| c.to_stored()))
                    .filter(|c| *c != found.sub_categories);
                if !name_changes && new_cats.is_none() {
                    plan.outcomes.push(ImportOutcome::Unchanged);
                    continue;
                }
                if name_changes {
                    plan.names.push((found.id, i));
                }
                if let (Some(c), Some(sub_id)) = (new_cats, found.sub_id) {
                    plan.categories.push((sub_id, c));
                }
                plan.outcomes.push(ImportOutcome::Updated);
            }
            None => {
                if !live {
                    plan.restores.push((found.id, i));
                } else if name_changes {
                    plan.names.push((found.id, i));
                }
                plan.new_subscriptions.push((found.id, i));
                plan.outcomes.push(ImportOutcome::Added);
            }
        }
    }
    plan
}

/// `head`, then `rows` tuples of `width` anonymous placeholders (`(?, ?), (?, ?)`), then
/// `tail`: a multi-row statement's text for SQLite, built without `QueryBuilder`'s
/// formatting per placeholder. The same sizes give the same text, which sqlx's statement
/// cache then prepares once.
fn sqlite_rows_sql(head: &str, rows: usize, width: usize, tail: &str) -> String {
    let tuple_len = 2 + 3 * width;
    let mut sql = String::with_capacity(head.len() + rows * tuple_len + tail.len());
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for w in 0..width {
            sql.push_str(if w == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Adds one value to a statement's arguments.
fn add<'a, T>(args: &mut SqliteArguments, value: T) -> Result<()>
where
    T: sqlx::Encode<'a, Sqlite> + sqlx::Type<Sqlite>,
{
    args.add(value).map_err(sqlx::Error::Encode)?;
    Ok(())
}

/// Finds the subscribers with these `email_key`s and their subscription to `list_id`.
async fn find_keys(
    tx: &mut Tx,
    list_id: i64,
    keys: &[Arc<str>],
    into: &mut HashMap<String, Existing>,
) -> Result<()> {
    const COLUMNS: &str = "SELECT s.id, s.email_key, s.name, sub.id AS sub_id, sub.status AS sub_status, sub.categories AS sub_categories";
    const JOIN: &str =
        " LEFT JOIN subscriptions sub ON sub.subscriber_id = s.id AND sub.list_id = ";
    for chunk in keys.chunks(CHUNK) {
        let found: Vec<Existing> = match tx.on() {
            On::Sqlite(c) => {
                // The keys as a table of rows, each looked up in the `email_key` index
                // (`CROSS JOIN` keeps them the outer loop). `IN (?, …)` would first sort them
                // into a temporary index: 1,400 instructions more per key, measured.
                let sql = sqlite_rows_sql(
                    &format!("{COLUMNS} FROM (VALUES "),
                    chunk.len(),
                    1,
                    &format!(") AS k CROSS JOIN subscribers s ON s.email_key = k.column1{JOIN}?"),
                );
                let mut args = SqliteArguments::default();
                for k in chunk {
                    // An `Arc<str>` is bound as it is, without a copy.
                    add(&mut args, Arc::clone(k))?;
                }
                add(&mut args, list_id)?;
                sqlx::query_as_with(AssertSqlSafe(sql), args)
                    .fetch_all(c)
                    .await?
            }
            On::Postgres(c) => {
                let mut qb = QueryBuilder::<Postgres>::new(COLUMNS);
                qb.push(" FROM subscribers s");
                qb.push(JOIN);
                qb.push_bind(list_id);
                qb.push(" WHERE s.email_key IN (");
                let mut sep = qb.separated(", ");
                for k in chunk {
                    sep.push_bind(&**k);
                }
                qb.push(")");
                qb.build_query_as().fetch_all(c).await?
            }
        };
        into.extend(found.into_iter().map(|e| (e.email_key.clone(), e)));
    }
    Ok(())
}

/// Looks a batch's addresses up: live keys first, then the erasure keys (a SHA-256 each) of
/// the rows not found live, and those only when the database holds any erasure record at
/// all: erasures are rare, so an import usually hashes nothing.
async fn lookup(tx: &mut Tx, list_id: i64, canon: &[Arc<str>]) -> Result<Found> {
    let mut by_key = HashMap::new();
    find_keys(tx, list_id, canon, &mut by_key).await?;
    let mut erased = Vec::new();
    if by_key.len() < canon.len() {
        let any: i64 = db!(tx, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM subscribers WHERE email_key >= $1 AND email_key < $2 LIMIT 1) AS e",
            )
            .bind(ERASED_FIRST)
            .bind(ERASED_AFTER)
            .fetch_one(c)
            .await
        })?;
        if any > 0 {
            erased = canon
                .iter()
                .map(|c| (!by_key.contains_key(&**c)).then(|| erased_key(c)))
                .collect();
            let keys: Vec<Arc<str>> = erased
                .iter()
                .flatten()
                .map(|k| Arc::from(k.as_str()))
                .collect();
            find_keys(tx, list_id, &keys, &mut by_key).await?;
        }
    }
    Ok(Found { by_key, erased })
}

/// Writes a batch's [`Plan`]: the rare updates one statement each, then the new subscribers
/// and subscriptions in multi-row `INSERT`s, one text per backend. SQLite's placeholders are
/// anonymous `?`: with numbered `$n` SQLite finds each parameter's name by a linear search,
/// which made binding a 3,000-parameter statement quadratic (a third of the import's
/// instructions in callgrind).
async fn apply(
    tx: &mut Tx,
    list_id: i64,
    rows: &[NewSubscription],
    canon: &[Arc<str>],
    source: &str,
    now: &str,
    plan: &Plan,
) -> Result<()> {
    for &(id, i) in &plan.restores {
        let row = &rows[i];
        db!(tx, |c| {
            sqlx::query(
                "UPDATE subscribers SET email = $1, email_key = $2, name = $3, status = 'active',
                     consent_source = $4, consent_at = $5, updated_at = $5 WHERE id = $6",
            )
            .bind(row.email.as_str())
            .bind(&*canon[i])
            .bind(&row.name)
            .bind(source)
            .bind(now)
            .bind(id)
            .execute(c)
            .await
            .affected()
        })?;
    }
    for &(id, i) in &plan.names {
        db!(tx, |c| {
            sqlx::query("UPDATE subscribers SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(&rows[i].name)
                .bind(now)
                .bind(id)
                .execute(c)
                .await
                .affected()
        })?;
    }
    for (sub_id, cats) in &plan.categories {
        db!(tx, |c| {
            sqlx::query("UPDATE subscriptions SET categories = $1 WHERE id = $2")
                .bind(cats)
                .bind(*sub_id)
                .execute(c)
                .await
                .affected()
        })?;
    }

    let mut subscriptions = plan.new_subscriptions.clone();
    subscriptions.reserve(plan.new_subscribers.len());
    let new = New {
        list_id,
        rows,
        canon,
        source,
        now,
    };
    match tx.on() {
        On::Sqlite(c) => {
            sqlite_insert_subscribers(c, &new, &plan.new_subscribers, &mut subscriptions).await?;
            sqlite_insert_subscriptions(c, &new, &subscriptions).await?;
            sqlite_count_subscriptions(c, list_id, subscriptions.len()).await?;
        }
        On::Postgres(c) => {
            pg_insert_subscribers(c, &new, &plan.new_subscribers, &mut subscriptions).await?;
            pg_insert_subscriptions(c, &new, &subscriptions).await?;
        }
    }
    Ok(())
}

/// What every new row of a batch shares, and the rows.
struct New<'a> {
    list_id: i64,
    rows: &'a [NewSubscription],
    canon: &'a [Arc<str>],
    source: &'a str,
    now: &'a str,
}

/// One bound text for SQLite: sqlx copies a `&str` into a `String` and then into an `Arc`;
/// an `Arc<str>` it takes as it is, so the text is copied once (and once more by SQLite).
fn text(s: &str) -> Arc<str> {
    Arc::from(s)
}

/// SQLite: inserts the rows `which` as new subscribers and adds (id, row) to `out` for each.
///
/// Written for SQLite's cost per row: the values that are the same for the whole batch
/// (status, consent source, times) are bound once per statement, in the `SELECT` over the
/// rows' `VALUES`; `email_key` is the [`EmailAddress::canonical`] text already made for the
/// lookup, bound as it is (700 instructions a row cheaper than SQLite's `lower()` making it
/// again); and the ids are counted on from the largest instead of read back with `RETURNING`
/// (decoding a returned row costs more than inserting it). The ids are free: the write transaction is SQLite's one writer, so nothing
/// else inserts between the `MAX(id)` and the `INSERT`.
async fn sqlite_insert_subscribers(
    c: &mut SqliteConnection,
    new: &New<'_>,
    which: &[usize],
    out: &mut Vec<(i64, usize)>,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let mut next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM subscribers")
        .fetch_one(&mut *c)
        .await?;
    for chunk in which.chunks(CHUNK) {
        let sql = sqlite_rows_sql(
            "INSERT INTO subscribers (id, email, email_key, name, status, consent_source, consent_at, created_at, updated_at)
             SELECT column1, column2, column3, column4, 'active', ?, ?, ?, ?
             FROM (VALUES ",
            chunk.len(),
            4,
            ")",
        );
        let mut args = SqliteArguments::default();
        add(&mut args, new.source)?;
        for _ in 0..3 {
            add(&mut args, new.now)?;
        }
        let first = next;
        for &i in chunk {
            let row = &new.rows[i];
            add(&mut args, next)?;
            add(&mut args, text(row.email.as_str()))?;
            add(&mut args, Arc::clone(&new.canon[i]))?;
            add(&mut args, row.name.as_deref().map(text))?;
            next += 1;
        }
        sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(&mut *c)
            .await?;
        out.extend((first..).zip(chunk.iter().copied()));
    }
    Ok(())
}

/// The trigger that counts each new subscription in `list_counts` (SQLite), which a batch's
/// insert goes without: see [`sqlite_insert_subscriptions`].
const COUNT_TRIGGER: &str = "subscriptions_count_insert";

/// SQLite: inserts the active subscriptions (subscriber id, row) to the batch's list, with the
/// shared values bound once per statement (see [`sqlite_insert_subscribers`]), without the
/// per-row count trigger: [`sqlite_count_subscriptions`] counts them after.
///
/// SQLite has no statement triggers, and any insert trigger on the table costs every inserted
/// row a trip through the trigger program and a copy of the row into a temporary table first
/// (~3,900 instructions a row in callgrind, even when the trigger's `WHEN` declined, as the
/// `list_counts_paused` switch of migration 20261218000000 had it do). So the trigger is
/// dropped for the batch's insert and created again from its own stored text before the batch
/// counts and commits, all in this one write transaction: SQLite's DDL is transactional and
/// this transaction is the database's only writer, so no other transaction ever sees the
/// table without its trigger, and a batch that fails rolls the drop back with the rest. The
/// price is a schema change per batch (statements re-prepared once per batch, on every
/// connection that uses them).
async fn sqlite_insert_subscriptions(
    c: &mut SqliteConnection,
    new: &New<'_>,
    subscriptions: &[(i64, usize)],
) -> Result<()> {
    if subscriptions.is_empty() {
        return Ok(());
    }
    let trigger: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = $1")
            .bind(COUNT_TRIGGER)
            .fetch_one(&mut *c)
            .await?;
    sqlx::query(AssertSqlSafe(format!("DROP TRIGGER {COUNT_TRIGGER}")))
        .execute(&mut *c)
        .await?;
    for chunk in subscriptions.chunks(CHUNK) {
        let sql = sqlite_rows_sql(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, categories, created_at, confirmed_at)
             SELECT column1, ?, 'active', column2, ?, ?
             FROM (VALUES ",
            chunk.len(),
            2,
            ")",
        );
        let mut args = SqliteArguments::default();
        add(&mut args, new.list_id)?;
        add(&mut args, new.now)?;
        add(&mut args, new.now)?;
        for &(id, i) in chunk {
            add(&mut args, id)?;
            add(&mut args, stored_categories(&new.rows[i]))?;
        }
        sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(&mut *c)
            .await?;
    }
    // The text SQLite stored for the trigger is the statement that created it.
    sqlx::query(AssertSqlSafe(trigger)).execute(&mut *c).await?;
    Ok(())
}

/// SQLite: counts `n` new active subscriptions to `list_id` in `list_counts` with one
/// upsert, as the insert trigger would have counted them one by one.
async fn sqlite_count_subscriptions(
    c: &mut SqliteConnection,
    list_id: i64,
    n: usize,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO list_counts (list_id, status, n) VALUES ($1, 'active', $2)
         ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + excluded.n",
    )
    .bind(list_id)
    .bind(i64::try_from(n).map_err(|_| {
        StoreError::Conflict(format!("a batch of {n} subscriptions cannot be counted"))
    })?)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// PostgreSQL: inserts the rows `which` as new subscribers and adds (id, row) to `out` for
/// each. The ids come back with `RETURNING`: other nodes' sign-ups may take ids from the same
/// sequence meanwhile.
async fn pg_insert_subscribers(
    c: &mut PgConnection,
    new: &New<'_>,
    which: &[usize],
    out: &mut Vec<(i64, usize)>,
) -> Result<()> {
    for chunk in which.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO subscribers (email, email_key, name, status, consent_source, consent_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, &i| {
            b.push_bind(new.rows[i].email.as_str())
                .push_bind(&*new.canon[i])
                .push_bind(new.rows[i].name.as_deref())
                .push_bind("active")
                .push_bind(new.source)
                .push_bind(new.now)
                .push_bind(new.now)
                .push_bind(new.now);
        });
        qb.push(" RETURNING id, email_key");
        let ids: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *c).await?;
        let by_key: HashMap<String, i64> = ids.into_iter().map(|(id, k)| (k, id)).collect();
        for &i in chunk {
            // Invariant: every inserted key came back from RETURNING.
            out.push((by_key[&*new.canon[i]], i));
        }
    }
    Ok(())
}

/// PostgreSQL: inserts the active subscriptions (subscriber id, row) to the batch's list.
async fn pg_insert_subscriptions(
    c: &mut PgConnection,
    new: &New<'_>,
    subscriptions: &[(i64, usize)],
) -> Result<()> {
    for chunk in subscriptions.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, categories, created_at, confirmed_at) ",
        );
        qb.push_values(chunk, |mut b, &(id, i)| {
            b.push_bind(id)
                .push_bind(new.list_id)
                .push_bind("active")
                .push_bind(stored_categories(&new.rows[i]))
                .push_bind(new.now)
                .push_bind(new.now);
        });
        qb.build().execute(&mut *c).await?;
    }
    Ok(())
}

impl Store {
    /// Subscribes a batch of addresses to list `list_id` in one transaction. Used by the CLI
    /// (a batch of one) and by the CSV import (batches of thousands of rows, which is what
    /// makes a million-row import fast).
    ///
    /// With `dry_run` nothing is written: the addresses are looked up in a read-only
    /// transaction and the same rules decide each outcome, so the report is the one the real
    /// import would give (on the database as it is now).
    ///
    /// Rules: an address that unsubscribed from the list stays unsubscribed (even after it was
    /// erased); a new subscription by an admin is active at once, with `source` recorded as
    /// the consent source.
    pub async fn subscribe_batch(
        &self,
        list_id: i64,
        rows: &[NewSubscription],
        source: &str,
        dry_run: bool,
    ) -> Result<Vec<ImportOutcome>> {
        let canon: Vec<Arc<str>> = rows.iter().map(|r| canonical(&r.email)).collect();
        if dry_run {
            let mut tx = self.pool().begin_snapshot().await?;
            let found = lookup(&mut tx, list_id, &canon).await?;
            tx.rollback().await?;
            return Ok(plan(rows, &canon, &found).outcomes);
        }
        let now = now_text();
        let mut tx = self.write_tx().await?;
        // Addresses are looked up, then inserted: another node's import or sign-up must not
        // insert the same address in between.
        tx.lock(Lock::Subscribers).await?;
        let found = lookup(&mut tx, list_id, &canon).await?;
        let plan = plan(rows, &canon, &found);
        apply(&mut tx, list_id, rows, &canon, source, &now, &plan).await?;
        tx.commit().await?;
        Ok(plan.outcomes)
    }

    /// Unsubscribes an address from one list, or from every list when `list_id` is `None`.
    /// Returns how many subscriptions changed.
    pub async fn unsubscribe_email(
        &self,
        email: &EmailAddress,
        list_id: Option<i64>,
    ) -> Result<u64> {
        let sub = self.subscriber_by_email(email).await?;
        let res = db!(self.writer(), |conn| {
            sqlx::query(
            "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = $1
             WHERE subscriber_id = $2 AND status <> 'unsubscribed' AND ($3 IS NULL OR list_id = $3)",
        )
        .bind(now_text())
        .bind(sub.id)
        .bind(list_id)
        .execute(conn).await.affected()
        })?;
        Ok(res)
    }

    /// Erases a subscriber's personal data. If they had unsubscribed from any list, a hashed
    /// record and those unsubscriptions stay, so an import cannot mail them again; otherwise
    /// nothing of them is kept.
    pub async fn erase_subscriber(&self, email: &EmailAddress) -> Result<bool> {
        let sub = self.subscriber_by_email(email).await?;
        let mut tx = self.write_tx().await?;
        tx.lock(Lock::Subscribers).await?;
        let unsubscribed: i64 = db!(&mut tx, |conn| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM subscriptions WHERE subscriber_id = $1 AND status = 'unsubscribed'",
        )
        .bind(sub.id)
        .fetch_one(conn).await
        })?;
        let kept = unsubscribed > 0;
        // Bounce events stay counted, but without the reader or the diagnostic (which quotes
        // the address).
        db!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE bounce_events SET subscriber_id = NULL, diagnostic = NULL, note = 'the reader was erased'
                 WHERE subscriber_id = $1",
            )
            .bind(sub.id)
            .execute(conn)
            .await
            .affected()
        })?;
        if kept {
            db!(&mut tx, |conn| {
                sqlx::query(
                "DELETE FROM subscriptions WHERE subscriber_id = $1 AND status <> 'unsubscribed'",
            )
            .bind(sub.id)
            .execute(conn)
            .await
            .affected()
            })?;
            // As the trigger does when a subscriber row is deleted: wait for snapshots being
            // written, whose statements may have read the subscriptions deleted above, so that
            // this DELETE (a new statement) sees and removes the rows they wrote for the reader.
            tx.lock(Lock::SnapshotAudience).await?;
            db!(&mut tx, |conn| {
                sqlx::query("DELETE FROM deliveries WHERE subscriber_id = $1")
                    .bind(sub.id)
                    .execute(conn)
                    .await
                    .affected()
            })?;
            db!(&mut tx, |conn| {
                sqlx::query(
                "UPDATE subscribers SET email = NULL, name = NULL, email_key = $1, status = 'erased',
                     consent_ip = NULL, updated_at = $2 WHERE id = $3",
            )
            .bind(erased_key(&email.canonical()))
            .bind(now_text())
            .bind(sub.id)
            .execute(conn).await.affected()
            })?;
            db!(&mut tx, |conn| {
                sqlx::query("UPDATE subscriptions SET confirm_ip = NULL WHERE subscriber_id = $1")
                    .bind(sub.id)
                    .execute(conn)
                    .await
                    .affected()
            })?;
        } else {
            db!(&mut tx, |conn| {
                sqlx::query("DELETE FROM subscribers WHERE id = $1")
                    .bind(sub.id)
                    .execute(conn)
                    .await
                    .affected()
            })?;
        }
        tx.commit().await?;
        Ok(kept)
    }

    /// The live (not erased) subscriber with this address.
    pub async fn subscriber_by_email(&self, email: &EmailAddress) -> Result<SubscriberRow> {
        db!(self.pool(), |conn| {
            sqlx::query_as::<_, SubscriberRow>(
            "SELECT id, email, name, status, hard_bounces, consent_source, consent_at, created_at
             FROM subscribers WHERE email_key = $1",
        )
        .bind(email.canonical())
        .fetch_optional(conn)
        .await
        })?
        .ok_or_else(|| StoreError::NotFound(format!("subscriber with domain @{}", email.domain())))
    }

    /// A subscriber's subscriptions, by list slug.
    pub async fn subscriptions_of(&self, subscriber_id: i64) -> Result<Vec<SubscriptionInfo>> {
        Ok(db!(self.pool(), |conn| {
            sqlx::query_as::<_, SubscriptionInfo>(
            "SELECT l.slug AS list, s.status, s.categories, s.created_at, s.confirmed_at, s.unsubscribed_at,
                    s.unsubscribe_reason
             FROM subscriptions s JOIN lists l ON l.id = s.list_id
             WHERE s.subscriber_id = $1 ORDER BY l.slug",
        )
        .bind(subscriber_id)
        .fetch_all(conn).await
        })?)
    }

    /// Subscriptions, optionally of one list and with one status. `status` may be a
    /// subscription status (pending, active, unsubscribed) or `bounced` (the subscriber's).
    pub async fn list_subscribers(
        &self,
        list_id: Option<i64>,
        status: Option<&str>,
    ) -> Result<Vec<SubscriberListing>> {
        Ok(db!(self.pool(), |conn| {
            sqlx::query_as::<_, SubscriberListing>(AssertSqlSafe(format!(
            "{LISTING} AND ($2 IS NULL OR (CASE WHEN $2 = 'bounced' THEN p.status ELSE s.status END) = $2)
             ORDER BY p.email_key, l.slug"
        )))
        .bind(list_id)
        .bind(status)
        .fetch_all(conn).await
        })?)
    }

    /// Streams subscriptions for export (live subscribers only), calling `f` for each.
    pub async fn for_each_export_row(
        &self,
        list_id: Option<i64>,
        mut f: impl FnMut(SubscriberListing) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let sql = format!("{LISTING} ORDER BY s.id");
        db!(self.pool(), |conn| {
            let mut rows = sqlx::query_as::<_, SubscriberListing>(AssertSqlSafe(sql))
                .bind(list_id)
                .fetch(conn);
            let mut n = 0;
            while let Some(row) = rows.try_next().await? {
                f(row)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Subscription counts by status for one list: (pending, active, unsubscribed). Read from
    /// `list_counts`, which triggers on `subscriptions` keep exact: three rows, not a count
    /// of the list's subscriptions (linear in them, 190 ms p99 at 100,000 in a debug build).
    pub async fn subscription_counts(&self, list_id: i64) -> Result<(i64, i64, i64)> {
        // SUM of integers is NUMERIC on PostgreSQL: cast back to a 64-bit count.
        Ok(db!(self.pool(), |conn| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(n) FILTER (WHERE status = 'pending'), 0) AS BIGINT),
                    CAST(COALESCE(SUM(n) FILTER (WHERE status = 'active'), 0) AS BIGINT),
                    CAST(COALESCE(SUM(n) FILTER (WHERE status = 'unsubscribed'), 0) AS BIGINT)
             FROM list_counts WHERE list_id = $1",
            )
            .bind(list_id)
            .fetch_one(conn)
            .await
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ListSlug;
    use crate::store::testutil::{store_test, temp_store_on};
    use crate::store::{Backend, ListSpec};

    fn ns(email: &str, name: Option<&str>, cats: Option<&str>) -> NewSubscription {
        NewSubscription {
            email: EmailAddress::parse(email).unwrap(),
            name: name.map(str::to_owned),
            categories: cats.map(|c| CategorySet::parse_list(c).unwrap()),
        }
    }

    /// A subscriber as (id, email, email_key, name, status).
    type Stored = (i64, Option<String>, String, Option<String>, String);

    /// Every subscriber and subscription, as text, to compare the database before and after.
    async fn everything(store: &Store) -> Vec<String> {
        let subscribers: Vec<Stored> = db!(store.pool(), |conn| {
            sqlx::query_as("SELECT id, email, email_key, name, status FROM subscribers ORDER BY id")
                .fetch_all(conn)
                .await
        })
        .unwrap();
        let subscriptions: Vec<(i64, i64, i64, String, Option<String>)> =
            db!(store.pool(), |conn| {
                sqlx::query_as(
                    "SELECT id, subscriber_id, list_id, status, categories FROM subscriptions ORDER BY id",
                )
                .fetch_all(conn)
                .await
            })
            .unwrap();
        subscribers
            .iter()
            .map(|r| format!("{r:?}"))
            .chain(subscriptions.iter().map(|r| format!("{r:?}")))
            .collect()
    }

    store_test!(a_dry_run_decides_every_row_as_the_import_does_and_writes_nothing);
    async fn a_dry_run_decides_every_row_as_the_import_does_and_writes_nothing(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let daily = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        let weekly = store
            .create_list(&ListSlug::parse("weekly").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        let setup = [
            ns("kept@example.com", Some("Kept"), None),
            ns("renamed@example.com", Some("Old"), None),
            ns("recat@example.com", None, None),
            ns("left@example.com", None, None),
            ns("gone@example.com", None, None),
        ];
        store
            .subscribe_batch(daily.id, &setup, "cli", false)
            .await
            .unwrap();
        store
            .subscribe_batch(
                weekly.id,
                &[
                    ns("back@example.com", None, None),
                    ns("other@example.com", None, None),
                ],
                "cli",
                false,
            )
            .await
            .unwrap();
        for (email, list) in [
            ("left@example.com", daily.id),
            ("gone@example.com", daily.id),
            ("back@example.com", weekly.id),
        ] {
            let email = EmailAddress::parse(email).unwrap();
            store.unsubscribe_email(&email, Some(list)).await.unwrap();
        }
        for email in ["gone@example.com", "back@example.com"] {
            let email = EmailAddress::parse(email).unwrap();
            assert!(store.erase_subscriber(&email).await.unwrap());
        }

        let batch = [
            ns("new@example.com", Some("New"), Some("Sport")),
            ns("KEPT@example.com", None, None),
            ns("renamed@example.com", Some("New Name"), None),
            ns("recat@example.com", None, Some("Sport")),
            ns("left@example.com", None, None),
            ns("Gone@Example.com", None, None),
            ns("back@example.com", Some("Back"), None),
            ns("other@example.com", None, None),
        ];
        let before = everything(&store).await;
        let dry = store
            .subscribe_batch(daily.id, &batch, "import", true)
            .await
            .unwrap();
        assert_eq!(
            everything(&store).await,
            before,
            "the dry run wrote nothing"
        );
        let real = store
            .subscribe_batch(daily.id, &batch, "import", false)
            .await
            .unwrap();
        assert_eq!(dry, real);
        assert!(
            matches!(
                real.as_slice(),
                [
                    ImportOutcome::Added,
                    ImportOutcome::Unchanged,
                    ImportOutcome::Updated,
                    ImportOutcome::Updated,
                    ImportOutcome::Skipped(_),
                    ImportOutcome::Skipped(_),
                    ImportOutcome::Added,
                    ImportOutcome::Added,
                ]
            ),
            "{real:?}"
        );
        // The erased reader who never left daily is back; the one who left stays erased.
        let back = store
            .subscriber_by_email(&EmailAddress::parse("back@example.com").unwrap())
            .await
            .unwrap();
        assert_eq!(back.name.as_deref(), Some("Back"));
        let gone = EmailAddress::parse("gone@example.com").unwrap();
        assert!(store.subscriber_by_email(&gone).await.is_err());
        assert_eq!(
            store.subscription_counts(daily.id).await.unwrap(),
            (0, 6, 2)
        );

        // A batch larger than one lookup statement, half known: the same outcomes again.
        let many: Vec<NewSubscription> = (0..2500)
            .map(|i| ns(&format!("reader{i}@example.org"), None, None))
            .collect();
        store
            .subscribe_batch(daily.id, &many[..1200], "import", false)
            .await
            .unwrap();
        let before = everything(&store).await;
        let dry = store
            .subscribe_batch(daily.id, &many, "import", true)
            .await
            .unwrap();
        assert_eq!(everything(&store).await, before);
        let real = store
            .subscribe_batch(daily.id, &many, "import", false)
            .await
            .unwrap();
        assert_eq!(dry, real);
        assert!(real[..1200].iter().all(|o| *o == ImportOutcome::Unchanged));
        assert!(real[1200..].iter().all(|o| *o == ImportOutcome::Added));
        assert_eq!(
            store.subscription_counts(daily.id).await.unwrap(),
            (0, 2506, 2)
        );
    }

    store_test!(every_new_subscription_belongs_to_its_own_row_and_keys_are_canonical);
    async fn every_new_subscription_belongs_to_its_own_row_and_keys_are_canonical(
        backend: Backend,
    ) {
        let (store, _d) = temp_store_on(backend).await;
        let daily = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        // Someone already there, so the new ids do not start at 1; then a batch larger than
        // one statement, mixing ASCII addresses in any case with non-ASCII ones (whose key
        // SQLite's ASCII lower() could not make), names and categories.
        store
            .subscribe_batch(
                daily.id,
                &[ns("first@example.com", None, None)],
                "cli",
                false,
            )
            .await
            .unwrap();
        let cats = [None, Some("Sport"), Some("Politics;Sport")];
        let batch: Vec<NewSubscription> = (0..2100)
            .map(|i| {
                let email = if i % 5 == 0 {
                    format!("Ünïcode.{i}@Example.ORG")
                } else {
                    format!("Reader.{i}@Example.org")
                };
                let name = format!("Reader {i}");
                ns(&email, (i % 2 == 0).then_some(name.as_str()), cats[i % 3])
            })
            .collect();
        let out = store
            .subscribe_batch(daily.id, &batch, "import", false)
            .await
            .unwrap();
        assert!(out.iter().all(|o| *o == ImportOutcome::Added), "{out:?}");
        for (i, row) in batch.iter().enumerate().step_by(7) {
            let stored = store.subscriber_by_email(&row.email).await.unwrap();
            assert_eq!(stored.email.as_deref(), Some(row.email.as_str()));
            assert_eq!(stored.name, row.name, "row {i}");
            let key: String = db!(store.pool(), |c| {
                sqlx::query_scalar("SELECT email_key FROM subscribers WHERE id = $1")
                    .bind(stored.id)
                    .fetch_one(c)
                    .await
            })
            .unwrap();
            assert_eq!(key, row.email.canonical(), "row {i}");
            let subs = store.subscriptions_of(stored.id).await.unwrap();
            assert_eq!(subs.len(), 1, "row {i}");
            assert_eq!(subs[0].status, "active");
            assert_eq!(subs[0].categories, stored_categories(row), "row {i}");
        }
        // The same rows in other cases are the same people: nothing changes.
        let again: Vec<NewSubscription> = batch
            .iter()
            .map(|r| NewSubscription {
                email: EmailAddress::parse(&r.email.as_str().to_uppercase()).unwrap(),
                ..r.clone()
            })
            .collect();
        let out = store
            .subscribe_batch(daily.id, &again, "import", false)
            .await
            .unwrap();
        assert!(
            out.iter().all(|o| *o == ImportOutcome::Unchanged),
            "{out:?}"
        );
        assert_eq!(
            store.subscription_counts(daily.id).await.unwrap(),
            (0, 2101, 0)
        );
    }

    store_test!(subscribe_update_unsubscribe_erase);
    async fn subscribe_update_unsubscribe_erase(backend: Backend) {
        let (store, _d) = temp_store_on(backend).await;
        let list = store
            .create_list(&ListSlug::parse("daily").unwrap(), &ListSpec::default())
            .await
            .unwrap();
        let out = store
            .subscribe_batch(
                list.id,
                &[
                    ns("Ayesha@Example.pk", Some("Ayesha"), None),
                    ns("bilal@example.com", None, Some("Sport")),
                ],
                "cli",
                false,
            )
            .await
            .unwrap();
        assert_eq!(out, [ImportOutcome::Added, ImportOutcome::Added]);
        // Case-insensitive: the same person again is unchanged; a new name is an update.
        let out = store
            .subscribe_batch(
                list.id,
                &[ns("ayesha@example.PK", None, None)],
                "cli",
                false,
            )
            .await
            .unwrap();
        assert_eq!(out, [ImportOutcome::Unchanged]);
        let out = store
            .subscribe_batch(
                list.id,
                &[ns("ayesha@example.pk", Some("Ayesha Khan"), None)],
                "cli",
                false,
            )
            .await
            .unwrap();
        assert_eq!(out, [ImportOutcome::Updated]);
        // Dry run changes nothing.
        let out = store
            .subscribe_batch(list.id, &[ns("new@example.com", None, None)], "cli", true)
            .await
            .unwrap();
        assert_eq!(out, [ImportOutcome::Added]);
        assert_eq!(store.subscription_counts(list.id).await.unwrap(), (0, 2, 0));

        let ayesha = EmailAddress::parse("ayesha@example.pk").unwrap();
        assert_eq!(store.unsubscribe_email(&ayesha, None).await.unwrap(), 1);
        let out = store
            .subscribe_batch(
                list.id,
                &[ns("ayesha@example.pk", None, None)],
                "import",
                false,
            )
            .await
            .unwrap();
        assert!(matches!(out[0], ImportOutcome::Skipped(_)));

        // Erased after unsubscribing: the hashed record still blocks a re-import.
        assert!(store.erase_subscriber(&ayesha).await.unwrap());
        assert!(store.subscriber_by_email(&ayesha).await.is_err());
        let out = store
            .subscribe_batch(
                list.id,
                &[ns("AYESHA@example.pk", None, None)],
                "import",
                false,
            )
            .await
            .unwrap();
        assert!(matches!(out[0], ImportOutcome::Skipped(_)));
        let left: Option<String> = db!(store.pool(), |conn| {
            sqlx::query_scalar("SELECT email FROM subscribers WHERE status = 'erased'")
                .fetch_one(conn)
                .await
        })
        .unwrap();
        assert_eq!(left, None);

        // Erased without an unsubscribe: nothing is kept.
        let bilal = EmailAddress::parse("bilal@example.com").unwrap();
        assert!(!store.erase_subscriber(&bilal).await.unwrap());
        let n: i64 = db!(store.pool(), |conn| {
            sqlx::query_scalar("SELECT COUNT(*) FROM subscribers")
                .fetch_one(conn)
                .await
        })
        .unwrap();
        assert_eq!(n, 1);

        let listing = store
            .list_subscribers(Some(list.id), Some("active"))
            .await
            .unwrap();
        assert!(listing.is_empty());
        store
            .subscribe_batch(list.id, &[ns("c@example.com", None, None)], "cli", false)
            .await
            .unwrap();
        let c = store
            .subscriber_by_email(&EmailAddress::parse("c@example.com").unwrap())
            .await
            .unwrap();
        let infos = store.subscriptions_of(c.id).await.unwrap();
        assert_eq!(infos[0].list, "daily");
        let mut exported = Vec::new();
        store
            .for_each_export_row(None, |r| {
                exported.push(r.email);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(exported, ["c@example.com"]);
    }
}
