//! The real `chatwoot-glpi-bridge run` as a child process, for tests that
//! kill it (SIGKILL at any instant), stop it (SIGTERM) or watch it exit.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start the bridge.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub database_url: String,
    pub state_file: PathBuf,
    pub slot: String,
    pub publication: String,
    /// stdout and stderr of every run are appended here.
    pub log_file: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

impl BridgeConfig {
    /// Files in `dir`, names unique per database (slots are cluster-wide).
    pub fn new(database_url: &str, dir: &Path, db_name: &str) -> BridgeConfig {
        BridgeConfig {
            database_url: database_url.to_owned(),
            state_file: dir.join("bridge.sqlite3"),
            slot: format!("slot_{db_name}"),
            publication: format!("pub_{db_name}"),
            log_file: dir.join("bridge.log"),
            extra_env: Vec::new(),
        }
    }
}

impl BridgeConfig {
    /// Runs another subcommand (`status`, `parked list`…) against the same
    /// database and state file; returns (success, stdout + stderr).
    pub fn command(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("BRIDGE_STATE_FILE", &self.state_file)
            .env("BRIDGE_SLOT_NAME", &self.slot)
            .env("BRIDGE_PUBLICATION_NAME", &self.publication)
            .env("BRIDGE_METRICS_ADDR", "off")
            .output()
            .expect("run the bridge binary");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

/// A running bridge.
pub struct BridgeProcess {
    child: Child,
    pub started: Instant,
}

impl BridgeProcess {
    pub fn spawn(config: &BridgeConfig) -> BridgeProcess {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log_file)
            .expect("bridge log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"));
        cmd.arg("run")
            .env("DATABASE_URL", &config.database_url)
            .env("BRIDGE_STATE_FILE", &config.state_file)
            .env("BRIDGE_SLOT_NAME", &config.slot)
            .env("BRIDGE_PUBLICATION_NAME", &config.publication)
            .env("BRIDGE_METRICS_ADDR", "off")
            // The replication stage's own names (until `run` reads the
            // configuration module's), and a short acknowledgement interval
            // so slot progress is visible within a test.
            .env("BRIDGE_STATE", &config.state_file)
            .env("BRIDGE_SLOT", &config.slot)
            .env("BRIDGE_PUBLICATION", &config.publication)
            .env("BRIDGE_STATUS_INTERVAL_SECS", "1")
            .env(
                "RUST_LOG",
                std::env::var("BRIDGE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &config.extra_env {
            cmd.env(k, v);
        }
        BridgeProcess {
            child: cmd.spawn().expect("spawn the bridge binary"),
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: no cleanup of any kind, as a power cut or OOM kill.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then asserts the bridge exited 0 within `bound`.
    pub fn stop_cleanly(self, bound: Duration) {
        let (status, took) = self.signal_and_wait(libc::SIGTERM, bound);
        assert!(
            status.is_some_and(|s| s.success()),
            "SIGTERM must end the bridge with 0 within {bound:?}, got {status:?} after {took:?}"
        );
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) and waits up to `bound` for the
    /// exit. Returns the status and how long the exit took (`None`: still
    /// running at the bound; it is then killed).
    pub fn signal_and_wait(
        mut self,
        signal: i32,
        bound: Duration,
    ) -> (Option<ExitStatus>, Duration) {
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), signal);
        }
        let status = self.wait_exit(bound);
        let took = sent.elapsed();
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (status, took)
    }

    /// Waits up to `bound` for the process to exit by itself.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if it has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file (for failure messages).
/// Runs the bridge expecting it to stop by itself with an error whose
/// output contains every `needle`; returns that output.
pub fn fails_with(config: &BridgeConfig, needles: &[&str]) -> String {
    let before = std::fs::read_to_string(&config.log_file)
        .unwrap_or_default()
        .len();
    let mut bridge = BridgeProcess::spawn(config);
    let status = bridge.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(&config.log_file).unwrap_or_default()[before..].to_owned();
    let status = status.unwrap_or_else(|| panic!("expected the bridge to stop; log:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    for needle in needles {
        assert!(log.contains(needle), "the message names {needle:?}:\n{log}");
    }
    log
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
