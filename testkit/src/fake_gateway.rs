//! The fake upstream "gateway": an HTTP/1.1 server whose behaviour tests and
//! demos can turn at run time, standing in for the real stable and canary
//! releases behind canaryd. This file is the entry point of the
//! `fake-gateway` binary (`src/bin/fake-gateway.rs` only calls [`main`]);
//! the parts live in `fake_gateway/`:
//!
//! - `cli.rs`: command line (`--listen`, `--name`, `--error-rate`,
//!   `--latency-ms`, `--leak-mb-per-min`, `--auth-fail-rate`, `--unhealthy`).
//! - `knobs.rs`: the run-time knobs (atomics) and their parsing.
//! - `server.rs`: shared state and the accept loop; stamps `x-served-by`.
//! - `routes.rs`: the endpoints:
//!   - `/health` → 200 `ok` / 503 `unhealthy`;
//!   - `GET|POST /__knobs[?error_rate=..&latency_ms=..&leak_mb_per_min=..&auth_fail_rate=..&healthy=..]`;
//!   - `GET /metrics` (Prometheus text);
//!   - `/echo...` → the request as JSON;
//!   - `GET /api/stream...[?hold_ms=N]` → SSE `data: first`, then `data: last`;
//!   - `GET /ws` → WebSocket echo (`ws.rs`);
//!   - `POST /upload` → `{"bytes":N}` counted without buffering;
//!   - `GET /slow?ms=N` → 200 `slow` after N ms;
//!   - `/status/NNN` → status NNN with body `status NNN\n`;
//!   - anything else → latency, then 500 `error` / 401 (for `/auth...`) /
//!     200 with the gateway's name.
//! - `body.rs`: body types and helpers; `stats.rs` + `procfs.rs`: metrics;
//!   `leak.rs`: the memory-leak task.
//! - `handle.rs`: [`FakeGateway`], the test-side handle that spawns the
//!   binary and steers it.

mod body;
mod cli;
mod handle;
mod knobs;
mod leak;
mod procfs;
mod routes;
mod server;
mod stats;
mod ws;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

pub use cli::{Command, Config, USAGE};
pub use handle::FakeGateway;
pub use knobs::KnobValues;

/// How long to keep retrying a fixed port that is still in use (a gateway
/// restarted on the port of one just killed).
const BIND_RETRY_FOR: Duration = Duration::from_secs(5);

/// The `fake-gateway` binary: parses `std::env::args`, runs the server on a
/// one-worker multi-thread runtime until killed.
pub fn main() -> ExitCode {
    let config = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fake-gateway: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fake-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, prints `listening on ADDR` (flushed), then serves forever.
pub async fn run(config: Config) -> io::Result<()> {
    let state = Arc::new(server::State::new(config.name, config.knobs)?);
    let listener = bind(config.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    tokio::spawn(leak::run(Arc::clone(&state)));
    server::serve(listener, state).await;
    Ok(())
}

/// Binds `addr`, retrying for a while when a fixed port is still in use.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + BIND_RETRY_FOR;
    loop {
        match TcpListener::bind(addr).await {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && addr.port() != 0
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot bind {addr}: {e}"))),
            Ok(listener) => return Ok(listener),
        }
    }
}
