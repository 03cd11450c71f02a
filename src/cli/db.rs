//! `dispatch db …`: moving an installation to PostgreSQL, and checking a database.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::config::PostgresUrl;
use crate::store::copy::{self, Check};

/// Database commands.
#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Copy every table of an SQLite database into an empty PostgreSQL database, in one
    /// transaction, and compare the row counts. Stop every dispatch process on the SQLite
    /// file first: what they write later is not copied.
    Copy {
        /// The SQLite file to copy, e.g. data/dispatch.db.
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// The empty PostgreSQL database to copy into: postgres://user@host/dbname.
        #[arg(long, value_name = "URL")]
        to: PostgresUrl,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Report the configured database's migrations and row counts without changing it; exits
    /// 1 when its schema is not the one this binary expects.
    Check(JsonFlag),
}

/// Runs one `db` command.
pub(super) async fn run(cmd: DbCmd, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        DbCmd::Copy { from, to, batch } => {
            let mut last = (String::new(), 0u64);
            let counts = copy::copy_sqlite_to_postgres(
                &from,
                to.expose(),
                ctx.config.database.max_connections,
                batch as usize,
                |table, rows| {
                    // A line per table, and one per 100,000 rows of the big ones.
                    if last.0 != table || rows / 100_000 != last.1 / 100_000 {
                        eprintln!("  {table}: {rows} row(s)");
                    }
                    last = (table.to_owned(), rows);
                },
            )
            .await
            .with_context(|| format!("copying {} to {to}", from.display()))?;
            let mut t = Table::new(["TABLE", "ROWS"]);
            for c in &counts {
                t.row([c.table.clone(), c.rows.to_string()]);
            }
            t.print();
            let rows: i64 = counts.iter().map(|c| c.rows).sum();
            println!(
                "\ncopied {} table(s), {rows} row(s); every table has the same count in both. \
                 Set [database] url = \"{to}\" (the password from DISPATCH_DATABASE_URL or \
                 ~/.pgpass) to use it.",
                counts.len()
            );
            if let Some(s) = counts.iter().find(|c| c.table == "senders" && c.rows > 0) {
                eprintln!(
                    "warning: {} sender(s) were registered in the SQLite database; if a dispatch \
                     process still runs on it, what it sends from now on is not in the copy",
                    s.rows
                );
            }
            Ok(Outcome::Ok)
        }
        DbCmd::Check(flag) => {
            let target = ctx.config.database.target();
            let check = copy::check(&target)
                .await
                .with_context(|| format!("checking database {target}"))?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else {
                print_check(&target.to_string(), &check);
            }
            Ok(if check.is_current() {
                Outcome::Ok
            } else {
                Outcome::Rejected
            })
        }
    }
}

fn print_check(target: &str, check: &Check) {
    println!("database: {} ({target})\n", check.backend);
    let mut m = Table::new(["MIGRATION", "DESCRIPTION", "STATE"]);
    for s in &check.migrations {
        let state = match (s.applied, s.known, s.checksum_matches) {
            (true, true, true) => "applied",
            (true, true, false) => "applied, but edited since (checksum differs)",
            (true, false, _) => "applied, unknown to this binary",
            (false, _, _) => "pending (runs when dispatch next opens the database)",
        };
        m.row([
            s.version.to_string(),
            s.description.clone(),
            state.to_owned(),
        ]);
    }
    m.print();
    println!();
    let mut t = Table::new(["TABLE", "ROWS"]);
    for r in &check.tables {
        t.row([r.table.clone(), r.rows.to_string()]);
    }
    t.print();
    if check.is_current() {
        println!("\nthe schema is the one this binary expects");
    } else {
        println!("\nthe schema is NOT the one this binary expects (see the migrations above)");
    }
}
