//! The `tasky` binary: configuration from the environment, the database, and the HTTP server with graceful
//! shutdown. Everything else lives in the library.

use std::process::ExitCode;

use tasky::config::{Config, DatabaseConfig};
use tasky::server::{self, Limits, Stopped};
use tasky::store::Store;
use tasky::{AppState, api};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    return_large_allocations();
    pretty_env_logger::formatted_timed_builder()
        .filter_level(log::LevelFilter::Info)
        .parse_env("RUST_LOG")
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail(err),
    };
    // Blocking threads are the store's to size (SQLite's lanes); hashing has threads of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(Store::blocking_threads(&config.database))
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(config)),
        Err(err) => fail(format!("cannot start the async runtime: {err}")),
    }
}

async fn run(config: Config) -> ExitCode {
    let store = match Store::connect(&config.database).await {
        Ok(store) => store,
        Err(err) => {
            return fail(match &config.database {
                DatabaseConfig::Sqlite(path) => {
                    format!("DATABASE_PATH: cannot open {}: {err}", path.display())
                }
                DatabaseConfig::Postgres(_) => format!("DATABASE_URL: {err}"),
            });
        }
    };
    let listener = match server::bind(config.host, config.port) {
        Ok(listener) => listener,
        Err(err) => {
            // An address this machine does not have is HOST's fault; a port in use or reserved is PORT's.
            let var = match err.kind() {
                std::io::ErrorKind::AddrNotAvailable => "HOST",
                _ => "PORT",
            };
            let (host, port) = (config.host, config.port);
            return fail(format!("{var}: cannot listen on {host}:{port}: {err}"));
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(err) => return fail(format!("cannot install signal handlers: {err}")),
    };
    let limits = match server::raise_open_file_limit() {
        Ok(open_files) => {
            let limits = Limits::for_open_files(open_files);
            log::info!(
                "open-file limit {open_files}: serving up to {} connections, {} per client address{}",
                limits.max_connections,
                limits.per_address,
                if config.trust_proxy.behind_proxy() {
                    " (not applied to the trusted proxy)"
                } else {
                    ""
                }
            );
            limits
        }
        Err(err) => {
            log::warn!("cannot read the open-file limit ({err}): serving with the default limits");
            Limits::default()
        }
    };
    match listener.local_addr() {
        Ok(addr) => log::info!("listening on http://{addr}"),
        Err(err) => return fail(format!("PORT: cannot read the bound address: {err}")),
    }

    let stopped = server::serve(
        listener,
        api(AppState::new(&config, store.clone())),
        limits,
        config.trust_proxy.clone(),
        async move {
            shutdown.await;
            log::info!("shutting down: no new connections, finishing requests in flight");
        },
    )
    .await;
    if stopped == Stopped::DrainTimedOut {
        log::warn!("requests still in flight after the drain timeout were dropped");
    }
    if let Err(err) = store.close().await {
        log::warn!("could not close the store cleanly: {err}");
    }
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// Makes glibc map every allocation of 1 MiB or more on its own and unmap it when freed. Each password hash
/// takes a 19 MiB block; by default glibc raises its mapping threshold after the first one is freed and carves
/// the next ones out of its per-thread arenas, where small allocations made in between split the freed space,
/// so the arenas grow by a block every few hashes and never shrink (hundreds of MiB after a login storm). With
/// a fixed threshold, memory in use is the blocks being hashed with, nothing more.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Resolves on the first SIGTERM (how containers are stopped) or SIGINT (Ctrl-C).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Prints the one line that says what is wrong (to stderr, whatever `RUST_LOG` says), and gives the exit
/// status for a failed start.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}
