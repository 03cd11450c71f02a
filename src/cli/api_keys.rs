//! `dispatch api-keys …`: bearer keys for the HTTP API (`/api/v1/`).

use anyhow::{Result, bail};
use clap::Subcommand;

use super::{Ctx, JsonFlag, Outcome, Table};
use crate::domain::{ApiKey, DbTime, Role, clean_text};

/// API key commands.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCmd {
    /// Make a key and print it once (only its hash is stored).
    Create {
        /// Who uses it, e.g. cms; logged with every call it makes.
        #[arg(long)]
        name: String,
        /// editor: articles, breaking news, editions; admin: also lists and subscribers.
        #[arg(long, value_parser = Role::parse)]
        role: Role,
    },
    /// Every key: name, role, when made and revoked.
    List(JsonFlag),
    /// Revoke the key named NAME; it stops working at once.
    Revoke { name: String },
}

pub(super) async fn run(cmd: ApiKeysCmd, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.store().await?;
    match cmd {
        ApiKeysCmd::Create { name, role } => {
            let clean = clean_text(&name, 64);
            if clean.is_empty() || clean != name.trim() {
                bail!(
                    "--name must be 1-64 characters on one line, without control characters; got {name:?}"
                );
            }
            let key = ApiKey::generate();
            store.create_api_key(&clean, role, &key).await?;
            eprintln!(
                "API key {clean:?} ({role}) created. It is shown only now; store it in the CMS:"
            );
            println!("{}", key.expose());
            Ok(Outcome::Ok)
        }
        ApiKeysCmd::List(flag) => {
            let keys = store.api_keys().await?;
            if flag.json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name, "role": k.role,
                            "created_at": k.created_at.to_text(),
                            "revoked_at": k.revoked_at.map(DbTime::to_text),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(Outcome::Ok);
            }
            let mut t = Table::new(["NAME", "ROLE", "CREATED", "REVOKED"]);
            for k in &keys {
                t.row([
                    k.name.clone(),
                    k.role.to_string(),
                    k.created_at.to_text(),
                    k.revoked_at.map_or_else(|| "-".into(), DbTime::to_text),
                ]);
            }
            t.print();
            Ok(Outcome::Ok)
        }
        ApiKeysCmd::Revoke { name } => {
            if !store.revoke_api_key(name.trim()).await? {
                bail!("no API key named {name:?} is active; `dispatch api-keys list` shows them");
            }
            println!("revoked API key {:?}", name.trim());
            Ok(Outcome::Ok)
        }
    }
}
