#!/usr/bin/env bash
# `make dist`: everything needed to install Hark where there is no network, in target/dist/:
#   hark_VERSION_ARCH.deb, hark-node_VERSION_ARCH.deb   Debian packages
#   hark-VERSION-MACHINE-linux.tar.gz                   the same binaries, for other systems
#   hark-VERSION-src.tar.gz                             the source with every crate vendored
#   SHA256SUMS                                          over all of the above
# Release binaries come from $CARGO_TARGET_DIR (default target/); the output always goes to
# target/dist/ of this tree. Works from a git checkout and from the source bundle itself.
set -euo pipefail
umask 022

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
out=$root/target/dist
stage=$target/dist-stage

die() { echo "make dist: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps gzip sha256sum objcopy; do
    command -v "$tool" >/dev/null || die "$tool not found (make dist-deps installs it)"
done

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || die "no version in Cargo.toml"
if git -C "$root" rev-parse --show-toplevel 2>/dev/null | grep -qx "$root"; then
    commit=$(git -C "$root" rev-parse --short HEAD)
    from_git=1
elif [ -s COMMIT ]; then
    commit=$(tr -d '[:space:]' < COMMIT)
    from_git=0
else
    commit=unknown
    from_git=0
fi
arch=$(dpkg --print-architecture)
machine=$(uname -m)
echo "make dist: Hark $version (commit $commit), $arch"

"$cargo" build --release --locked -p hark-node -p hark-tui -p hark-tests \
    --bin hark-node --bin hark --bin hark-dist
bin=$target/release

rm -rf "$stage" "$out"
mkdir -p "$stage" "$out"
"$bin/hark-dist" "$stage/gen"
for page in "$stage"/gen/man/*.1; do gzip -9n < "$page" > "$page.gz"; done

# Binaries without their debug info (the release profile keeps line tables for backtraces
# during development; an installed program does not need them).
for b in hark hark-node; do
    objcopy --strip-debug "$bin/$b" "$stage/$b"
    chmod 0755 "$stage/$b"
done

# What goes where in a package: $1 root, $2 program.
put_common() {
    local pkgroot=$1 prog=$2
    install -D -m 0755 "$stage/$prog" "$pkgroot/usr/bin/$prog"
    install -D -m 0644 "$stage/gen/completions/bash/$prog" \
        "$pkgroot/usr/share/bash-completion/completions/$prog"
    install -D -m 0644 "$stage/gen/completions/zsh/_$prog" \
        "$pkgroot/usr/share/zsh/vendor-completions/_$prog"
    install -D -m 0644 "$stage/gen/completions/fish/$prog.fish" \
        "$pkgroot/usr/share/fish/vendor_completions.d/$prog.fish"
    install -d -m 0755 "$pkgroot/usr/share/doc/$prog" "$pkgroot/usr/share/man/man1"
    install -m 0644 README.md "$pkgroot/usr/share/doc/$prog/"
    install -m 0644 packaging/copyright "$pkgroot/usr/share/doc/$prog/copyright"
}

# dpkg-shlibdeps wants a debian/control to look at; the answer is the libraries the binary
# links (libc6, libgcc-s1, and libasound2 for hark) at the versions of this build system.
shlibs() {
    local tmp deps
    tmp=$(mktemp -d)
    mkdir "$tmp/debian"
    printf 'Source: hark\n\nPackage: %s\nArchitecture: any\n' "$1" > "$tmp/debian/control"
    deps=$(cd "$tmp" && dpkg-shlibdeps -O -e"$2" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    rm -rf "$tmp"
    [ -n "$deps" ] || die "dpkg-shlibdeps found no dependencies for $2"
    echo "$deps"
}

# $1 package, $2 its root, $3 extra Depends, $4 description (first line = synopsis).
build_deb() {
    local pkg=$1 pkgroot=$2 extra=$3 description=$4 depends size
    depends=$(shlibs "$pkg" "$pkgroot/usr/bin/$pkg")
    [ -z "$extra" ] || depends="$depends, $extra"
    size=$(du -sk --exclude=DEBIAN "$pkgroot" | cut -f1)
    install -d -m 0755 "$pkgroot/DEBIAN"
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: Hark developers <hark@localhost>"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        echo "Section: net"
        echo "Priority: optional"
        echo "Description: ${description%%$'\n'*}"
        sed 's/^$/./; s/^/ /' <<< "${description#*$'\n'}"
        echo " ."
        echo " Built from commit $commit."
    } > "$pkgroot/DEBIAN/control"
    (cd "$pkgroot" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
        | LC_ALL=C sort -z | xargs -0 md5sum) > "$pkgroot/DEBIAN/md5sums"
    chmod 0644 "$pkgroot/DEBIAN/control" "$pkgroot/DEBIAN/md5sums"
    dpkg-deb --build -Zxz --root-owner-group "$pkgroot" \
        "$out/${pkg}_${version}_${arch}.deb" >/dev/null
    echo "make dist: ${pkg}_${version}_${arch}.deb  Depends: $depends"
}

# hark-node: the relay.
r=$stage/deb/hark-node
put_common "$r" hark-node
install -m 0644 "$stage"/gen/man/hark-node*.1.gz "$r/usr/share/man/man1/"
install -m 0644 docs/operations.md docs/protocol.md docs/security.md docs/architecture.md \
    "$r/usr/share/doc/hark-node/"
install -D -m 0644 packaging/hark-node.service "$r/usr/lib/systemd/system/hark-node.service"
install -D -m 0644 packaging/hark-node.env "$r/usr/share/hark-node/hark-node.env"
for script in postinst prerm postrm; do
    install -D -m 0755 "packaging/deb/hark-node.$script" "$r/DEBIAN/$script"
done
build_deb hark-node "$r" "passwd" "Hark node without a screen: relay, bot, JSON-lines control
Hark is chat and push-to-talk voice for private networks with no internet and no server.
hark-node is the node headless: an always-on relay that keeps every room's history for late
joiners (the hark-node service: user hark, options in /etc/hark/hark-node.env, state in
/var/lib/hark), or a bot driven by JSON lines on stdin and stdout.
Installing never replaces an existing key, configuration or history."
deps_node=$(dpkg-deb -f "$out/hark-node_${version}_${arch}.deb" Depends)

# hark: the terminal client.
r=$stage/deb/hark
put_common "$r" hark
install -m 0644 "$stage/gen/man/hark.1.gz" "$r/usr/share/man/man1/"
install -m 0644 docs/ui.md docs/operations.md docs/security.md "$r/usr/share/doc/hark/"
build_deb hark "$r" "" "Hark: chat and push-to-talk for private networks
Hark is chat and push-to-talk voice for private networks with no internet and no server:
ships, field sites, factories, labs, air-gapped offices. hark is the terminal client; it
runs a node of its own, finds its peers on the LAN by mDNS, keeps each room's history and
carries walkie-talkie voice (Opus) through the sound card."
dpkg-deb -f "$out/hark_${version}_${arch}.deb" Depends | grep -q libasound2 \
    || die "hark does not depend on libasound2: is it linked against ALSA?"
[ -n "$deps_node" ]

# The plain tarball: the same files in a prefix layout.
name=hark-$version-$machine-linux
t=$stage/$name
install -D -m 0755 "$stage/hark" "$t/bin/hark"
install -D -m 0755 "$stage/hark-node" "$t/bin/hark-node"
install -d "$t/share/man/man1" "$t/share/doc/hark" "$t/systemd"
install -m 0644 "$stage"/gen/man/*.1 "$t/share/man/man1/"
cp -r "$stage/gen/completions" "$t/share/completions"
install -m 0644 README.md docs/*.md packaging/copyright "$t/share/doc/hark/"
install -m 0644 packaging/hark-node.service packaging/hark-node.env "$t/systemd/"
cat > "$t/INSTALL" <<EOF
Hark $version (commit $commit), $machine Linux binaries.

  bin/hark, bin/hark-node     copy to /usr/local/bin (they need glibc; hark needs libasound.so.2)
  share/man/man1/*.1          copy to /usr/local/share/man/man1
  share/completions/          bash, zsh and fish completions
  systemd/                    the relay service and its options file; the unit expects
                              /usr/bin/hark-node, a user "hark" and /var/lib/hark
  share/doc/hark/             the documentation (operations.md: installing and running)

On Debian and Ubuntu, install the .deb packages instead.
EOF
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"

# The source bundle: the commit's tree, every crate in vendor/, a cargo config that uses only
# vendor/, and COMMIT for `--version`.
src=hark-$version
s=$stage/src/$src
mkdir -p "$s"
if [ "$from_git" = 1 ]; then
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        echo "make dist: note: uncommitted changes are not in the source bundle (it is commit $commit)" >&2
    fi
    git archive --format=tar HEAD | tar -C "$s" -xf -
else
    tar -C "$root" --exclude=./target --exclude=./vendor --exclude=./.cargo -cf - . | tar -C "$s" -xf -
fi
echo "$commit" > "$s/COMMIT"
mkdir -p "$s/.cargo"
# The project's build settings; from a source bundle, they already point at its vendor/.
cp "$root/.cargo/config.toml" "$s/.cargo/config.toml"
if [ -d "$root/vendor" ] && [ "$from_git" = 0 ]; then
    # Made from a source bundle: its vendor/ is already complete.
    cp -r "$root/vendor" "$s/vendor"
else
    (cd "$s" && "$cargo" vendor --quiet --locked --versioned-dirs vendor >/dev/null) \
        || die "cargo vendor failed (it needs the network, or the crates in ~/.cargo)"
    cat >> "$s/.cargo/config.toml" <<'EOF'

# Build from vendor/ only, never from the network: cargo build --offline --locked
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF
fi
tar -C "$stage/src" --owner=0 --group=0 --numeric-owner -czf "$out/$src-src.tar.gz" "$src"

(cd "$out" && sha256sum -- *.deb *.tar.gz > SHA256SUMS)
echo "make dist: wrote $out:"
(cd "$out" && ls -l)
