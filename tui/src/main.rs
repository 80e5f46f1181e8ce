//! `hark`: the workstation client, a full-screen terminal UI with an embedded node.
//! Logs go to `hark.log` in the data dir, never to the screen.

use std::process::ExitCode;

use hark_node::cli::HarkCli as Cli;
use hark_tui::audio::DeviceVoice;
use hark_tui::run::{run, Options};
use hark_tui::style::LocalTime;
use hark_tui::voice::{NoVoice, Voice};

fn main() -> ExitCode {
    // The local time zone can only be read while the process has a single thread.
    let clock = LocalTime::detect();
    let cli: Cli = match hark_node::cli::parse_args("hark") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Options: command line > HARK_* > config file > defaults; --print-config exits here.
    let settings = match hark_node::cli::settings_or_exit("hark", &cli.node, Default::default()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    // --http: a non-loopback address without --http-token is refused here (exit 2).
    let http = match hark_node::http::plan_or_exit("hark", &(&settings).into()) {
        Ok(http) => http,
        Err(code) => return code,
    };
    let config = match settings.node_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hark: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = log_to_file(&config.data_dir) {
        eprintln!(
            "hark: cannot open the log file in {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::from(2);
    }
    hark_node::cli::warn_test_switches();
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        eprintln!("hark: needs a terminal (for scripts and bots, use hark-node --json)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hark: {e}");
            return ExitCode::FAILURE;
        }
    };
    // libasound (and anything else) writes to stderr, which would scribble over the screen:
    // stderr goes to the log for the life of the UI.
    let stderr = StderrToLog::start(&config.data_dir);
    let voice: Box<dyn Voice> = match DeviceVoice::open() {
        Some(voice) => Box::new(voice),
        None => {
            tracing::info!("voice not available: no audio device");
            Box::new(NoVoice)
        }
    };
    let options = Options {
        config,
        clock,
        voice,
        http,
        web: settings.web,
    };
    let result = runtime.block_on(run(options));
    // Background tasks (the node's) must not keep the process alive after the UI has gone.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(stderr);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hark: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn log_to_file(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hark.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("hark_node=info,hark_tui=info,warn")
    });
    tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(())
}

/// stderr (fd 2) pointed at `hark.log` until dropped (or a panic), then restored, so a
/// panic message still reaches the user's terminal.
struct StderrToLog;

/// The real stderr, duplicated; -1 when not redirected. Never closed: the panic hook may need
/// it at any time, and a closed number could be reused by another file.
static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

impl StderrToLog {
    fn start(dir: &std::path::Path) -> Option<Self> {
        use std::os::fd::AsRawFd;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("hark.log"))
            .ok()?;
        // SAFETY: plain descriptor calls on descriptors this process owns.
        let saved = unsafe {
            let saved = libc::dup(2);
            if saved < 0 {
                return None;
            }
            if libc::dup2(log.as_raw_fd(), 2) < 0 {
                libc::close(saved);
                return None;
            }
            saved
        };
        SAVED_STDERR.store(saved, std::sync::atomic::Ordering::SeqCst);
        // Runs after the terminal's own hook (installed later, it calls this one), before
        // the default hook prints the message.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_stderr();
            previous(info);
        }));
        Some(Self)
    }
}

fn restore_stderr() {
    let saved = SAVED_STDERR.load(std::sync::atomic::Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is a descriptor this process owns and never closes.
        unsafe {
            libc::dup2(saved, 2);
        }
    }
}

impl Drop for StderrToLog {
    fn drop(&mut self) {
        restore_stderr();
    }
}
