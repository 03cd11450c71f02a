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
//! - [`store`]: the only module with SQL.
//! - [`schedule`]: crontab lines in a time zone.
//! - [`render`]: Maud HTML, plain text, subjects.
//! - [`mail`]: MIME with per-reader holes, DKIM, SMTP/file/stub transports.
#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
pub mod mail;
pub mod render;
pub mod schedule;
