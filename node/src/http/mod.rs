//! The HTTP API (`--http ADDR`, SPEC §8; docs/protocol.md "HTTP"): a client of the node like
//! the control socket is, not a second protocol. Requests become the same commands, sent
//! through the [`ClientLink`] with an origin; their answers come back to this client only.
//!
//! - this file: the options, the refusal of a non-loopback address without a token, the
//!   listener and the bearer-token check (constant time).
//! - [`routes`]: the routes, JSON errors with the JSON-lines codes, Server-Sent Events.
//! - [`metrics`]: `/metrics` in the Prometheus text format.

mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::node::ClientLink;

pub use routes::{router, ApiError, Shared, State};

/// A web user of `--web` (node/src/web/) making a request on the web listener. The same
/// routes serve them, limited to their rooms, and what they post is signed as them.
#[derive(Clone, Debug)]
pub struct Guest {
    pub identity: libp2p::identity::Keypair,
    pub name: String,
    /// Their rooms, as `subscribe` compares names (lower case, no `#`).
    pub rooms: std::collections::HashSet<String>,
}

impl Guest {
    /// Whether the guest is in `room` (typed any way the API accepts).
    pub fn may(&self, room: &str) -> bool {
        self.rooms.contains(&routes::normal(room))
    }
}

/// The HTTP API's options, shared by `hark` and `hark-node`.
#[derive(Args, Clone, Debug, Default)]
pub struct HttpArgs {
    /// Serve the HTTP API on ADDR (IP:PORT, e.g. 127.0.0.1:8080; port 0 picks a free one, and
    /// the log says which). Off by default. See docs/protocol.md, "HTTP".
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A file holding the HTTP API's bearer token (clients send `Authorization: Bearer TOKEN`).
    /// Required unless --http is a loopback address.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token: Option<PathBuf>,
}

/// What to serve: checked options, with the token read.
#[derive(Clone)]
pub struct HttpPlan {
    pub addr: SocketAddr,
    token: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPlan")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl HttpArgs {
    /// The plan, or the one-line reason it cannot be served: a non-loopback address without
    /// a token file, or a token file that does not read or is empty.
    pub fn plan(&self) -> Result<Option<HttpPlan>, String> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        let token = match &self.http_token {
            Some(path) => Some(read_token(path)?),
            None if addr.ip().is_loopback() => None,
            None => {
                return Err(format!(
                    "--http {addr} is not a loopback address: it needs --http-token FILE \
                     (a file holding the bearer token)"
                ))
            }
        };
        Ok(Some(HttpPlan { addr, token }))
    }
}

/// [`HttpArgs::plan`] for a program's `main`: a problem is one line on stderr and exit code 2.
/// The HTTP options in effect (command line > `HARK_*` > config file).
impl From<&crate::settings::Settings> for HttpArgs {
    fn from(settings: &crate::settings::Settings) -> Self {
        HttpArgs {
            http: settings.http,
            http_token: settings.http_token.clone(),
        }
    }
}

pub fn plan_or_exit(
    program: &str,
    args: &HttpArgs,
) -> Result<Option<HttpPlan>, std::process::ExitCode> {
    args.plan().map_err(|e| {
        eprintln!("{program}: {e}");
        std::process::ExitCode::from(2)
    })
}

fn read_token(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--http-token {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "--http-token {}: the file must hold one token (no spaces)",
            path.display()
        ));
    }
    Ok(token.as_bytes().to_vec())
}

/// Whether `given` equals `expected`, in time that depends only on `expected`'s length.
fn same_token(expected: &[u8], given: &[u8]) -> bool {
    let differ = expected
        .iter()
        .enumerate()
        .fold(u8::from(expected.len() != given.len()), |acc, (i, b)| {
            acc | (b ^ given.get(i).copied().unwrap_or(!b))
        });
    differ == 0
}

/// Bind the address and serve the API until the node stops. Returns the bound address (the
/// port that port 0 picked), also logged as `HTTP API listening on http://ADDR`.
pub async fn serve(
    plan: HttpPlan,
    data_dir: &Path,
    link: ClientLink,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(plan.addr)
        .await
        .map_err(|e| format!("--http {}: {e}", plan.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--http {}: {e}", plan.addr))?;
    let app = routes::router(routes::Shared::start(link.clone(), plan.token, data_dir).await?);
    tracing::info!("HTTP API listening on http://{addr}");
    tokio::spawn(async move {
        let stopped = async move { link.stopped().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!("HTTP API: {e}");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"secret", b"secret"));
        assert!(!same_token(b"secret", b"secreT"));
        assert!(!same_token(b"secret", b"secret2"));
        assert!(!same_token(b"secret", b"secre"));
        assert!(!same_token(b"secret", b""));
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let args = |addr: &str| HttpArgs {
            http: Some(addr.parse().unwrap()),
            http_token: None,
        };
        assert!(args("127.0.0.1:0").plan().unwrap().is_some());
        assert!(args("[::1]:0").plan().unwrap().is_some());
        let e = args("0.0.0.0:8080").plan().unwrap_err();
        assert!(e.contains("--http-token"), "{e}");
        assert!(HttpArgs::default().plan().unwrap().is_none());
    }
}
