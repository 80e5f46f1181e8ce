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

/// A site with two LAN segments that have no route between them (two bridges, two subnets,
/// each host with only its own subnet's route), and one relay host with a leg in each
/// (`eth0` on segment A, `eth1` on segment B) that forwards no IP packets.
///
/// Segment A is 10.232.N.0/24, segment B 10.233.N.0/24 (N from the process id); the relay is
/// .254 on both. Hosts are named by segment: [`Site::a`] and [`Site::b`] list them.
pub struct Site {
    /// Host namespaces on segment A, then on segment B.
    pub a: Vec<String>,
    pub b: Vec<String>,
    pub relay: String,
    bridges: Vec<String>,
    subnet: u32,
}

impl Site {
    pub fn new(tag: &str, per_segment: usize) -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let subnet = 1 + (id % 250);
        let mut site = Site {
            a: Vec::new(),
            b: Vec::new(),
            relay: format!("hk{id}{tag}relay"),
            bridges: Vec::new(),
            subnet,
        };
        for segment in ["a", "b"] {
            let bridge = format!("hk{id}{tag}br{segment}");
            ip(&["netns", "add", &bridge])?;
            site.bridges.push(bridge.clone());
            ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        }
        ip(&["netns", "add", &site.relay])?;
        ip(&["-n", &site.relay, "link", "set", "lo", "up"])?;
        // The relay joins the segments for Hark only: no IP forwarding between its legs.
        sysctl(&site.relay, "net.ipv4.ip_forward", "0")?;
        for (leg, segment) in ["eth0", "eth1"].iter().zip(0..2) {
            let outer = format!("r{segment}");
            ip(&[
                "-n",
                &site.relay,
                "link",
                "add",
                leg,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &site.bridges[segment],
            ])?;
            site.plug(&site.relay.clone(), leg, segment, &outer, 254)?;
        }
        for segment in 0..2 {
            for i in 0..per_segment {
                let host = format!("hk{id}{tag}{}{i}", ["a", "b"][segment]);
                ip(&["netns", "add", &host])?;
                if segment == 0 {
                    site.a.push(host.clone());
                } else {
                    site.b.push(host.clone());
                }
                ip(&["-n", &host, "link", "set", "lo", "up"])?;
                let outer = format!("h{i}");
                ip(&[
                    "-n",
                    &host,
                    "link",
                    "add",
                    "eth0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &outer,
                    "netns",
                    &site.bridges[segment],
                ])?;
                site.plug(&host, "eth0", segment, &outer, (i + 1) as u32)?;
            }
        }
        Ok(site)
    }

    /// Bring up `leg` of `host` on `segment` with address .`last`, its outer end on the bridge.
    fn plug(
        &self,
        host: &str,
        leg: &str,
        segment: usize,
        outer: &str,
        last: u32,
    ) -> Result<(), String> {
        let bridge = &self.bridges[segment];
        ip(&["-n", bridge, "link", "set", outer, "master", "br0"])?;
        ip(&["-n", bridge, "link", "set", outer, "up"])?;
        let addr = format!("{}/24", self.address(segment, last));
        ip(&["-n", host, "addr", "add", &addr, "dev", leg])?;
        ip(&["-n", host, "link", "set", leg, "up"])
    }

    /// The address `.last` on segment 0 (A) or 1 (B).
    pub fn address(&self, segment: usize, last: u32) -> String {
        format!("10.{}.{}.{last}", 232 + segment, self.subnet)
    }

    /// Whether `host` has a route to `addr` (the kernel's answer to `ip route get`).
    pub fn has_route(host: &str, addr: &str) -> bool {
        Command::new("ip")
            .args(["-n", host, "route", "get", addr])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The command prefix that runs a program inside `host`.
    pub fn exec_prefix(host: &str) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), host.to_owned()]
    }
}

/// Set a sysctl inside a namespace (through /proc, no `sysctl` binary needed).
fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("echo {value} > {path}"),
        ])
        .output()
        .map_err(|e| format!("sysctl {key} in {ns}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "sysctl {key} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for host in self.a.iter().chain(&self.b).chain([&self.relay]) {
            let _ = ip(&["netns", "del", host]);
        }
        for bridge in &self.bridges {
            let _ = ip(&["netns", "del", bridge]);
        }
    }
}
