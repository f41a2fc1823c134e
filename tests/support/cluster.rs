//! A throwaway PostgreSQL cluster in a temp dir, run as the `postgres` OS user
//! when we are root (PostgreSQL refuses to run as root).
//!
//! Every cluster is stopped when the test process exits: by an `atexit`
//! handler on a normal exit, and by a watchdog shell that polls the test
//! process and stops the cluster if the process died without running it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Password of the superuser `postgres` in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "harness-superuser-pw";

/// Which `wal_level` a cluster starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalLevel {
    Logical,
    /// For the test that the bridge refuses a database without logical WAL.
    Replica,
}

/// Options of a new cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub wal_level: WalLevel,
    pub max_replication_slots: u32,
    /// `fsync=off` and friends: fine for tests, wrong for a benchmark that
    /// must look like production.
    pub fast_unsafe: bool,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            wal_level: WalLevel::Logical,
            max_replication_slots: 64,
            fast_unsafe: true,
            extra_conf: Vec::new(),
        }
    }
}

/// A running (or stopped) PostgreSQL cluster.
pub struct Cluster {
    /// Owns the temp dir; removed when the cluster is dropped.
    _root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub bin_dir: PathBuf,
    log_file: PathBuf,
}

/// Data dirs of clusters that may still be running, stopped at process exit.
static LIVE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
/// Temp dirs of clusters kept in statics (never dropped): removed at exit.
static LEAKED_ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

extern "C" fn stop_live_clusters() {
    let live = match LIVE.lock() {
        Ok(live) => live.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for (bin_dir, data_dir) in live {
        let _ = pg_ctl_stop(&bin_dir, &data_dir, "immediate");
    }
    let roots = match LEAKED_ROOTS.lock() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for root in roots {
        let _ = std::fs::remove_dir_all(root);
    }
}

fn register_live(bin_dir: &Path, data_dir: &Path) {
    ATEXIT.call_once(|| unsafe {
        libc::atexit(stop_live_clusters);
    });
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if !live.iter().any(|(_, d)| d == data_dir) {
        live.push((bin_dir.to_path_buf(), data_dir.to_path_buf()));
    }
}

fn unregister_live(data_dir: &Path) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|(_, d)| d != data_dir);
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`:
/// `$BRIDGE_TEST_PG_BINDIR`, else `postgres` on PATH, else
/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRIDGE_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("postgres").is_file() && dir.join("initdb").is_file() {
                // Resolve symlinks such as /usr/local/bin/initdb -> .../15/bin.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf));
                return real.unwrap_or(dir);
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return dir;
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    candidates.retain(|d| d.join("initdb").is_file());
    candidates.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop().expect(
        "no PostgreSQL server binaries found: install postgresql (apt-get install postgresql) \
         or set BRIDGE_TEST_PG_BINDIR to a directory holding initdb, pg_ctl and postgres",
    )
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the `postgres` OS user when we are root.
fn as_pg_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn chown_to_pg_user(path: &Path) {
    if !running_as_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres {path:?} failed");
}

fn run_checked(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_ctl_stop(bin_dir: &Path, data_dir: &Path, mode: &str) -> std::io::Result<bool> {
    if !data_dir.join("postmaster.pid").exists() {
        return Ok(true);
    }
    let status = as_pg_user(&bin_dir.join("pg_ctl"))
        .arg("-D")
        .arg(data_dir)
        .args(["-m", mode, "-w", "-t", "60", "stop"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

fn pg_ctl_start(bin_dir: &Path, data_dir: &Path, log_file: &Path, port: u16) -> bool {
    as_pg_user(&bin_dir.join("pg_ctl"))
        .arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(log_file)
        .arg("-o")
        .arg(format!("-p {port}"))
        .args(["-w", "-t", "60", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    // Ports handed out in this process are not reused even if a cluster has
    // not bound its port yet.
    static LAST: AtomicU32 = AtomicU32::new(0);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0")
            .local_addr()
            .expect("local addr")
            .port();
        if LAST.swap(u32::from(port), Ordering::SeqCst) != u32::from(port) {
            return port;
        }
    }
}

impl Cluster {
    /// initdb + start a new cluster.
    pub fn start_new(options: &ClusterOptions) -> Cluster {
        let bin_dir = bin_dir();
        let root = tempfile::Builder::new()
            .prefix("bridge-pg-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        let socket_dir = root.path().to_path_buf();
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("write pwfile");
        chown_to_pg_user(root.path());

        let mut initdb = as_pg_user(&bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run_checked(initdb, "initdb");
        let _ = std::fs::remove_file(&pwfile);

        let wal_level = match options.wal_level {
            WalLevel::Logical => "logical",
            WalLevel::Replica => "replica",
        };
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = {wal_level}\n\
             max_replication_slots = {slots}\n\
             max_wal_senders = {senders}\n\
             max_connections = 300\n\
             shared_buffers = 32MB\n\
             log_min_messages = warning\n\
             password_encryption = 'scram-sha-256'\n",
            socket_dir.display(),
            slots = options.max_replication_slots,
            senders = options.max_replication_slots.max(10) + 10,
        );
        if options.fast_unsafe {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        for line in &options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data_dir.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");

        // Password auth everywhere, also for `replication=database`
        // connections (matched on the database column).
        let hba = "local all all scram-sha-256\n\
                   host all all 127.0.0.1/32 scram-sha-256\n\
                   host replication all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data_dir.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        chown_to_pg_user(root.path());

        let cluster = Cluster {
            log_file: root.path().join("postgres.log"),
            _root: root,
            data_dir,
            socket_dir,
            port: 0,
            bin_dir,
        };
        let mut cluster = cluster;
        cluster.start_on_free_port();
        cluster.spawn_watchdog();
        cluster
    }

    fn start_on_free_port(&mut self) {
        for attempt in 0..5 {
            self.port = free_port();
            if self.try_start() {
                return;
            }
            eprintln!(
                "harness: PostgreSQL did not start on port {} (attempt {attempt})",
                self.port
            );
        }
        panic!("PostgreSQL failed to start; log:\n{}", self.log());
    }

    fn try_start(&self) -> bool {
        register_live(&self.bin_dir, &self.data_dir);
        pg_ctl_start(&self.bin_dir, &self.data_dir, &self.log_file, self.port)
    }

    /// Stops the cluster if the test process dies without running atexit
    /// handlers (SIGKILL, abort): polls our pid once a second.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let runuser = if running_as_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null && [ -d '{data}' ]; do sleep 1; done; \
             [ -f '{data}/postmaster.pid' ] && {runuser}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{root}'; exit 0",
            root = self._root.path().display(),
            pid = std::process::id(),
            data = self.data_dir.display(),
            pg_ctl = pg_ctl.display(),
        );
        // setsid: not in our process group, so a Ctrl-C to the test run does
        // not kill the watchdog before it has stopped the cluster.
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// Marks this cluster as living until process exit (a shared cluster kept
    /// in a static): its temp dir is removed by the exit handler.
    pub fn remove_at_exit(&self) {
        let mut roots = LEAKED_ROOTS.lock().unwrap_or_else(|p| p.into_inner());
        roots.push(self._root.path().to_path_buf());
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL failed to restart; log:\n{}",
            self.log()
        );
    }

    /// Stops the cluster (`fast`: disconnects clients, clean shutdown).
    pub fn stop(&self) {
        pg_ctl_stop(&self.bin_dir, &self.data_dir, "fast").expect("run pg_ctl stop");
    }

    /// Stops and starts the cluster. Blocks the calling thread: from async
    /// code use [`Cluster::restart_async`], or the bridge running on the
    /// test's runtime cannot answer the server meanwhile (PostgreSQL then
    /// waits up to `wal_sender_timeout` for its walsender to finish).
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// [`Cluster::restart`] without blocking the async runtime, as a
    /// database restart under a running bridge.
    pub async fn restart_async(&self) {
        let (bin, data, log, port) = (
            self.bin_dir.clone(),
            self.data_dir.clone(),
            self.log_file.clone(),
            self.port,
        );
        let started = tokio::task::spawn_blocking(move || {
            let _ = pg_ctl_stop(&bin, &data, "fast");
            pg_ctl_start(&bin, &data, &log, port)
        })
        .await
        .expect("restart task");
        assert!(started, "PostgreSQL failed to restart; log:\n{}", self.log());
    }

    /// The server log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// `postgres://user:password@127.0.0.1:port/dbname`.
    pub fn url(&self, user: &str, password: &str, dbname: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{dbname}",
            self.port
        )
    }

    /// The superuser's URL for `dbname`.
    pub fn superuser_url(&self, dbname: &str) -> String {
        self.url("postgres", SUPERUSER_PASSWORD, dbname)
    }

    /// The server's major version, from `postgres --version`.
    pub fn major_version(&self) -> u32 {
        let out = Command::new(self.bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .expect("postgres --version");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next().and_then(|m| m.parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_ctl_stop(&self.bin_dir, &self.data_dir, "immediate");
        unregister_live(&self.data_dir);
    }
}

/// Waits until `f` returns true, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
