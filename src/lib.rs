//! dispatch: a self-hosted newsletter engine for news sites.
//!
//! Articles live in SQLite. On each list's schedule an *edition* is built from the articles
//! published since the list's previous edition, grouped by category, rendered once per
//! category variant into HTML and plain text, and delivered over SMTP to every active
//! subscriber, each message carrying the reader's own one-click unsubscribe link.
//!
//! # Layout
//!
//! The modules are listed in the order a digest travels:
//!
//! - [`config`] and [`domain`]: the typed configuration and the newtypes every other module
//!   speaks; both are parsed at the edges, so nothing further in re-checks a string.
//! - [`import`]: subscriber CSV files and article feeds read into typed records.
//! - [`store`]: the only module with SQL; domain types in and out.
//! - [`schedule`]: crontab lines in a time zone, with cron's daylight-saving rule.
//! - [`digest`]: which articles an edition carries, grouped by category (pure).
//! - [`edition`]: building and recording editions, and the headers their messages share.
//! - [`render`]: Maud HTML, plain text and subjects with holes for each reader's values.
//! - [`mail`]: MIME, DKIM and the SMTP/file/stub transports; knows nothing of the store.
//! - [`delivery`]: claims, one worker per connection, retry and pause policy, outcome commits.
//! - [`web`]: the reader pages (unsubscribe, preferences, sign-up, confirmation) and the
//!   operator endpoints (health, metrics).
//! - [`console`]: the newsroom console (editors and list admins), on its own listener.
//! - [`daemon`]: `dispatch run`, which ties the scheduler, breaking news, delivery, retention
//!   and the web pages together through the database.
//! - [`bounces`]: bounces, complaints and `mailto:` unsubscribes that come back.
//! - [`cli`]: the command line.
//!
//! `tests/layering.rs` holds the allowed arrows between these modules and checks there are no
//! cycles.
#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
pub mod i18n;
pub mod import;
pub mod intake;
pub mod store;
pub mod schedule;
pub mod digest;
pub mod edition;
pub mod render;
pub mod mail;
pub mod delivery;
pub mod bounces;
pub mod web;
pub mod console;
pub mod daemon;
pub mod cli;

#[cfg(test)]
mod test_tools;
