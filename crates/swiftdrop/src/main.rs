use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use domain::clock::Clock;
use swiftdrop::{Config, Roles, config::LogFormat};
use tokio::net::TcpListener;

/// jemalloc rather than the platform's malloc: under a sale, glibc kept
/// every arena's freed memory (RSS stayed at its peak after the load) and
/// its arena locks showed up in the hot path; jemalloc's background
/// threads give idle memory back. See docs/benchmarks.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read before `main`: memory freed and left unused
/// for a second is returned to the system (the default waits ten).
/// `MALLOC_CONF` in the environment still overrides this.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
static malloc_conf: &[u8; 20] = b"dirty_decay_ms:1000\0";

/// SwiftDrop: live commerce drops, flash sales, auctions and community events.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "SWIFTDROP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every role in one process: the zero-setup default.
    Serve {
        /// Seed a demo admin (printed) on first start.
        #[arg(long)]
        demo: bool,
    },
    /// The HTTP API and web UI (run N behind a load balancer).
    Api,
    /// The WebSocket notification service (run N; each consumes the broker).
    Notifier,
    /// Scheduler and outbox relay.
    Worker,
    /// Applies database migrations and exits.
    Migrate,
    /// Seeds the demo data (once) and exits.
    Seed {
        /// Also add this many generated products (to try the catalog at scale).
        #[arg(long, default_value_t = 0)]
        products: usize,
    },
    /// Drives a running server with load and prints throughput and latency percentiles.
    Loadtest {
        #[command(subcommand)]
        scenario: loadtest::Scenario,
    },
    /// Account administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates an admin account on the configured database.
    ///
    /// The password is asked for at the terminal (twice, not echoed) unless
    /// `--password-stdin` or `--password` is given.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
        /// For scripts only: a command line is visible to every local user
        /// (`ps`) and may land in shell history. Prefer `--password-stdin`.
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The load generator is a client: it needs none of the server's settings.
    let command = match cli.command {
        Command::Loadtest { scenario } => return loadtest::run(scenario).await,
        server_command => server_command,
    };
    let config = Config::load(cli.config.as_deref())?;
    swiftdrop::init_tracing(config.log);
    match command {
        Command::Serve { demo } => serve(config, demo, Roles::ALL).await,
        Command::Api => serve(config, false, Roles::API).await,
        Command::Notifier => serve(config, false, Roles::NOTIFIER).await,
        Command::Worker => serve(config, false, Roles::WORKER).await,
        Command::Migrate => {
            swiftdrop::open_store(&config, Clock::system()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed { products } => {
            let app = swiftdrop::build(&config).await?;
            swiftdrop::seed::demo(&app, &config.data_dir).await?;
            swiftdrop::seed::bulk_products(&app, products).await
        }
        Command::Loadtest { scenario } => loadtest::run(scenario).await,
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    username,
                    password,
                    password_stdin,
                },
        } => {
            let password = match (password, password_stdin) {
                (Some(password), _) => password,
                (None, true) => password_from_stdin()?,
                (None, false) => password_from_prompt()?,
            };
            let app = swiftdrop::build(&config).await?;
            swiftdrop::seed::create_admin(&app, &email, &username, &password).await?;
            println!("admin {username} created");
            Ok(())
        }
    }
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password.to_owned())
}

/// Asks at the terminal, without echo, twice.
fn password_from_prompt() -> anyhow::Result<String> {
    let no_terminal = "cannot ask for the password (no terminal): use --password-stdin";
    let password = rpassword::prompt_password("Password for the new admin: ").context(no_terminal)?;
    let again = rpassword::prompt_password("Same password again: ").context(no_terminal)?;
    anyhow::ensure!(password == again, "the two passwords differ; nothing was created");
    Ok(password)
}

async fn serve(config: Config, demo: bool, roles: Roles) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (SWIFTDROP_ADDR)", config.addr))?;
    let app = swiftdrop::build_with(&config, roles, Clock::system()).await?;
    if demo {
        swiftdrop::seed::demo(&app, &config.data_dir).await?;
    }
    if config.log == LogFormat::Human {
        println!("SwiftDrop on http://{}", config.addr);
    }
    swiftdrop::serve(app, listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
