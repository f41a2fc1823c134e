//! A throwaway PostgreSQL cluster in a temporary directory: `wal_level =
//! logical`, password authentication, listening on 127.0.0.1 on a free port.
//! The `demo` command and the test harness (`tests/support/cluster.rs`, a thin
//! panicking wrapper) both start their clusters here.
//!
//! PostgreSQL refuses to run as root: when we are root, `initdb`, `pg_ctl`
//! and `postgres` run as the `postgres` OS user. Every cluster is stopped
//! when the process exits: by an `atexit` handler on a normal exit, and by a
//! watchdog shell that polls our pid and stops the cluster if we died
//! without running it (SIGKILL, abort).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

/// Which `wal_level` a cluster starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalLevel {
    Logical,
    /// For showing that the bridge refuses a database without logical WAL.
    Replica,
}

/// Options of a new cluster.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub wal_level: WalLevel,
    pub max_replication_slots: u32,
    /// `fsync=off` and friends: fine for tests and the demo, wrong for a
    /// benchmark that must look like production.
    pub fast_unsafe: bool,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
    /// Password of the superuser `postgres`.
    pub superuser_password: String,
    /// Serve TLS (`ssl = on`) with this certificate; `None`: `ssl = off`.
    pub ssl: Option<SandboxSsl>,
}

/// A cluster's server certificate, for TLS tests.
#[derive(Clone, Debug)]
pub struct SandboxSsl {
    /// PEM certificate (chain) and private key, copied into the data dir.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// `pg_hba.conf` accepts TCP connections over TLS only, except the
    /// superuser `postgres`'s (the harness's own connections stay
    /// plaintext): other roles' plaintext connections are rejected.
    pub ssl_only: bool,
}

/// Password of the superuser `postgres` unless the options say otherwise.
pub const DEFAULT_SUPERUSER_PASSWORD: &str = "harness-superuser-pw";

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            wal_level: WalLevel::Logical,
            max_replication_slots: 64,
            fast_unsafe: true,
            extra_conf: Vec::new(),
            superuser_password: DEFAULT_SUPERUSER_PASSWORD.to_owned(),
            ssl: None,
        }
    }
}

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "no PostgreSQL server binaries found (initdb, pg_ctl, postgres): looked on PATH, in \
         `pg_config --bindir` and in /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: \
         `sudo apt-get install postgresql`; Fedora: `sudo dnf install postgresql-server`; macOS: \
         `brew install postgresql`) or set BRIDGE_TEST_PG_BINDIR to the directory holding them"
    )]
    NoBinaries,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// A running (or stopped) throwaway cluster. Dropping it stops the server
/// and removes its directory.
pub struct SandboxPostgres {
    /// Owns the temp dir; removed when the cluster is dropped.
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub bin_dir: PathBuf,
    log_file: PathBuf,
    superuser_password: String,
}

/// Data dirs of clusters that may still be running, stopped at process exit.
static LIVE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
/// Temp dirs of clusters kept in statics (never dropped): removed at exit.
static LEAKED_ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

extern "C" fn stop_live_clusters() {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (bin_dir, data_dir) in live {
        let _ = pg_ctl_stop(&bin_dir, &data_dir, "immediate");
    }
    let roots = LEAKED_ROOTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for root in roots {
        let _ = std::fs::remove_dir_all(root);
    }
}

fn register_live(bin_dir: &Path, data_dir: &Path) {
    ATEXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` with no captured state.
        unsafe {
            libc::atexit(stop_live_clusters);
        }
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
pub fn find_bin_dir() -> Result<PathBuf, SandboxError> {
    if let Some(dir) = std::env::var_os("BRIDGE_TEST_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("postgres").is_file() && dir.join("initdb").is_file() {
                // Resolve symlinks such as /usr/local/bin/initdb -> .../15/bin.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf));
                return Ok(real.unwrap_or(dir));
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
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
    candidates.pop().ok_or(SandboxError::NoBinaries)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
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

fn chown_to_pg_user(path: &Path) -> Result<(), SandboxError> {
    if !running_as_root() {
        return Ok(());
    }
    let mut cmd = Command::new("chown");
    cmd.args(["-R", "postgres:postgres"]).arg(path);
    run_checked(cmd, &format!("chown postgres {}", path.display()))
}

fn run_checked(mut cmd: Command, what: &str) -> Result<(), SandboxError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("cannot run {what}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            what: what.to_owned(),
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
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

/// Copies the certificate and key into the data dir (`server.crt`,
/// `server.key`); PostgreSQL refuses a key others can read.
fn install_server_certificate(ssl: &SandboxSsl, data_dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(&ssl.cert_file, data_dir.join("server.crt"))
        .map_err(io_error(format!("copying {}", ssl.cert_file.display())))?;
    let key = data_dir.join("server.key");
    std::fs::copy(&ssl.key_file, &key)
        .map_err(io_error(format!("copying {}", ssl.key_file.display())))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("restricting server.key to its owner"))
}

fn free_port() -> Result<u16, SandboxError> {
    // Ports handed out in this process are not reused even if a cluster has
    // not bound its port yet.
    static LAST: AtomicU32 = AtomicU32::new(0);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_error("finding a free port on 127.0.0.1"))?
            .port();
        if LAST.swap(u32::from(port), Ordering::SeqCst) != u32::from(port) {
            return Ok(port);
        }
    }
}

impl SandboxPostgres {
    /// initdb + start a new cluster.
    pub fn start_new(options: &SandboxOptions) -> Result<SandboxPostgres, SandboxError> {
        let bin_dir = find_bin_dir()?;
        let root = tempfile::Builder::new()
            .prefix("bridge-pg-")
            .tempdir()
            .map_err(io_error("creating a temporary directory"))?;
        let data_dir = root.path().join("data");
        let socket_dir = root.path().to_path_buf();
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, &options.superuser_password)
            .map_err(io_error("writing the password file"))?;
        chown_to_pg_user(root.path())?;

        let mut initdb = as_pg_user(&bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run_checked(initdb, "initdb")?;
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
        if let Some(ssl) = &options.ssl {
            install_server_certificate(ssl, &data_dir)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for line in &options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data_dir.join("postgresql.conf");
        let mut existing =
            std::fs::read_to_string(&conf_path).map_err(io_error("reading postgresql.conf"))?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).map_err(io_error("writing postgresql.conf"))?;

        // Password auth everywhere, also for `replication=database`
        // connections (matched on the database column).
        let hba = match &options.ssl {
            Some(ssl) if ssl.ssl_only => {
                "local all all scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostssl replication all 127.0.0.1/32 scram-sha-256\n\
                 host all postgres 127.0.0.1/32 scram-sha-256\n"
            }
            _ => {
                "local all all scram-sha-256\n\
                 host all all 127.0.0.1/32 scram-sha-256\n\
                 host replication all 127.0.0.1/32 scram-sha-256\n"
            }
        };
        std::fs::write(data_dir.join("pg_hba.conf"), hba)
            .map_err(io_error("writing pg_hba.conf"))?;
        chown_to_pg_user(root.path())?;

        let mut cluster = SandboxPostgres {
            log_file: root.path().join("postgres.log"),
            root,
            data_dir,
            socket_dir,
            port: 0,
            bin_dir,
            superuser_password: options.superuser_password.clone(),
        };
        cluster.start_on_free_port()?;
        cluster.spawn_watchdog();
        Ok(cluster)
    }

    fn start_on_free_port(&mut self) -> Result<(), SandboxError> {
        for _attempt in 0..5 {
            self.port = free_port()?;
            if self.try_start()? {
                return Ok(());
            }
        }
        Err(SandboxError::Command {
            what: "starting PostgreSQL".into(),
            detail: format!("it did not start in 5 attempts; its log:\n{}", self.log()),
        })
    }

    fn try_start(&self) -> Result<bool, SandboxError> {
        register_live(&self.bin_dir, &self.data_dir);
        let status = as_pg_user(&self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io_error("running pg_ctl start"))?;
        Ok(status.success())
    }

    /// Stops the cluster if this process dies without running atexit
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
            root = self.root.path().display(),
            pid = std::process::id(),
            data = self.data_dir.display(),
            pg_ctl = pg_ctl.display(),
        );
        // setsid: not in our process group, so a Ctrl-C to us does not kill
        // the watchdog before it has stopped the cluster.
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
        roots.push(self.root.path().to_path_buf());
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start(&self) -> Result<(), SandboxError> {
        if self.try_start()? {
            Ok(())
        } else {
            Err(SandboxError::Command {
                what: "restarting PostgreSQL".into(),
                detail: format!("its log:\n{}", self.log()),
            })
        }
    }

    /// Stops the cluster (`fast`: disconnects clients, clean shutdown).
    pub fn stop(&self) -> Result<(), SandboxError> {
        pg_ctl_stop(&self.bin_dir, &self.data_dir, "fast")
            .map(|_| ())
            .map_err(io_error("running pg_ctl stop"))
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
        self.url("postgres", &self.superuser_password, dbname)
    }

    /// The server's major version, from `postgres --version` (0 if unknown).
    pub fn major_version(&self) -> u32 {
        let Ok(out) = Command::new(self.bin_dir.join("postgres"))
            .arg("--version")
            .output()
        else {
            return 0;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next().and_then(|m| m.parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for SandboxPostgres {
    fn drop(&mut self) {
        let _ = pg_ctl_stop(&self.bin_dir, &self.data_dir, "immediate");
        unregister_live(&self.data_dir);
    }
}
