//! The browser client (`--web ADDR`, SPEC §8 "Web"; docs/web.md): every node can serve the
//! whole product — chat and push-to-talk — to a phone on the LAN, over HTTPS.
//!
//! It is one server and one API with `--http`: the web listener mounts the very routes of
//! [`crate::http`] (`/v1/…`), answered by the same in-process client of the node, beside the
//! page's static files and a few routes of its own (`/web/…`: join, rooms, voice). A web user
//! is a [`crate::http::Guest`] on those routes: limited to their rooms, and what they post is
//! signed with the key the node holds for them (`engine/send_as.rs`).
//!
//! - [`tls`]: the self-signed certificate kept in the data dir, its fingerprint, the TLS listener.
//! - [`users`]: web users, their keys, sessions and one-time join links.
//! - [`invite`]: `hark-node web-invite`, which makes a join link for a running node.
//! - [`routes`]: the web-only routes and the session check in front of the API.
//! - [`voice`]: push-to-talk over a WebSocket: the page's Opus (or PCM) frames in, the node's
//!   played-out mix out.
//! - [`assets`]: the page itself, embedded in the binary (node/web/).

pub mod assets;
pub mod invite;
pub mod routes;
pub mod tls;
pub mod users;
pub mod voice;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::node::ClientLink;

/// The web client's files in the data dir.
pub fn web_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("web")
}

/// The file where a serving node writes its URL, for `hark-node web-invite`.
pub const URL_FILE: &str = "url";

/// What a started web listener tells its owner.
pub struct Served {
    pub addr: SocketAddr,
    /// `https://HOST:PORT/`, with the address phones on the LAN can reach.
    pub url: String,
    pub fingerprint: String,
    /// Plays received voice to the pages (install with `NodeHandle::set_audio_sink`).
    pub sink: voice::WebSink,
    /// Makes one-time join links for this listener (`/web-invite` in `hark`).
    pub join_links: invite::JoinLinks,
}

/// Bind `addr`, serve the browser client over HTTPS until the node stops.
pub async fn serve(addr: SocketAddr, data_dir: &Path, link: ClientLink) -> Result<Served, String> {
    let dir = web_dir(data_dir);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("--web: {}: {e}", dir.display()))?;
    }
    let host = public_host(addr.ip());
    let identity = tls::load_or_create(&dir, &[host.to_string()])?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--web {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--web {addr}: {e}"))?;
    let url = match host {
        IpAddr::V6(ip) => format!("https://[{ip}]:{}/", bound.port()),
        IpAddr::V4(ip) => format!("https://{ip}:{}/", bound.port()),
    };
    let (app, sink) = routes::app(link.clone(), &dir).await?;
    let tls = tls::TlsListener::new(listener, identity.config.clone())
        .map_err(|e| format!("--web {addr}: {e}"))?;
    std::fs::write(dir.join(URL_FILE), &url).map_err(|e| format!("--web: {e}"))?;
    tracing::info!(
        "web client on {url} (certificate SHA-256 {}); make a join link with `hark-node web-invite`",
        identity.fingerprint
    );
    if let Some(qr) = invite::qr_text(&url) {
        tracing::info!("web client address as a QR code:\n{qr}");
    }
    let url_path = dir.join(URL_FILE);
    tokio::spawn(async move {
        let stopped = {
            let link = link.clone();
            async move { link.stopped().await }
        };
        if let Err(e) = axum::serve(tls, app).with_graceful_shutdown(stopped).await {
            tracing::warn!("web client: {e}");
        }
        let _ = std::fs::remove_file(url_path);
    });
    Ok(Served {
        addr: bound,
        url,
        fingerprint: identity.fingerprint,
        sink,
        join_links: invite::JoinLinks::new(data_dir),
    })
}

/// A node started without `--web` removes the URL a killed one may have left, so that
/// `hark-node web-invite` never hands out a link to nothing.
pub fn not_serving(data_dir: &Path) {
    let _ = std::fs::remove_file(web_dir(data_dir).join(URL_FILE));
}

/// The address to put in links: the bound one, or for a wildcard, the address this host uses
/// to reach the LAN (a UDP socket's route lookup: connecting one sends nothing), else loopback.
fn public_host(bound: IpAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").map(|_| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(local) if !local.ip().is_unspecified() => local.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}
