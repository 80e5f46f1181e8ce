//! The packages of `make dist`, used as an operator would (issue 14). Run by `make dist-check`,
//! as root, after `make dist`: the tests install into this machine, so `make test` leaves them
//! alone (`#[ignore]`).
//!
//! - `packages_install_chat_upgrade_and_remove`: contents, `dpkg -i`, `--version`, the unit
//!   (`systemd-analyze verify`), a loopback chat between the installed relay (as user `hark`,
//!   data in /var/lib/hark) and a fresh build, an upgrade in place that keeps the identity and
//!   history, and `dpkg -r` that keeps keys, config and history.
//! - `man_pages_agree_with_help`: `man` renders the pages and lists the options `--help` lists.
//! - `source_bundle_builds_offline`: the vendored source bundle builds with
//!   `cargo build --offline --locked --bins` in a network namespace with only `lo`, with an
//!   empty CARGO_HOME. A debug build without debug info and with every dependency at
//!   opt-level 0: it compiles and links every crate of every program from vendor/ as a release
//!   build would (the same sources, build scripts and C libraries), much faster.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use hark_tests::hark_node_bin;
use serde_json::{json, Value};

const NODE_PKG: &str = "hark-node";
const HARK_PKG: &str = "hark";
const ENV_FILE: &str = "/etc/hark/hark-node.env";
const KEY_FILE: &str = "/etc/hark/swarm.key";
const STATE_DIR: &str = "/var/lib/hark";
const UNIT: &str = "/usr/lib/systemd/system/hark-node.service";
const STEP: Duration = Duration::from_secs(30);

fn dist_dir() -> PathBuf {
    match std::env::var_os("HARK_DIST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist"),
    }
}

/// The one file in target/dist whose name starts with `prefix` and ends with `suffix`.
fn dist_file(prefix: &str, suffix: &str) -> PathBuf {
    let dir = dist_dir();
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run make dist first)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {prefix}*{suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

fn require_root() {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(uid, 0, "make dist-check installs packages: run it as root");
}

/// Runs `program args` under `timeout` (killed after `secs`), returning its output.
fn run_for(secs: u64, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["--kill-after=5", &secs.to_string(), program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs a command that must succeed within `secs`; its stdout.
fn ok(secs: u64, program: &str, args: &[&str]) -> String {
    let out = run_for(secs, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed(pkg: &str) -> bool {
    run_for(30, "dpkg-query", &["-W", "-f=${Status}", pkg])
        .stdout
        .starts_with(b"install ok installed")
}

/// A `hark-node --json` process: JSON lines out, read on a thread; killed on drop.
struct JsonNode {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    peer_id: String,
    addr: String,
    what: String,
}

impl JsonNode {
    fn start(what: &str, program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "hark_node=info,warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({program}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        let mut node = JsonNode {
            stdin: child.stdin.take(),
            child,
            lines,
            peer_id: String::new(),
            addr: String::new(),
            what: what.to_owned(),
        };
        let ready = node.wait("ready", STEP, |e| e["event"] == "ready");
        node.peer_id = ready["peer_id"].as_str().unwrap_or_default().to_owned();
        node.addr = ready["listen"][0].as_str().unwrap_or_default().to_owned();
        assert!(
            node.addr.contains("/p2p/"),
            "{what}: ready without an address: {ready}"
        );
        node
    }

    fn send(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write a command: {e}", self.what));
    }

    fn wait(
        &mut self,
        what: &str,
        within: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(event) if pred(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("{}: no {what} within {within:?}", self.what),
            }
        }
    }

    /// Closes stdin (a JSON node then quits) and waits for a clean exit.
    fn quit(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{} exited with {status}", self.what);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not quit within 15 s of the end of its input",
            self.what
        );
    }
}

impl Drop for JsonNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packaged relay as the service runs it: user `hark`, data in /var/lib/hark, the
/// network key in /etc/hark; loopback only, no mDNS.
fn start_installed() -> JsonNode {
    JsonNode::start(
        "installed hark-node",
        "runuser",
        &[
            "-u",
            "hark",
            "--",
            "/usr/bin/hark-node",
            "--json",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            STATE_DIR,
            "--network-key",
            KEY_FILE,
            "--name",
            "installed",
        ],
    )
}

fn start_fresh(data_dir: &Path, peer: &str) -> JsonNode {
    let bin = hark_node_bin();
    JsonNode::start(
        "fresh hark-node",
        bin.to_str().expect("utf-8 path"),
        &[
            "--json",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--network-key",
            KEY_FILE,
            "--name",
            "fresh",
            "--peer",
            peer,
        ],
    )
}

fn is_message(event: &Value, text: &str) -> bool {
    event["event"] == "message" && event["room"] == "lobby" && event["text"] == text
}

fn uid_of(user: &str) -> u32 {
    let line = ok(10, "getent", &["passwd", user]);
    line.split(':')
        .nth(2)
        .and_then(|u| u.parse().ok())
        .expect("uid in getent passwd")
}

#[test]
#[ignore = "installs packages into this machine: run by make dist-check, as root"]
fn packages_install_chat_upgrade_and_remove() {
    require_root();
    let node_deb = dist_file("hark-node_", ".deb");
    let hark_deb = dist_file("hark_", ".deb");
    let node_deb = node_deb.to_str().unwrap();
    let hark_deb = hark_deb.to_str().unwrap();

    // What the packages hold.
    let contents = ok(60, "dpkg-deb", &["-c", node_deb]);
    println!("dpkg-deb -c {node_deb}:\n{contents}");
    for path in [
        "./usr/bin/hark-node",
        "./usr/lib/systemd/system/hark-node.service",
        "./usr/share/man/man1/hark-node.1.gz",
        "./usr/share/man/man1/hark-node-keygen.1.gz",
        "./usr/share/bash-completion/completions/hark-node",
        "./usr/share/zsh/vendor-completions/_hark-node",
        "./usr/share/fish/vendor_completions.d/hark-node.fish",
        "./usr/share/doc/hark-node/operations.md",
        "./usr/share/doc/hark-node/copyright",
        "./usr/share/hark-node/hark-node.env",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{node_deb} holds {path}"
        );
    }
    assert!(
        !contents.contains("./etc/"),
        "nothing in /etc is shipped, so nothing is replaced"
    );
    let info = ok(60, "dpkg-deb", &["-I", node_deb]);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "{node_deb} has a {script}:\n{info}");
    }
    let contents = ok(60, "dpkg-deb", &["-c", hark_deb]);
    println!("dpkg-deb -c {hark_deb}:\n{contents}");
    for path in [
        "./usr/bin/hark",
        "./usr/share/man/man1/hark.1.gz",
        "./usr/share/bash-completion/completions/hark",
        "./usr/share/zsh/vendor-completions/_hark",
        "./usr/share/fish/vendor_completions.d/hark.fish",
        "./usr/share/doc/hark/ui.md",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{hark_deb} holds {path}"
        );
    }
    let depends = ok(30, "dpkg-deb", &["-f", hark_deb, "Depends"]);
    assert!(
        depends.contains("libasound2"),
        "hark depends on ALSA: {depends}"
    );
    assert!(
        depends.contains("libc6"),
        "hark depends on libc6: {depends}"
    );

    // A clean start: no Hark package installed (a failed run may have left them).
    for pkg in [HARK_PKG, NODE_PKG] {
        if installed(pkg) {
            ok(300, "dpkg", &["-r", pkg]);
        }
    }
    let env_existed = Path::new(ENV_FILE).exists();

    ok(600, "dpkg", &["-i", node_deb, hark_deb]);
    assert!(installed(NODE_PKG) && installed(HARK_PKG));

    // The user, the config and the state dir the postinst makes (or finds).
    let hark_uid = uid_of("hark");
    let state = std::fs::metadata(STATE_DIR).expect("/var/lib/hark exists");
    assert!(state.is_dir());
    assert_eq!(state.uid(), hark_uid, "/var/lib/hark belongs to hark");
    if !env_existed {
        assert_eq!(
            std::fs::read_to_string(ENV_FILE).expect("hark-node.env written"),
            std::fs::read_to_string("/usr/share/hark-node/hark-node.env").unwrap(),
            "a new install writes the default options"
        );
    }
    // The operator's own choices, which no later install, upgrade or removal may touch.
    let mark = format!("# dist-check {}\n", std::process::id());
    std::fs::OpenOptions::new()
        .append(true)
        .open(ENV_FILE)
        .and_then(|mut f| f.write_all(mark.as_bytes()))
        .expect("append to hark-node.env");
    if !Path::new(KEY_FILE).exists() {
        ok(30, "/usr/bin/hark-node", &["keygen", "--network", KEY_FILE]);
        ok(10, "chgrp", &["hark", KEY_FILE]);
        ok(10, "chmod", &["0640", KEY_FILE]);
    }
    let env_text = std::fs::read_to_string(ENV_FILE).unwrap();
    let key_bytes = std::fs::read(KEY_FILE).unwrap();

    // Version and commit: the installed programs and a fresh build of this tree agree.
    let fresh_bin = hark_node_bin();
    let fresh_version = ok(30, fresh_bin.to_str().unwrap(), &["--version"]);
    let version = ok(30, "/usr/bin/hark-node", &["--version"]);
    println!("installed: {version}fresh:     {fresh_version}");
    assert!(
        version.starts_with("hark-node ") && version.contains("(commit "),
        "{version}"
    );
    assert_eq!(
        version, fresh_version,
        "the package is built from this tree"
    );
    let hark_version = ok(30, "/usr/bin/hark", &["--version"]);
    assert_eq!(
        hark_version.trim_start_matches("hark "),
        version.trim_start_matches("hark-node ")
    );

    // The unit, as systemd reads it.
    if run_for(10, "systemd-analyze", &["--version"])
        .status
        .success()
    {
        let out = run_for(120, "systemd-analyze", &["verify", UNIT]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("systemd-analyze verify {UNIT}: {}\n{text}", out.status);
        assert!(
            out.status.success(),
            "systemd-analyze verify {UNIT}:\n{text}"
        );
    } else {
        println!("systemd-analyze not available: unit not verified");
    }
    assert!(ok(30, "man", &["-w", "hark-node"]).contains("/usr/share/man/man1/hark-node.1"));

    // A loopback chat: the installed relay and a fresh build, sharing the network key.
    let fresh_dir = tempfile::tempdir().unwrap();
    let (relay_id, texts) = {
        let mut relay = start_installed();
        let mut fresh = start_fresh(fresh_dir.path(), &relay.addr);
        let relay_id = relay.peer_id.clone();
        let fresh_id = fresh.peer_id.clone();
        fresh.wait("connection to the relay", STEP, |e| {
            e["event"] == "peer_connected" && e["peer_id"] == relay_id.as_str()
        });
        let hello = format!("hello from a fresh build {}", std::process::id());
        fresh.send(json!({"cmd": "send", "room": "lobby", "text": hello}));
        let got = relay.wait("the fresh build's message", STEP, |e| is_message(e, &hello));
        assert_eq!(got["from"], fresh_id.as_str());
        let reply = format!("hello from the package {}", std::process::id());
        relay.send(json!({"cmd": "send", "room": "lobby", "text": reply}));
        fresh.wait("the relay's reply", STEP, |e| is_message(e, &reply));
        relay.quit();
        fresh.quit();
        (relay_id, [hello, reply])
    };

    // Upgrade in place (the same package again): config, key, identity and history kept.
    ok(600, "dpkg", &["-i", node_deb, hark_deb]);
    assert_eq!(
        std::fs::read_to_string(ENV_FILE).unwrap(),
        env_text,
        "config kept"
    );
    assert_eq!(std::fs::read(KEY_FILE).unwrap(), key_bytes, "key kept");
    {
        let mut relay = start_installed();
        assert_eq!(relay.peer_id, relay_id, "identity kept across the upgrade");
        relay.send(json!({"cmd": "history", "room": "lobby", "limit": 1000}));
        let history = relay.wait("history", STEP, |e| e["event"] == "history");
        let kept: Vec<&str> = history["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["text"].as_str()).collect())
            .unwrap_or_default();
        for text in &texts {
            assert!(
                kept.contains(&text.as_str()),
                "history keeps {text:?}: {kept:?}"
            );
        }
        relay.quit();
    }

    // Removal: programs gone; keys, config, identity and history stay.
    ok(300, "dpkg", &["-r", HARK_PKG, NODE_PKG]);
    assert!(!installed(NODE_PKG) && !installed(HARK_PKG));
    assert!(!Path::new("/usr/bin/hark-node").exists() && !Path::new("/usr/bin/hark").exists());
    assert_eq!(
        std::fs::read_to_string(ENV_FILE).unwrap(),
        env_text,
        "config kept"
    );
    assert_eq!(std::fs::read(KEY_FILE).unwrap(), key_bytes, "key kept");
    assert!(
        Path::new(STATE_DIR).join("hark.db").exists(),
        "history kept"
    );
    assert_eq!(
        uid_of("hark"),
        hark_uid,
        "the hark user stays (it owns the data)"
    );
}

/// Every long option and sub-command of `--help`, and of the man page as `man` renders it.
fn options(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if word.len() > 2 && word.starts_with("--") && !word.starts_with("---") {
            found.insert(word.trim_end_matches('-').to_owned());
        }
    }
    found
}

fn rendered_man(page: &Path) -> String {
    let out = Command::new("timeout")
        .args(["30", "man", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("GROFF_NO_SGR", "1")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .expect("man");
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Drop overstrike (bold x\bx, underline _\bx) in case the pager left it in.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
#[ignore = "needs the man pages of make dist: run by make dist-check"]
fn man_pages_agree_with_help() {
    let tarball = dist_file("hark-", "-linux.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    ok(
        120,
        "tar",
        &[
            "-C",
            dir.path().to_str().unwrap(),
            "-xzf",
            tarball.to_str().unwrap(),
        ],
    );
    let top = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let man1 = top.join("share/man/man1");
    for (program, page, sub) in [
        ("hark-node", "hark-node.1", None),
        ("hark-node", "hark-node-keygen.1", Some("keygen")),
        ("hark", "hark.1", None),
    ] {
        let bin = top.join("bin").join(program);
        let mut args: Vec<&str> = sub.into_iter().collect();
        args.push("--help");
        let help = ok(30, bin.to_str().unwrap(), &args);
        let man = rendered_man(&man1.join(page));
        println!("---- man {page}\n{man}");
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "VERSION"] {
            assert!(man.contains(section), "{page} has {section}");
        }
        let in_help = options(&help);
        let in_man = options(&man);
        assert!(!in_help.is_empty());
        let missing: Vec<_> = in_help.difference(&in_man).collect();
        assert!(
            missing.is_empty(),
            "{page} lacks {missing:?} that --help lists:\n{help}"
        );
        // The man page may name another program's options in its text (`systemctl enable
        // --now`), never options of its own program that do not exist.
        let others: &[&str] = match page {
            "hark-node.1" => &["--now"],
            "hark-node-keygen.1" => &["--network-key"],
            _ => &[],
        };
        let unknown: Vec<_> = in_man
            .difference(&in_help)
            .filter(|o| !others.contains(&o.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{page} names options {unknown:?} that --help does not"
        );
        if page == "hark-node.1" {
            assert!(man.contains("keygen") && help.contains("keygen"));
            assert!(man.contains("/etc/hark/hark-node.env") && man.contains("EXIT STATUS"));
        }
        let version = ok(30, bin.to_str().unwrap(), &["--version"]);
        let number = version.split_whitespace().nth(1).unwrap();
        assert!(man.contains(number), "{page} names version {number}");
    }
}

/// A network namespace that is deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("hark-dist-{}", std::process::id());
        let _ = run_for(10, "ip", &["netns", "del", &name]);
        ok(10, "ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ok(10, "ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_for(10, "ip", &["netns", "del", &self.0]);
    }
}

#[test]
#[ignore = "builds every program of the source bundle (minutes), as root: run by make dist-check"]
fn source_bundle_builds_offline() {
    require_root();
    let bundle = dist_file("hark-", "-src.tar.gz");
    let work = tempfile::tempdir().unwrap();
    ok(
        600,
        "tar",
        &[
            "-C",
            work.path().to_str().unwrap(),
            "-xzf",
            bundle.to_str().unwrap(),
        ],
    );
    let src = std::fs::read_dir(work.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(src.join("vendor").is_dir() && src.join(".cargo/config.toml").is_file());
    // The bundle builds from vendor/ with the project's own build settings (the fast
    // signature backend), not only the vendored-source redirect.
    let config = std::fs::read_to_string(src.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("vendored-sources") && config.contains("curve25519_dalek_backend"),
        "the bundle's .cargo/config.toml lacks a section:\n{config}"
    );
    assert!(
        !src.join(".git").exists(),
        "the bundle is not a git checkout"
    );
    let cargo_home = work.path().join("empty-cargo-home");
    std::fs::create_dir(&cargo_home).unwrap();

    let ns = Netns::new();
    let routes = ok(10, "ip", &["-n", &ns.0, "route", "show"]);
    assert!(
        routes.trim().is_empty(),
        "the namespace has no route anywhere: {routes}"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new("timeout")
        .args([
            "--kill-after=10",
            "3600",
            "ip",
            "netns",
            "exec",
            &ns.0,
            "env",
        ])
        .arg(format!("CARGO_HOME={}", cargo_home.display()))
        .arg(format!("CARGO_TARGET_DIR={}", src.join("target").display()))
        // The quickest build that still compiles and links everything: no debug info, no
        // incremental cache, dependencies unoptimised (the bundle's profile says opt-level 1).
        .args([
            "CARGO_PROFILE_DEV_DEBUG=0",
            "CARGO_INCREMENTAL=0",
            cargo.as_str(),
            "build",
            "--offline",
            "--locked",
            "--bins",
            "--config",
            "profile.dev.package.\"*\".opt-level=0",
        ])
        .current_dir(&src)
        .stdin(Stdio::null())
        .status()
        .expect("ip netns exec cargo build");
    println!(
        "offline build of the source bundle: {:?}",
        started.elapsed()
    );
    assert!(
        status.success(),
        "cargo build --offline --locked in {}: {status}",
        ns.0
    );
    drop(ns);
    for fetched in ["registry", "git"] {
        assert!(
            !cargo_home.join(fetched).exists(),
            "nothing was fetched into CARGO_HOME/{fetched}"
        );
    }

    // Built from the bundle, the programs still know their commit.
    let built = src.join("target/debug/hark-node");
    let version = ok(30, built.to_str().unwrap(), &["--version"]);
    let commit = std::fs::read_to_string(src.join("COMMIT")).unwrap();
    assert!(
        version.contains(&format!("(commit {})", commit.trim())),
        "{version} names the commit in COMMIT ({commit})"
    );
}
