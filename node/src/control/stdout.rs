//! `hark-node --json`'s stdout. tokio's own `Stdout` hands every write to a blocking-pool
//! thread and waits for it: two thread wake-ups per event line, which a busy node pays for
//! every message it shows (docs/performance.md, issue 11). When stdout is a pipe of its own (a
//! bot's, a supervisor's, the benchmark's), it is written non-blocking through the runtime's
//! poller instead; anything else (a terminal, a file, a pipe shared with stderr) keeps tokio's.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;

/// Where `--json` lines go.
pub enum Stdout {
    Pipe(pipe::Sender),
    Blocking(tokio::io::Stdout),
}

/// The process's stdout, as directly as it can be written without blocking the runtime.
pub fn stdout() -> Stdout {
    match own_pipe() {
        Some(sender) => Stdout::Pipe(sender),
        None => Stdout::Blocking(tokio::io::stdout()),
    }
}

/// Stdout as a non-blocking pipe writer, if it is a pipe that stderr does not share. The
/// non-blocking flag belongs to the pipe's open file, shared by every descriptor of it: were
/// stderr the same pipe (`2>&1`), log lines written with plain blocking writes could fail.
fn own_pipe() -> Option<pipe::Sender> {
    let out = File::from(io::stdout().as_fd().try_clone_to_owned().ok()?);
    let out_meta = out.metadata().ok()?;
    if !out_meta.file_type().is_fifo() {
        return None;
    }
    if let Ok(err) = io::stderr().as_fd().try_clone_to_owned() {
        if let Ok(err_meta) = File::from(err).metadata() {
            if err_meta.dev() == out_meta.dev() && err_meta.ino() == out_meta.ino() {
                return None;
            }
        }
    }
    pipe::Sender::from_file(out).ok()
}

impl AsyncWrite for Stdout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stdout::Pipe(pipe) => Pin::new(pipe).poll_write(cx, buf),
            Stdout::Blocking(out) => Pin::new(out).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdout::Pipe(pipe) => Pin::new(pipe).poll_flush(cx),
            Stdout::Blocking(out) => Pin::new(out).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdout::Pipe(pipe) => Pin::new(pipe).poll_shutdown(cx),
            Stdout::Blocking(out) => Pin::new(out).poll_shutdown(cx),
        }
    }
}
