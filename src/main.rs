//! The `dispatch` binary: parse the command line, load the config, run the command.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dispatch::cli::{self, Cli, Ctx, Outcome};
use dispatch::config::{Config, LogFormat};

fn init_tracing(config: &Config) {
    // RUST_LOG wins over the config so an operator can turn up one module without editing files.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| config.log.level.filter());
    // Colour only on a terminal (escape codes in a file or the journal are noise), and never
    // when NO_COLOR is set (https://no-color.org), which `with_ansi` would otherwise override.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

/// How long background tasks get to stop once the command is done.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, config_path) = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            // An MTA keeps a message it is told to retry (EX_TEMPFAIL) and bounces it on most
            // other statuses: a config mistake must not lose bounces.
            if cli.command.is_ingest() {
                return ExitCode::from(cli::bounces::EX_TEMPFAIL);
            }
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    for notice in &config.notices {
        tracing::warn!("{notice}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
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
            Ok(Outcome::Exit(code)) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    // Once the command is done, a background task that does not stop (sqlx's pool
    // maintenance was once seen spinning while the runtime was dropped, keeping a finished
    // `subscribers add` alive) must not keep the process alive.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}
