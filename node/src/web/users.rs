//! Web users: who may use the browser client, and as whom they write.
//!
//! A web user gets in with a one-time join link (`hark-node web-invite`, [`super::invite`]) and
//! from then on holds a session cookie. The node keeps one Ed25519 key per web user, so their
//! messages are signed and attributed to them like anyone's (docs/security.md, "Web client").
//! Everything lives in `DATA_DIR/web/`, readable by the node's owner only:
//! - `users.json` (0600): each user's id, name, key, rooms, and the SHA-256 of their session
//!   tokens (never the tokens themselves);
//! - `invites/HASH.json`: an unused join link (its token's SHA-256, a name, rooms, expiry);
//!   redeeming renames it to `HASH.used`, which happens once: a second try finds it used.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tls::write_private;

/// Sessions kept per user (phone, laptop, …); the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 8;

/// One web user, as requests see them.
#[derive(Clone, Debug)]
pub struct WebUser {
    pub id: String,
    pub name: String,
    pub identity: Keypair,
    /// Room names (as the node spells them) this user is in.
    pub rooms: BTreeSet<String>,
}

impl WebUser {
    pub fn peer_id(&self) -> String {
        self.identity.public().to_peer_id().to_string()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredUser {
    id: String,
    name: String,
    /// The Ed25519 keypair, libp2p protobuf encoding, hex.
    key: String,
    rooms: BTreeSet<String>,
    /// SHA-256 (hex) of each session token.
    sessions: Vec<String>,
    created_ms: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct UsersFile {
    users: Vec<StoredUser>,
}

/// What an unused join link grants.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct InviteGrant {
    /// The name proposed for the user (they may change it when joining).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Rooms the user is put in besides lobby (the node must be in them).
    #[serde(default)]
    pub rooms: Vec<String>,
    pub expires_ms: u64,
}

/// Why a join link was not taken, in words the page shows as they are.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedeemError {
    #[error("this join link is not valid: ask the node's owner for a new one")]
    Unknown,
    #[error(
        "this join link was already used: each link lets one person in once; ask for a new one"
    )]
    Used,
    #[error("this join link has expired: ask the node's owner for a new one")]
    Expired,
    #[error("choose a name: {0}")]
    BadName(String),
    #[error("the node could not store the new user: {0}")]
    Store(String),
}

pub struct Users {
    dir: PathBuf,
    users: Vec<StoredUser>,
    keys: HashMap<String, Keypair>,
    sessions: HashMap<String, String>,
}

/// SHA-256 of a token, hex: what is stored instead of it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token (32 bytes, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn invites_dir(web_dir: &Path) -> PathBuf {
    web_dir.join("invites")
}

impl Users {
    /// Read `users.json` from the web dir (none yet: no users).
    pub fn open(dir: &Path) -> Result<Self, String> {
        let path = dir.join("users.json");
        let file: UsersFile = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => UsersFile::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut users = Self {
            dir: dir.to_path_buf(),
            users: Vec::new(),
            keys: HashMap::new(),
            sessions: HashMap::new(),
        };
        for user in file.users {
            let key = hex::decode(&user.key)
                .ok()
                .and_then(|bytes| Keypair::from_protobuf_encoding(&bytes).ok());
            let Some(key) = key else {
                tracing::warn!(user = user.name, "web user with an unreadable key skipped");
                continue;
            };
            for session in &user.sessions {
                users.sessions.insert(session.clone(), user.id.clone());
            }
            users.keys.insert(user.id.clone(), key);
            users.users.push(user);
        }
        Ok(users)
    }

    fn save(&self) -> Result<(), String> {
        let file = UsersFile {
            users: self.users.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        write_private(&self.dir.join("users.json"), &bytes)
    }

    fn user(&self, stored: &StoredUser) -> Option<WebUser> {
        Some(WebUser {
            id: stored.id.clone(),
            name: stored.name.clone(),
            identity: self.keys.get(&stored.id)?.clone(),
            rooms: stored.rooms.clone(),
        })
    }

    /// The user holding this session token.
    pub fn by_session(&self, token: &str) -> Option<WebUser> {
        let id = self.sessions.get(&token_hash(token))?;
        self.by_id(id)
    }

    pub fn by_id(&self, id: &str) -> Option<WebUser> {
        self.users
            .iter()
            .find(|u| u.id == id)
            .and_then(|u| self.user(u))
    }

    /// Every web user (for the people list).
    pub fn all(&self) -> Vec<WebUser> {
        self.users.iter().filter_map(|u| self.user(u)).collect()
    }

    /// Take a join link: once only, before it expires. Makes a new user with a new key, in
    /// lobby and the rooms the link grants, and returns them with a new session token.
    pub fn redeem(
        &mut self,
        token: &str,
        name: Option<&str>,
        now_ms: u64,
    ) -> Result<(WebUser, String), RedeemError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RedeemError::Unknown);
        }
        let invites = invites_dir(&self.dir);
        let hash = token_hash(token);
        let open = invites.join(format!("{hash}.json"));
        let used = invites.join(format!("{hash}.used"));
        let grant: InviteGrant = match std::fs::read(&open) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| RedeemError::Unknown)?,
            Err(_) if used.exists() => return Err(RedeemError::Used),
            Err(_) => return Err(RedeemError::Unknown),
        };
        if grant.expires_ms < now_ms {
            return Err(RedeemError::Expired);
        }
        // A bad name leaves the link usable: the person tries again with another.
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or(grant.name.clone())
            .ok_or_else(|| RedeemError::BadName("the name is empty".into()))?;
        hark_proto::envelope::check_own_nick(&name)
            .map_err(|why| RedeemError::BadName(format!("{name:?}: {why}")))?;
        // The rename is the one step that can succeed only once.
        if std::fs::rename(&open, &used).is_err() {
            return Err(RedeemError::Used);
        }
        let identity = Keypair::generate_ed25519();
        let key = identity
            .to_protobuf_encoding()
            .map_err(|e| RedeemError::Store(e.to_string()))?;
        let mut id_bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        let session = new_token();
        let mut rooms: BTreeSet<String> = grant.rooms.iter().cloned().collect();
        rooms.insert("lobby".into());
        let stored = StoredUser {
            id: hex::encode(id_bytes),
            name,
            key: hex::encode(key),
            rooms,
            sessions: vec![token_hash(&session)],
            created_ms: now_ms,
        };
        self.keys.insert(stored.id.clone(), identity);
        self.sessions
            .insert(token_hash(&session), stored.id.clone());
        self.users.push(stored.clone());
        if let Err(e) = self.save() {
            self.users.pop();
            return Err(RedeemError::Store(e));
        }
        let user = self.user(&stored).ok_or(RedeemError::Unknown)?;
        Ok((user, session))
    }

    /// Change what the user's record holds (rooms, name) and store it.
    fn update(&mut self, id: &str, change: impl FnOnce(&mut StoredUser)) -> Result<(), String> {
        let Some(user) = self.users.iter_mut().find(|u| u.id == id) else {
            return Err("no such web user".into());
        };
        let before = user.clone();
        change(user);
        if let Err(e) = self.save() {
            if let Some(user) = self.users.iter_mut().find(|u| u.id == id) {
                *user = before;
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn add_room(&mut self, id: &str, room: &str) -> Result<(), String> {
        self.update(id, |u| {
            u.rooms.insert(room.to_owned());
        })
    }

    pub fn remove_room(&mut self, id: &str, room: &str) -> Result<(), String> {
        self.update(id, |u| {
            u.rooms.remove(room);
        })
    }

    pub fn rename(&mut self, id: &str, name: &str) -> Result<(), String> {
        hark_proto::envelope::check_own_nick(name).map_err(|why| format!("{name:?}: {why}"))?;
        self.update(id, |u| u.name = name.to_owned())
    }

    /// End one session (sign out).
    pub fn end_session(&mut self, token: &str) -> Result<(), String> {
        let hash = token_hash(token);
        let Some(id) = self.sessions.remove(&hash) else {
            return Ok(());
        };
        self.update(&id, |u| u.sessions.retain(|s| *s != hash))
    }

    /// A further session for a user who is already in (kept to [`MAX_SESSIONS`]).
    #[allow(dead_code)]
    pub fn new_session(&mut self, id: &str) -> Result<String, String> {
        let session = new_token();
        let hash = token_hash(&session);
        let mut dropped = Vec::new();
        self.update(id, |u| {
            u.sessions.push(hash.clone());
            while u.sessions.len() > MAX_SESSIONS {
                dropped.push(u.sessions.remove(0));
            }
        })?;
        for old in dropped {
            self.sessions.remove(&old);
        }
        self.sessions.insert(hash, id.to_owned());
        Ok(session)
    }
}

/// Write an unused join link's grant; returns its token.
pub fn write_invite(web_dir: &Path, grant: &InviteGrant) -> Result<String, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = invites_dir(web_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let token = new_token();
    let bytes = serde_json::to_vec(grant).map_err(|e| e.to_string())?;
    write_private(&dir.join(format!("{}.json", token_hash(&token))), &bytes)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_link_lets_one_person_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let grant = InviteGrant {
            name: Some("alice".into()),
            rooms: vec!["ops".into()],
            expires_ms: 2_000,
        };
        let token = write_invite(dir.path(), &grant).unwrap();
        let mut users = Users::open(dir.path()).unwrap();
        assert_eq!(
            users.redeem(&"0".repeat(64), None, 1_000).unwrap_err(),
            RedeemError::Unknown
        );
        assert_eq!(
            users.redeem("nonsense", None, 1_000).unwrap_err(),
            RedeemError::Unknown
        );
        let (user, session) = users.redeem(&token, None, 1_000).unwrap();
        assert_eq!(user.name, "alice");
        assert!(user.rooms.contains("ops") && user.rooms.contains("lobby"));
        assert_eq!(
            users.redeem(&token, Some("mallory"), 1_000).unwrap_err(),
            RedeemError::Used
        );
        // The session survives a restart, with the same key.
        let again = Users::open(dir.path()).unwrap();
        let found = again.by_session(&session).unwrap();
        assert_eq!(found.peer_id(), user.peer_id());
        assert!(again.by_session(&new_token()).is_none());
        let expired = write_invite(dir.path(), &grant).unwrap();
        let mut users = Users::open(dir.path()).unwrap();
        assert_eq!(
            users.redeem(&expired, None, 3_000).unwrap_err(),
            RedeemError::Expired
        );
        let unnamed = write_invite(
            dir.path(),
            &InviteGrant {
                expires_ms: 2_000,
                ..InviteGrant::default()
            },
        )
        .unwrap();
        assert!(matches!(
            users.redeem(&unnamed, Some("  "), 1_000),
            Err(RedeemError::BadName(_))
        ));
    }
}
