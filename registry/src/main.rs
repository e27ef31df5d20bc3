//! The `depot-registry` binary: `serve` runs the registry.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use depot_registry::admin::{AdminCommand, AdminDb};
use depot_registry::config::ServeConfig;
use depot_registry::server;

#[derive(Debug, Parser)]
#[command(
    name = "depot-registry",
    version,
    about = "An OCI registry for CI builds, saved by build ID"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry (with no flags: 127.0.0.1:5000, SQLite and blobs under ./depot-data,
    /// token authentication with the admin token in ./depot-data/admin-token).
    Serve(Box<ServeConfig>),
    /// Manage projects and tokens directly in the database (bootstrap, scripts).
    Admin {
        #[command(flatten)]
        db: AdminDb,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("DEPOT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The server writes its log (a line per request) from a thread of its own, so a slow reader
    // of stdout never holds up a request; nothing is dropped (a full buffer waits instead), and
    // `_flush` writes out what is left when main returns.
    let (stdout, _flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    match cli.command {
        // The server logs to stdout; admin commands print JSON there, so their log goes to stderr.
        Command::Serve(ref config) if config.log_format == "json" => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(stdout)
            .init(),
        Command::Serve(_) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(stdout)
            .init(),
        Command::Admin { .. } => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    match cli.command {
        Command::Serve(config) => {
            server::raise_open_files(config.max_connections as usize);
            // Bound first: a taken port is reported (with the address) before anything is
            // opened or written.
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
            let metrics = match config.metrics_listen {
                None => None,
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (--metrics-listen): {e}")
                })?),
            };
            let tls = config.tls()?;
            let state = server::open(&config).await?;
            server::start_gc(&state, &config);
            server::start_usage(&state, &config);
            let addr = listener.local_addr()?;
            if let Some(m) = &metrics {
                tracing::info!(addr = %m.local_addr()?, "metrics on http://{}/metrics", m.local_addr()?);
            }
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(%addr, data_dir = %config.backend.data_dir.display(), "depot registry listening on {scheme}://{addr}");
            server::serve(
                listener,
                metrics,
                state,
                config.connection_limits(),
                tls,
                config.shutdown(server::shutdown_signal()),
            )
            .await
        }
        Command::Admin { db, command } => depot_registry::admin::run(&db, command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
