//! `hark-dist OUT_DIR`: the man pages and shell completions of `hark` and `hark-node`, made
//! from the clap definitions the programs parse (`hark_node::cli::{HarkCli, NodeCli}`), for
//! the packages of `make dist`. Writes `OUT_DIR/man/*.1` and
//! `OUT_DIR/completions/{bash,zsh,fish}/…` under the names each shell looks for.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use hark_node::cli::{HarkCli, NodeCli};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [dir] if !dir.starts_with('-') => PathBuf::from(dir),
        _ => {
            eprintln!("usage: hark-dist OUT_DIR  (writes OUT_DIR/man and OUT_DIR/completions)");
            return ExitCode::from(2);
        }
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hark-dist: {e}");
            ExitCode::from(1)
        }
    }
}

fn generate(out: &Path) -> Result<(), String> {
    let man = out.join("man");
    mkdir(&man)?;
    let hark = HarkCli::command();
    // Built, so that sub-commands carry the version they inherit; `hark-node help` is
    // there, but needs no page (nor a place in the completions) of its own.
    let mut node = NodeCli::command().disable_help_subcommand(true);
    node.build();
    write_man(&man, hark.clone(), HARK_EXTRA)?;
    write_man(&man, node.clone(), NODE_EXTRA)?;
    for sub in node.get_subcommands().filter(|s| !s.is_hide_set()) {
        // `hark-node-keygen(1)`.
        // clap names are `&'static str` (no "string" feature); one page per run, so leaking
        // the few bytes is the simple way.
        let name: &'static str = format!("hark-node-{}", sub.get_name()).leak();
        let page = sub
            .clone()
            .name(name)
            .bin_name(format!("hark-node {}", sub.get_name()));
        write_man(&man, page, &sub_extra(name))?;
    }
    for (shell, dir, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let dir = out.join("completions").join(dir);
        mkdir(&dir)?;
        for cmd in [&hark, &node] {
            let name = cmd.get_name().to_owned();
            let path = dir.join(file.replace("{}", &name));
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
            write(&path, &buf)?;
        }
    }
    Ok(())
}

/// clap_mangen's sections (name, synopsis, description, options, sub-commands) then `extra`
/// (roff: keys, files, environment, exit status, examples, see also) then the version.
fn write_man(dir: &Path, cmd: clap::Command, extra: &str) -> Result<(), String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("Hark manual")
        .source(format!("Hark {}", hark_node::cli::VERSION));
    let mut page = Vec::new();
    let render = |page: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(page)?;
        // No hyphenation, ragged right: option names, paths and addresses stay whole.
        page.write_all(b".nh\n.ad l\n")?;
        man.render_name_section(page)?;
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(page)?;
        }
        if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(page)?;
        }
        page.write_all(extra.as_bytes())?;
        man.render_version_section(page)
    };
    render(&mut page).map_err(|e| format!("rendering {}: {e}", man.get_filename()))?;
    // An ellipsis in the help text (`12D3Koo…`) becomes three dots, which every terminal and
    // `man` in the C locale can show.
    let page = String::from_utf8_lossy(&page).replace('\u{2026}', "...");
    write(&dir.join(man.get_filename()), page.as_bytes())
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn sub_extra(name: &str) -> String {
    match name {
        "hark-node-keygen" => KEYGEN_EXTRA.to_owned(),
        _ => ".SH \"SEE ALSO\"\n\\fBhark-node\\fR(1)\n".to_owned(),
    }
}

const HARK_EXTRA: &str = r#".SH KEYS
Inside hark, \fBF1\fR lists the keys and commands (\fI/usr/share/doc/hark/ui.md\fR).
.SH FILES
.TP
\fI~/.local/share/hark/\fR (or \fB\-\-data\-dir\fR)
The data dir: \fIhark.db\fR holds the identity, the rooms joined and every room's history;
\fIhark.log\fR the log; \fIlock\fR keeps a second program off the same data dir.
Back it up to keep the identity; delete it to start as a new peer.
.SH ENVIRONMENT
.TP
\fBUSER\fR
The default name (\fB\-\-name\fR).
.TP
\fBXDG_DATA_HOME\fR
Where the default data dir lives (\fI$XDG_DATA_HOME/hark\fR).
.TP
\fBRUST_LOG\fR
What goes to \fIhark.log\fR, e.g. \fBhark_node=debug\fR.
.SH "EXIT STATUS"
0 when the user quits; 2 for a bad option, an unreadable file, a data dir in use, or no
terminal.
.SH EXAMPLES
.TP
\fBhark\fR
Join \fBlobby\fR and find the other machines on the LAN.
.TP
\fBhark \-\-network\-key /etc/hark/swarm.key \-\-join ops\fR
Only talk to machines with the same network key; join the room \fBops\fR too.
.TP
\fBhark \-\-no\-mdns \-\-peer /ip4/10.0.0.5/tcp/7000/p2p/12D3Koo...\fR
Reach a relay on another segment, without multicast discovery.
.SH "SEE ALSO"
\fBhark-node\fR(1), \fBhark-node-keygen\fR(1),
\fI/usr/share/doc/hark/\fR (README.md, ui.md, operations.md, security.md)
"#;

const NODE_EXTRA: &str = r#".SH FILES
.TP
\fI~/.local/share/hark/\fR (or \fB\-\-data\-dir\fR)
The data dir: \fIhark.db\fR holds the identity (so the peer id stays the same across
restarts), the rooms joined and every room's history; \fIlock\fR keeps a second node off the
same data dir.
.TP
\fI/etc/hark/hark-node.env\fR
Options of the packaged relay service (\fBHARK_NODE_OPTS\fR), read by \fIhark-node.service\fR.
Written at installation only when absent; never overwritten.
.TP
\fI/etc/hark/swarm.key\fR
The usual place of the network key (\fBhark-node keygen\fR); readable by group \fBhark\fR.
.TP
\fI/var/lib/hark/\fR
The data dir of the packaged relay service, owned by the system user \fBhark\fR.
.SH ENVIRONMENT
.TP
\fBUSER\fR
The default name (\fB\-\-name\fR).
.TP
\fBXDG_DATA_HOME\fR
Where the default data dir lives (\fI$XDG_DATA_HOME/hark\fR).
.TP
\fBRUST_LOG\fR
What is logged to stderr (default \fBhark_node=info,warn\fR), e.g. \fBhark_node=debug\fR.
.SH "EXIT STATUS"
0 after SIGTERM, SIGINT, or the end of input with \fB\-\-json\fR; 2 for a bad option, an
unreadable file, a data dir in use, or a node that cannot start.
.SH EXAMPLES
.TP
\fBhark-node \-\-relay \-\-name relay1 \-\-listen /ip4/0.0.0.0/tcp/7000\fR
An always-on relay on a fixed port; other segments reach it with
\fB\-\-peer /ip4/ADDR/tcp/7000/p2p/PEER_ID\fR (the peer id is on its \fBready:\fR line).
.TP
\fBsystemctl enable \-\-now hark-node\fR
The same, as the packaged service (options in \fI/etc/hark/hark-node.env\fR).
.TP
\fBecho '{"cmd":"send","room":"lobby","text":"hello"}' | hark-node \-\-json\fR
A bot: JSON commands in, one JSON event per line out (docs: protocol.md).
.SH "SEE ALSO"
\fBhark\fR(1), \fBhark-node-keygen\fR(1), \fBsystemctl\fR(1),
\fI/usr/share/doc/hark-node/\fR (operations.md, protocol.md, security.md)
"#;

const KEYGEN_EXTRA: &str = r#".SH "EXIT STATUS"
0 when the key was written; 2 when the file exists (it is never overwritten) or cannot be
written.
.SH EXAMPLES
.TP
\fBhark-node keygen \-\-network /etc/hark/swarm.key\fR
Once per network; copy the file to every machine (mode 0600, or 0640 group \fBhark\fR for the
packaged service) and start each program with \fB\-\-network\-key\fR.
.SH "SEE ALSO"
\fBhark-node\fR(1), \fBhark\fR(1)
"#;
