//! One hook's worker: takes its messages in order, POSTs each to the URL or runs the command
//! with it on stdin, retries with backoff, and writes what never got through to the
//! dead-letter file (`DATA_DIR/hooks-dead-letter.jsonl`, one JSON object a line, mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::settings::Hook;

/// The dead-letter file's name in the data dir.
pub const DEAD_LETTER_FILE: &str = "hooks-dead-letter.jsonl";
/// Past this size the dead-letter file is renamed to `….1` (replacing an older one) and
/// started afresh, so that a hook that stays down cannot fill the disk.
const DEAD_LETTER_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// What a failing command may say on stderr that goes into the log and the dead letter.
const STDERR_KEPT: usize = 400;
/// How long what a command said on stderr is read after it exited.
const STDERR_GRACE: Duration = Duration::from_millis(100);

/// Where a hook sends, and how patiently.
#[derive(Clone, Debug)]
pub enum Target {
    Url {
        url: String,
        timeout: Duration,
        retries: u32,
    },
    Command {
        command: String,
        timeout: Duration,
        retries: u32,
    },
}

impl Target {
    pub fn of(hook: &Hook) -> Self {
        let timeout = Duration::from_secs(hook.timeout.unwrap_or(10).max(1));
        let retries = hook.retries.unwrap_or(5);
        match (&hook.url, &hook.command) {
            (Some(url), _) => Target::Url {
                url: url.clone(),
                timeout,
                retries,
            },
            (None, command) => Target::Command {
                command: command.clone().unwrap_or_default(),
                timeout,
                retries,
            },
        }
    }

    fn retries(&self) -> u32 {
        match self {
            Target::Url { retries, .. } | Target::Command { retries, .. } => *retries,
        }
    }

    fn describe(&self) -> &str {
        match self {
            Target::Url { url, .. } => url,
            Target::Command { command, .. } => command,
        }
    }
}

/// One message for a hook: the body to send and the event it came from (for the command's
/// environment and the dead letter).
pub struct Job {
    pub body: Vec<u8>,
    pub event: Value,
}

/// The dead-letter file, shared by every hook of the node.
#[derive(Clone)]
pub struct DeadLetter {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl DeadLetter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Append one line for a message that did not get through. A failure to write is logged:
    /// there is nowhere further to put it.
    pub fn write(&self, hook: usize, target: &Target, job: &Job, error: &str, attempts: u32) {
        let line = json!({
            "at": crate::clock::wall_ms(),
            "hook": hook,
            "target": target.describe(),
            "attempts": attempts,
            "error": error,
            "event": job.event,
        });
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.append(&line) {
            tracing::error!(
                "hook {hook}: cannot write the dead-letter file {}: {e}; lost: {line}",
                self.path.display()
            );
        }
    }

    fn append(&self, line: &Value) -> std::io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() > DEAD_LETTER_MAX_BYTES) {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, old)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        writeln!(file, "{line}")
    }
}

/// The worker: every job in order, each tried `1 + retries` times.
pub async fn run(
    index: usize,
    target: Target,
    mut jobs: mpsc::Receiver<Job>,
    dead_letter: DeadLetter,
) {
    let client = match &target {
        Target::Url { .. } => match reqwest::Client::builder().build() {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!("hook {index}: no HTTP client: {e}");
                None
            }
        },
        Target::Command { .. } => None,
    };
    while let Some(job) = jobs.recv().await {
        let mut attempts = 0;
        let mut error;
        loop {
            attempts += 1;
            let outcome = match (&target, &client) {
                (Target::Url { url, timeout, .. }, Some(client)) => {
                    post(client, url, *timeout, &job.body).await
                }
                (Target::Url { .. }, None) => Err("no HTTP client".to_owned()),
                (
                    Target::Command {
                        command, timeout, ..
                    },
                    _,
                ) => run_command(command, *timeout, &job).await,
            };
            match outcome {
                Ok(()) => {
                    tracing::debug!(hook = index, attempts, "hook delivered");
                    error = None;
                    break;
                }
                Err(why) => {
                    tracing::warn!(hook = index, attempts, "hook {}: {why}", target.describe());
                    error = Some(why);
                }
            }
            if attempts > target.retries() {
                break;
            }
            tokio::time::sleep(super::backoff(attempts)).await;
        }
        if let Some(error) = error {
            dead_letter.write(index, &target, &job, &error, attempts);
        }
    }
}

/// POST the body; any 2xx status is success.
async fn post(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    body: &[u8],
) -> Result<(), String> {
    let response = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| plain_error(&e))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// reqwest's error with its causes, on one line ("error sending request: connection refused").
fn plain_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Run `sh -c COMMAND` with the event on stdin and its fields in `HARK_*` variables; exit
/// status 0 is success. A command that outlives the timeout is killed with everything it
/// started (it runs in a process group of its own).
async fn run_command(command: &str, timeout: Duration, job: &Job) -> Result<(), String> {
    let field = |name: &str| match &job.event[name] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("HARK_ROOM", field("room"))
        .env("HARK_KIND", field("kind"))
        .env("HARK_FROM", field("from"))
        .env("HARK_NAME", field("name"))
        .env("HARK_TEXT", field("text"))
        .env("HARK_ID", field("id"))
        .env("HARK_TS", field("ts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    // Until `sh` has exited, the whole group goes with this call (its timeout, or the node
    // stopping); what `sh` leaves running in the background once it exits is its own.
    let mut group = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    );
    let said = Arc::new(Mutex::new(Vec::new()));
    let (read_all, all_read) = tokio::sync::oneshot::channel::<()>();
    match child.stderr.take() {
        Some(stderr) => {
            tokio::spawn(read_stderr(stderr, said.clone(), read_all));
        }
        None => drop(read_all),
    }
    let mut stdin = child.stdin.take();
    let work = async {
        if let Some(stdin) = stdin.as_mut() {
            // A command that does not read its input is fine: a broken pipe is not a failure.
            let _ = stdin.write_all(&job.body).await;
            let _ = stdin.write_all(b"\n").await;
        }
        drop(stdin);
        child.wait().await
    };
    let status = match tokio::time::timeout(timeout, work).await {
        Err(_) => {
            return Err(format!(
                "still running after {} s: killed",
                timeout.as_secs()
            ))
        }
        Ok(status) => status,
    };
    group.0 = None;
    // Its exit decides. What it said is in the pipe by then; something it left running in
    // the background may hold the pipe open, so its end is not waited for.
    let _ = tokio::time::timeout(STDERR_GRACE, all_read).await;
    let said = said.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match (status, said) {
        (Err(e), _) => Err(format!("cannot wait for the command: {e}")),
        (Ok(status), _) if status.success() => Ok(()),
        (Ok(status), said) => {
            let said = String::from_utf8_lossy(&said);
            let said = said.trim().lines().next().unwrap_or("");
            Err(if said.is_empty() {
                format!("exited with {status}")
            } else {
                format!("exited with {status}: {said}")
            })
        }
    }
}

/// A command's process group, killed when dropped unless disarmed (`None`).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // Killing `sh` alone (as `kill_on_drop` does) would leave what it started running.
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
}

/// Read a command's stderr to its end, keeping the first [`STDERR_KEPT`] bytes in `said`;
/// `done` is dropped at the end. The pipe stays open and drained for as long as anything the
/// command started holds it: a background child that writes to it later must not die of
/// SIGPIPE.
async fn read_stderr(
    mut stderr: tokio::process::ChildStderr,
    said: Arc<Mutex<Vec<u8>>>,
    done: tokio::sync::oneshot::Sender<()>,
) {
    let mut buffer = [0u8; 1024];
    while let Ok(n @ 1..) = stderr.read(&mut buffer).await {
        let mut kept = said.lock().unwrap_or_else(|e| e.into_inner());
        let room = STDERR_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    drop(done);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            body: b"{}".to_vec(),
            event: json!({"room": "ops", "text": "pump 4 is down"}),
        }
    }

    /// Whether the process is gone (or a zombie waiting for its parent to reap it).
    fn gone(pid: &str) -> bool {
        // The state follows the command name's closing parenthesis.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    }

    fn pid_in(path: &std::path::Path) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(pid) = std::fs::read_to_string(path) {
                if pid.ends_with('\n') {
                    return pid.trim().to_owned();
                }
            }
            assert!(std::time::Instant::now() < deadline, "no pid in {path:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        // Long enough for `sh` to write the pid on a loaded machine.
        let result = run_command(&command, Duration::from_secs(3), &job()).await;
        assert!(
            result.as_ref().is_err_and(|e| e.contains("killed")),
            "{result:?}"
        );
        let pid = pid_in(&pid_file);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone(&pid) {
            if std::time::Instant::now() > deadline {
                let _ = std::process::Command::new("kill").arg(&pid).status();
                panic!("the command's own child {pid} outlived it");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_command_that_leaves_something_running_succeeds_when_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The background sleep keeps the command's stderr open after `sh` has exited 0.
        let command = format!("sleep 60 & echo $! > {}; exit 0", pid_file.display());
        let result = run_command(&command, Duration::from_secs(5), &job()).await;
        let pid = pid_in(&pid_file);
        // Left running on purpose by the command: the test cleans it up.
        let _ = std::process::Command::new("kill").arg(&pid).status();
        assert_eq!(result, Ok(()));
    }

    #[tokio::test]
    async fn what_a_command_leaves_running_may_still_write_to_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        // A `curl … &` writes its progress to stderr after `sh` has exited.
        let command = format!(
            "(sleep 0.3; echo progress >&2; echo ok > {}) & exit 0",
            done.display()
        );
        assert_eq!(
            run_command(&command, Duration::from_secs(5), &job()).await,
            Ok(())
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&done).map_or(true, |text| text.trim() != "ok") {
            assert!(
                std::time::Instant::now() < deadline,
                "the background child died before it finished (SIGPIPE on stderr?)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn what_a_failed_command_said_is_in_its_error() {
        let result = run_command(
            "echo 'gateway said no' >&2; exit 3",
            Duration::from_secs(5),
            &job(),
        )
        .await;
        assert_eq!(
            result,
            Err("exited with exit status: 3: gateway said no".to_owned())
        );
    }
}
