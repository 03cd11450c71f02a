//! End-to-end tests of the `dispatch` command line: the real binary, a real SQLite file in a
//! temporary directory, the sample CSV files and the fixture feeds.
//!
//! One module per area of the command line; the helpers two or more of them use are here.

#[path = "../support/mod.rs"]
mod support;

mod articles;
mod config;
mod lists;
mod schedules;
mod status;
mod subscribers;
mod subscribers_import;
mod unsubscribes;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use support::cli::{Cli, repo_path};

/// The path of a file in the repository as a string argument.
fn repo(rel: &str) -> String {
    repo_path(rel).display().to_string()
}

/// A list carrying the four categories the sample files use.
const CATEGORIES: &str = "Politics,Business,Sport,General News";

/// A sandbox with list `daily` carrying [`CATEGORIES`].
fn with_daily() -> Cli {
    let cli = Cli::new();
    cli.ok(["lists", "create", "daily", "--categories", CATEGORIES]);
    cli
}

/// `subscribers export` rows as (email, name, categories, status, list).
fn export_rows(csv_text: &str) -> Vec<[String; 5]> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec!["email", "name", "categories", "status", "list"],
        "export header"
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            std::array::from_fn(|i| rec[i].to_owned())
        })
        .collect()
}

/// The emails in `subscribers list --json` output, in order.
fn listed_emails(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_owned())
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn next_slots(cli: &Cli, slug: &str) -> Vec<DateTime<FixedOffset>> {
    cli.json(["lists", "show", slug, "--json"])["next_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| DateTime::parse_from_rfc3339(s.as_str().unwrap()).unwrap())
        .collect()
}
