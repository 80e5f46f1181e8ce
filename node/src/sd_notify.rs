//! systemd's service notifications (`Type=notify`, sd_notify(3)): `READY=1` once the node is
//! up, `WATCHDOG=1` at half of `$WATCHDOG_USEC`, `STOPPING=1` on the way out. Each is one
//! datagram to the unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract name written
//! with a leading `@`). Written here in a few lines rather than taken from a crate: the
//! protocol is one `sendto`, and libsystemd would be a C dependency. Without `$NOTIFY_SOCKET`
//! (not run by systemd) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Send `state` (e.g. `READY=1`) to systemd. Ok(false) when not run under a notify socket.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    if target.is_empty() {
        return Ok(false);
    }
    let socket = UnixDatagram::unbound()?;
    match target.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(state.as_bytes(), &target)?;
        }
    }
    Ok(true)
}

/// How often systemd wants `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when that is set (and
/// `$WATCHDOG_PID`, if set, is this process).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Tell systemd the node is ready, and, when a watchdog is asked for, ping it from a task on
/// the current tokio runtime while the node answers: each ping follows a round trip through
/// the driver's loop (a stats request), so a wedged node misses its pings and systemd restarts
/// it, where a timer of its own would go on pinging. Failures are logged, never fatal.
pub fn ready(status: &str, node: crate::node::ClientLink) {
    match notify(&format!("READY=1\nSTATUS={status}")) {
        Ok(true) => tracing::debug!("told systemd: ready"),
        Ok(false) => return,
        Err(e) => {
            tracing::warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
            return;
        }
    }
    if let Some(every) = watchdog_interval() {
        tracing::debug!("systemd watchdog: a ping every {every:?}");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match tokio::time::timeout(every, node.stats()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::error!(
                            "the node did not answer within {every:?}: no watchdog ping"
                        );
                        continue;
                    }
                }
                if let Err(e) = notify("WATCHDOG=1") {
                    tracing::warn!("cannot ping the systemd watchdog: {e}");
                }
            }
        });
    }
}

/// Tell systemd the node is stopping (no-op outside systemd).
pub fn stopping() {
    let _ = notify("STOPPING=1");
}
