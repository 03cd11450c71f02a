//! The `dispatch` binary: parse the command line, load the config, run the command.

use std::process::ExitCode;

use clap::Parser;
use dispatch::cli::{self, Cli, Ctx, Outcome};
use dispatch::config::{Config, LogFormat};

fn init_tracing(config: &Config) {
    // RUST_LOG wins over the config so an operator can turn up one module without editing files.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| config.log.level.filter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, config_path) = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    match cli::run(
        cli,
        Ctx {
            config,
            config_path,
        },
    )
    .await
    {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
