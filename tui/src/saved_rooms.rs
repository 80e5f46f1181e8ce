//! The sidebar's rooms, remembered in the data dir (`tui-rooms`, one name per line) so that
//! the next start shows them in the same order. The node keeps the rooms themselves (and
//! their keys); this file only lists names, and the node confirms each one at start.

use std::io;
use std::path::Path;

const FILE: &str = "tui-rooms";

pub fn load(data_dir: &Path) -> Vec<String> {
    match std::fs::read_to_string(data_dir.join(FILE)) {
        Ok(text) => text
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty() && l.len() <= 48)
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!("cannot read {FILE}: {e}");
            Vec::new()
        }
    }
}

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
        super::save(&dir, &["lobby".into(), "ops".into()]).unwrap();
        assert_eq!(super::load(&dir), vec!["lobby", "ops"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
