//! Records the git commit the programs are built from as `HARK_COMMIT` (shown by `--version`):
//! `git rev-parse --short HEAD` when the workspace is a git checkout of its own; otherwise the
//! `COMMIT` file that `make dist` writes into the source bundle; otherwise `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let commit = from_git(&root)
        .or_else(|| from_file(&root))
        .unwrap_or_else(|| {
            println!("cargo:rerun-if-changed=build.rs");
            "unknown".to_owned()
        });
    println!("cargo:rustc-env=HARK_COMMIT={commit}");
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit of the git checkout whose top is `root`. A source bundle unpacked somewhere
/// inside another repository must not take that repository's commit.
fn from_git(root: &Path) -> Option<String> {
    let top = PathBuf::from(git(root, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    let commit = git(root, &["rev-parse", "--short", "HEAD"])?;
    // Build again when HEAD moves: a new commit, a checkout, a packed ref.
    // (Only files that exist: cargo runs this script on every build for a missing one.)
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watch.extend(git(root, &["symbolic-ref", "-q", "HEAD"]));
    for name in &watch {
        if let Some(path) = git(
            root,
            &["rev-parse", "--path-format=absolute", "--git-path", name],
        ) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}

/// The `COMMIT` file of a source bundle: one line, the short commit.
fn from_file(root: &Path) -> Option<String> {
    let path = root.join("COMMIT");
    let text = std::fs::read_to_string(&path).ok()?;
    let commit = text.trim();
    let valid =
        !commit.is_empty() && commit.len() <= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    println!("cargo:rerun-if-changed={}", path.display());
    valid.then(|| commit.to_owned())
}
