//! The private network key (libp2p pnet, IPFS `swarm.key` format) and plain words for the
//! connection failures it causes.

use std::error::Error as StdError;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libp2p::pnet::PreSharedKey;
use rand::RngCore;
use thiserror::Error;

const HEADER: &str = "/key/swarm/psk/1.0.0/";
const ENCODING: &str = "/base16/";

#[derive(Debug, Error)]
pub enum NetKeyError {
    #[error("cannot read network key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network key {0} is not a swarm.key file (expected {HEADER}, {ENCODING}, then 64 hex digits)")]
    Format(PathBuf),
    #[error("cannot write network key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Read a `swarm.key` file. Parsed here rather than by libp2p so that any bad byte is a clear
/// error instead of a slicing panic on non-ASCII input.
pub fn load(path: &Path) -> Result<PreSharedKey, NetKeyError> {
    let text = fs::read_to_string(path).map_err(|source| NetKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).ok_or_else(|| NetKeyError::Format(path.to_owned()))
}

fn parse(text: &str) -> Option<PreSharedKey> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next()? != HEADER || lines.next()? != ENCODING {
        return None;
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(lines.next()?, &mut key).ok()?;
    lines.next().is_none().then(|| PreSharedKey::new(key))
}

/// Write a new random key to `path` (mode 0600). Refuses to overwrite an existing file.
pub fn generate(path: &Path) -> Result<PreSharedKey, NetKeyError> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let psk = PreSharedKey::new(key);
    let write_err = |source| NetKeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    std::io::Write::write_all(&mut file, psk.to_key_file().as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    Ok(psk)
}

/// Whether a connection error is the network itself (nobody listening, unreachable) rather
/// than a handshake that failed once bytes flowed.
fn is_unreachable(error: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        current = e.source();
    }
    let text = error.to_string();
    text.contains("Connection refused") || text.contains("timed out") || text.contains("Timeout")
}

/// One line that says why a connection failed, naming the network key when it is the likely
/// cause. `ours` is this node's key, if any.
pub fn explain_failure(error: &(dyn StdError + 'static), ours: Option<&PreSharedKey>) -> String {
    if is_unreachable(error) {
        return format!("peer unreachable ({error})");
    }
    match ours {
        Some(key) => format!(
            "handshake failed: the peer has a different network key or none (this node uses network key {})",
            key.fingerprint()
        ),
        None => "handshake failed: the peer probably requires a network key (this node has none; see --network-key)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.key");
        let key = generate(&path).unwrap();
        assert_eq!(
            load(&path).unwrap().fingerprint().to_string(),
            key.fingerprint().to_string()
        );
        assert!(generate(&path).is_err(), "never overwrites a key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        for bad in [
            "",
            "hello",
            "/key/swarm/psk/1.0.0/\n/base16/\nzz",
            "/key/swarm/psk/1.0.0/\n/base16/\nääää",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(
                matches!(load(&path), Err(NetKeyError::Format(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(NetKeyError::Read { .. })
        ));
    }
}
