//! The sidebar's rooms, remembered in the data dir (`tui-rooms`, one name per line) so that
//! the next start shows them in the same order. The node keeps the rooms themselves (and
//! their keys); this file only lists names, and the node confirms each one at start.

use std::io;
use std::path::Path;

const FILE: &str = "tui-rooms";

pub fn load(data_dir: &Path) -> Vec<String> {
    match std::fs::read_to_string(data_dir.join(FILE)) {
        Ok(text) => text.lines().filter_map(saved_name).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!("cannot read {FILE}: {e}");
            Vec::new()
        }
    }
}

/// A line of the file as a room name: a room's name (at most 48 bytes, any case), or a direct
/// message room, `@` and the peer's id, whose case matters.
fn saved_name(line: &str) -> Option<String> {
    let line = line.trim();
    if line.starts_with('@') {
        (line.len() > 1 && line.len() <= 1 + MAX_PEER_ID).then(|| line.to_owned())
    } else {
        (!line.is_empty() && line.len() <= 48).then(|| line.to_lowercase())
    }
}

/// The longest peer id written in base58 (a multihash of at most 64 bytes).
const MAX_PEER_ID: usize = 100;

/// Write the list (to a temporary file first, so a crash never leaves half a list).
pub fn save(data_dir: &Path, rooms: &[String]) -> io::Result<()> {
    let path = data_dir.join(FILE);
    let temporary = data_dir.join(format!("{FILE}.new"));
    let mut text = rooms.join("\n");
    text.push('\n');
    std::fs::write(&temporary, text)?;
    std::fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rooms_survive_a_round_trip() {
        let dir = std::env::temp_dir().join(format!("hark-tui-rooms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let direct = "@12D3KooWLgcRwMJLyu2YjWkBXbBbbDUV3KP5cqbYfhGzUNBZ3oJw";
        super::save(&dir, &["lobby".into(), "ops".into(), direct.into()]).unwrap();
        assert_eq!(
            super::load(&dir),
            vec!["lobby", "ops", direct],
            "a direct message room keeps its peer id as it is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
