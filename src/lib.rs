//! dispatch: a self-hosted newsletter engine for news sites.
//!
//! Articles live in SQLite. On each list's schedule an *edition* is built from the articles
//! published since the list's previous edition, grouped by category, rendered once per
//! category variant into HTML and plain text, and delivered over SMTP to every active
//! subscriber, each message carrying the reader's own one-click unsubscribe link.
//!
//! Layout, by concern:
//! - [`config`]: typed configuration and `DISPATCH_*` overrides.
//! - [`domain`]: newtypes parsed at the edges.
//! - [`import`]: subscriber CSV files and article feeds read into plain records.
//! - [`digest`]: which articles an edition carries, grouped by category (pure).
//! - [`edition`]: building, recording and rendering editions.
//! - [`mail`]: MIME assembly, DKIM, transports and the sender loop.
//! - [`bounces`]: bounces, complaints and `mailto:` unsubscribes that come back.
//! - [`cli`]: the command line.
//! - [`store`]: the only module with SQL.
//! - [`schedule`]: crontab lines in a time zone.
//! - [`render`]: Maud HTML, plain text, subjects.
//! - [`mail`]: MIME with per-reader holes, DKIM, SMTP/file/stub transports.
//! - [`web`]: axum pages for unsubscribe (RFC 8058), sign-up, confirmation, preferences,
//!   health and metrics.
#![forbid(unsafe_code)]

pub mod bounces;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod digest;
pub mod domain;
pub mod edition;
pub mod import;
pub mod mail;
pub mod render;
pub mod schedule;
pub mod store;
pub mod web;

#[cfg(test)]
mod test_tools;
