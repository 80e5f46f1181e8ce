//! Network namespaces joined by a bridge, for tests that need a real (but private) LAN:
//! mDNS above all, which must never run in the root namespace. Everything is torn down on drop.

use std::process::Command;

/// Why namespaces cannot be made here (not root, no `ip`), or None when they can.
pub fn unavailable() -> Option<String> {
    // SAFETY-free check of the effective user through `id -u`, to avoid a libc dependency.
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    None
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `count` host namespaces, each with one veth into a bridge that lives in its own namespace.
/// Host `i` gets 10.231.N.(i+1)/24 where N is derived from the process id, on interface `eth0`.
pub struct Lan {
    pub hosts: Vec<String>,
    bridge_ns: String,
}

impl Lan {
    pub fn new(tag: &str, count: usize) -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let bridge_ns = format!("hk{id}{tag}br");
        let mut lan = Lan {
            hosts: Vec::new(),
            bridge_ns: bridge_ns.clone(),
        };
        ip(&["netns", "add", &bridge_ns])?;
        ip(&["-n", &bridge_ns, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &bridge_ns, "link", "set", "br0", "up"])?;
        let subnet = 1 + (id % 250);
        for i in 0..count {
            let host = format!("hk{id}{tag}{i}");
            ip(&["netns", "add", &host])?;
            lan.hosts.push(host.clone());
            let outer = format!("v{i}");
            ip(&[
                "-n", &host, "link", "add", "eth0", "type", "veth", "peer", "name", &outer,
                "netns", &bridge_ns,
            ])?;
            ip(&["-n", &bridge_ns, "link", "set", &outer, "master", "br0"])?;
            ip(&["-n", &bridge_ns, "link", "set", &outer, "up"])?;
            ip(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("10.231.{subnet}.{}/24", i + 1),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// The command prefix that runs a program inside host `i`.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.hosts[i].clone(),
        ]
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", host]);
        }
        let _ = ip(&["netns", "del", &self.bridge_ns]);
    }
}
