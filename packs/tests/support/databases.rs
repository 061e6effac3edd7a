//! Real database servers for the pack tests: PostgreSQL, MariaDB and Redis
//! started from their Debian packages in temporary directories, on Unix
//! sockets and loopback ports, as the unprivileged `sonde-test` user when
//! the tests run as root (PostgreSQL refuses root). Each server is stopped
//! and its directory removed when the value is dropped.
//!
//! A server binary that is missing makes [`Missing::skip_or_fail`] skip the
//! test with a message, or fail it when `SONDE_REQUIRE_SERVICES=1` (CI).
//! Every wait here is bounded.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::{ParamKind, validate};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The user servers run as when the tests run as root.
pub const TEST_USER: &str = "sonde-test";

/// A server the test needs is not installed.
#[derive(Debug)]
pub struct Missing(pub String);

impl Missing {
    /// Skips (prints why) unless `SONDE_REQUIRE_SERVICES=1`, then panics.
    pub fn skip_or_fail(&self) {
        let required = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
        if required("SONDE_REQUIRE_SERVICES") || required("SONDE_CI") {
            panic!(
                "SONDE_REQUIRE_SERVICES=1 (or SONDE_CI=1) but {}: install it (apt-get install postgresql mariadb-server redis-server)",
                self.0
            );
        }
        eprintln!(
            "SKIPPED: {} (set SONDE_REQUIRE_SERVICES=1 to make this a failure)",
            self.0
        );
    }
}

/// Runs `$body` with the server, or skips/fails when it is missing.
#[macro_export]
macro_rules! with_server {
    ($start:expr) => {
        match $start {
            Ok(server) => server,
            Err(missing) => {
                missing.skip_or_fail();
                return;
            }
        }
    };
}

/// Runs `probe` of the built-in pack `pack` against a real server (the
/// real command runner), giving its data.
pub fn run_pack(
    pack: &str,
    settings: &Value,
    probe: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, sonde_packs::handler::ProbeError> {
    let def = super::pack(pack);
    let empty = Map::new();
    super::run_with(
        &def,
        probe,
        params.as_object().unwrap_or(&empty),
        settings,
        &sonde_packs::exec::SystemRunner::default(),
        timeout,
    )
    .map(|o| o.data)
}

/// `severity: message` of each finding in a result.
pub fn finding_messages(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .map(|findings| {
            findings
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["severity"].as_str().unwrap_or("?"),
                        f["message"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        // Not faster: MariaDB refreshes what INNODB_TRX and its siblings
        // show only when they were last read over 0.1 s ago, so polls
        // closer together keep reading the same stale snapshot.
        std::thread::sleep(Duration::from_millis(250));
    }
    f()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// uid and gid servers run as: `sonde-test` (created if needed) when we
/// are root, else ourselves.
pub fn server_ids() -> (u32, u32) {
    if !is_root() {
        return (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
    }
    let lookup = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(ids) = lookup() {
        return ids;
    }
    // Several test processes may race here; useradd fails harmlessly for the losers.
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ])
        .stderr(Stdio::null())
        .status();
    lookup().expect("create the sonde-test user (useradd)")
}

/// The name of the user running the tests (what peer authentication sees).
pub fn my_user_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    sonde_packs::requirements::user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// A command that runs as the server user.
fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    if is_root() {
        let (uid, gid) = server_ids();
        cmd.uid(uid).gid(gid);
    }
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8");
    cmd
}

/// A private directory the server user owns.
pub fn server_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    let (uid, gid) = server_ids();
    if is_root() {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `password` to a 0600 file in `dir` (owned by us: the probes run
/// in this process).
pub fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn stop_child(child: &mut Child, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------- PostgreSQL

/// The newest installed PostgreSQL's binary directory.
pub fn postgres_bin() -> Result<PathBuf, Missing> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| Missing("PostgreSQL is not installed (no /usr/lib/postgresql)".into()))?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| Missing("PostgreSQL is not installed (no initdb/postgres)".into()))
}

/// A PostgreSQL server in a temporary directory: socket in `dir`, TCP on
/// 127.0.0.1:`port`. The superuser is `postgres` (trust on the socket);
/// role `sonde` logs in by peer authentication, mapped from the user
/// running the tests (pg_ident), as the pack does on a real machine.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    child: Option<Child>,
}

impl Postgres {
    /// A primary with pg_stat_statements loaded, the statistics on, and
    /// any `extra` settings (`name = value` lines).
    pub fn start(extra: &[&str]) -> Result<Postgres, Missing> {
        let bin = postgres_bin()?;
        let dir = server_dir("sonde-pg-");
        let data = dir.path().join("data");
        run_ok(
            as_server_user(&bin.join("initdb"))
                .args(["-D"])
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-N", "-E", "UTF8"]),
            "initdb",
        );
        let pg = Postgres {
            port: free_port(),
            dir,
            bin,
            child: None,
        };
        pg.configure(extra);
        Ok(pg.launched())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory (`host=` of a DSN).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn configure(&self, extra: &[&str]) {
        let data = self.data();
        let mut conf = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".into(),
            format!("unix_socket_directories = '{}'", self.dir.path().display()),
            "shared_preload_libraries = 'pg_stat_statements'".into(),
            "fsync = off".into(),
            "max_connections = 40".into(),
            "wal_level = replica".into(),
            "max_wal_senders = 5".into(),
            "max_replication_slots = 5".into(),
            "track_io_timing = on".into(),
            "log_destination = 'stderr'".into(),
            "logging_collector = off".into(),
        ];
        conf.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        writeln!(f, "\n# sonde tests\n{}", conf.join("\n")).unwrap();
        let hba = "local all postgres trust\n\
                   local all sonde peer map=sonde\n\
                   local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host replication postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let ident = format!("sonde {} sonde\nsonde sonde sonde\n", my_user_name());
        std::fs::write(data.join("pg_ident.conf"), ident).unwrap();
        if is_root() {
            let (uid, gid) = server_ids();
            for f in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
                std::os::unix::fs::chown(data.join(f), Some(uid), Some(gid)).unwrap();
            }
        }
    }

    fn launched(mut self) -> Postgres {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        if is_root() {
            let (uid, gid) = server_ids();
            std::os::unix::fs::chown(self.dir.path().join("server.log"), Some(uid), Some(gid))
                .unwrap();
        }
        let child = as_server_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.data())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(30), || {
            self.psql("postgres", "SELECT 1").is_ok_and(|o| o == "1")
        });
        assert!(ready, "postgres did not start:\n{}", self.log());
        self
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn psql_command(&self, db: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        cmd
    }

    /// Runs SQL as the superuser; the output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_command(db)
            .args(["-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`Postgres::psql`] that must succeed.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.psql(db, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}\n{}", self.log()))
    }

    /// A session that stays open (a psql reading its standard input), to
    /// hold locks and transactions.
    pub fn session(&self, db: &str) -> Session {
        let child = self
            .psql_command(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        Session::new(child)
    }

    /// The pack's settings for the socket, as role `sonde`.
    pub fn settings(&self) -> Value {
        json!({"dsn": format!("host={} port={} user=sonde dbname=postgres", self.dir.path().display(), self.port)})
    }

    /// Settings for a role on the loopback port with a password file.
    pub fn tcp_settings(&self, role: &str, password_file: &Path) -> Value {
        json!({
            "dsn": format!("host=127.0.0.1 port={} user={role} dbname=postgres", self.port),
            "password_file": password_file,
        })
    }

    /// A streaming standby of this server (pg_basebackup over loopback,
    /// with a replication slot), started.
    pub fn replica(&self, slot: &str) -> Postgres {
        let dir = server_dir("sonde-pg-replica-");
        let data = dir.path().join("data");
        self.sql(
            "postgres",
            &format!("SELECT pg_create_physical_replication_slot('{slot}')"),
        );
        run_ok(
            as_server_user(&self.bin.join("pg_basebackup"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-S",
                    slot,
                    "--no-sync",
                ]),
            "pg_basebackup",
        );
        let replica = Postgres {
            port: free_port(),
            dir,
            bin: self.bin.clone(),
            child: None,
        };
        // The copied configuration: only the port and socket change.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        writeln!(
            f,
            "\nport = {}\nunix_socket_directories = '{}'\nhot_standby = on\nhot_standby_feedback = on\ncluster_name = 'sonde_replica'",
            replica.port,
            replica.dir.path().display()
        )
        .unwrap();
        let mut auto = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.auto.conf"))
            .unwrap();
        writeln!(auto, "primary_slot_name = '{slot}'").unwrap();
        replica.launched()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown.
            stop_child(&mut child, rustix::process::Signal::INT);
        }
    }
}

/// An open psql session fed through its standard input.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Session {
    fn new(mut child: Child) -> Session {
        let stdin = child.stdin.take();
        Session { child, stdin }
    }

    /// Sends statements (they run when the server gets to them).
    pub fn send(&mut self, sql: &str) {
        let stdin = self.stdin.as_mut().expect("session is open");
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------- MariaDB

/// A MariaDB server in a temporary directory: socket `mysqld.sock` in
/// `dir`, TCP on 127.0.0.1:`port`, performance_schema on. The test's own
/// Unix user administers it (unix_socket authentication, as Debian sets up
/// `root`).
pub struct MariaDb {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn mariadb_bin(name: &str) -> Result<PathBuf, Missing> {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| Missing(format!("MariaDB is not installed (no {name})")))
}

impl MariaDb {
    /// Starts a server with any `extra` server options (`--name=value`).
    pub fn start(extra: &[&str]) -> Result<MariaDb, Missing> {
        let server = mariadb_bin("mariadbd")?;
        let install = mariadb_bin("mariadb-install-db")?;
        mariadb_bin("mariadb")?;
        let dir = server_dir("sonde-my-");
        let data = dir.path().join("data");
        // A temporary directory of its own: parallel servers sharing /tmp
        // trip over each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        if is_root() {
            let (uid, gid) = server_ids();
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).unwrap();
        }
        let admin = if is_root() {
            "root".to_owned()
        } else {
            my_user_name()
        };
        run_ok(
            as_server_user(&install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--auth-root-socket-user={admin}"))
                .arg(format!("--tmpdir={}", tmp.display()))
                .args(["--skip-test-db", "--auth-root-authentication-method=socket"])
                // io_uring needs locked memory, which parallel servers run
                // out of: plain synchronous I/O is enough for tests.
                .arg("--innodb-use-native-aio=0"),
            "mariadb-install-db",
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        if is_root() {
            let (uid, gid) = server_ids();
            std::os::unix::fs::chown(dir.path().join("server.log"), Some(uid), Some(gid)).unwrap();
        }
        let child = as_server_user(&server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--port={port}"))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--bind-address=127.0.0.1",
                "--innodb-use-native-aio=0",
                "--performance-schema=ON",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--skip-name-resolve",
                "--log-bin=binlog",
                "--server-id=1",
                "--innodb-lock-wait-timeout=120",
            ])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        let db = MariaDb {
            dir,
            port,
            child: Some(child),
        };
        let ready = wait_until(Duration::from_secs(60), || {
            db.query("SELECT 1").is_ok_and(|o| o == "1")
        });
        assert!(ready, "mariadbd did not start:\n{}", db.log());
        Ok(db)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn client(&self) -> Command {
        let admin = if is_root() {
            "root".to_owned()
        } else {
            my_user_name()
        };
        let mut cmd = Command::new("/usr/bin/mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--user={admin}"))
            .args(["-N", "-B", "--comments"]);
        cmd
    }

    /// Runs SQL as the administrator; the output (tab-separated).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let out = self
            .client()
            .args(["-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`MariaDb::query`] that must succeed.
    pub fn sql(&self, sql: &str) -> String {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}\n{}", self.log()))
    }

    /// A session that stays open (the client reading its standard input).
    pub fn session(&self) -> Session {
        let child = self
            .client()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadb client");
        Session::new(child)
    }

    /// The pack's settings for the socket with a password file.
    pub fn settings(&self, user: &str, password_file: &Path) -> Value {
        json!({"socket": self.socket(), "user": user, "password_file": password_file})
    }

    /// The pack's settings for the loopback port with a password file.
    pub fn tcp_settings(&self, user: &str, password_file: &Path) -> Value {
        json!({"address": format!("127.0.0.1:{}", self.port), "user": user, "password_file": password_file})
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, rustix::process::Signal::TERM);
        }
    }
}

// --------------------------------------------------------------------- Redis

/// A Redis server in a temporary directory: socket `redis.sock` in `dir`,
/// TCP on 127.0.0.1:`port`, data in `dir/data`. The `default` user has no
/// password (the test administers it with `redis-cli`).
pub struct Redis {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server with any `extra` configuration lines.
    pub fn start(extra: &[&str]) -> Result<Redis, Missing> {
        let server = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| Missing("Redis is not installed (no redis-server)".into()))?;
        if !Path::new("/usr/bin/redis-cli").exists() {
            return Err(Missing("redis-cli is not installed (redis-tools)".into()));
        }
        let dir = server_dir("sonde-redis-");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let port = free_port();
        let mut conf = vec![
            format!("port {port}"),
            "bind 127.0.0.1".into(),
            format!("unixsocket {}", dir.path().join("redis.sock").display()),
            "unixsocketperm 777".into(),
            format!("dir {}", data.display()),
            "save \"\"".into(),
            "appendonly no".into(),
            "daemonize no".into(),
            "enable-debug-command local".into(),
            "databases 16".into(),
        ];
        conf.extend(extra.iter().map(|s| (*s).to_owned()));
        let conf_path = dir.path().join("redis.conf");
        std::fs::write(&conf_path, conf.join("\n") + "\n").unwrap();
        if is_root() {
            let (uid, gid) = server_ids();
            for p in [&data, &conf_path] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = as_server_user(&server)
            .arg(&conf_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        let r = Redis {
            dir,
            port,
            child: Some(child),
        };
        let ready = wait_until(Duration::from_secs(30), || {
            r.cli(&["PING"]).is_ok_and(|o| o == "PONG")
        });
        assert!(ready, "redis-server did not start:\n{}", r.log());
        Ok(r)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn cli_command(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/redis-cli");
        cmd.arg("-s").arg(self.socket());
        cmd
    }

    /// One command as the administrator (each argument whole); the reply.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .cli_command()
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !text.starts_with("ERR") && !text.starts_with("(error)") {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// [`Redis::cli`] that must succeed.
    pub fn run(&self, args: &[&str]) -> String {
        self.cli(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", self.log()))
    }

    /// `redis-cli MONITOR`, its output collected until it is stopped.
    pub fn monitor(&self) -> Monitor {
        let out = self.dir.path().join("monitor.out");
        let child = self
            .cli_command()
            .arg("MONITOR")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli MONITOR");
        // MONITOR is on once it has answered OK.
        assert!(wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&out).is_ok_and(|s| s.starts_with("OK"))
        }));
        Monitor { child, out }
    }

    /// Settings for an ACL user over the socket.
    pub fn settings(&self, user: &str, password_file: &Path) -> Value {
        json!({"socket": self.socket(), "user": user, "password_file": password_file})
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, rustix::process::Signal::TERM);
        }
    }
}

/// A running `redis-cli MONITOR`.
pub struct Monitor {
    child: Child,
    out: PathBuf,
}

impl Monitor {
    /// Stops it; the lines it printed.
    pub fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

// ------------------------------------------------------- hostile parameters

/// Values an attacker would try as parameters of database probes: SQL,
/// Redis commands and shell text. Most fail the schemas; the ones a
/// schema accepts are run.
pub const HOSTILE: &[&str] = &[
    "'; DROP TABLE accounts; --",
    "x'); SELECT pg_sleep(10); --",
    "1; DELETE FROM accounts",
    "postgres; CREATE ROLE evil SUPERUSER",
    "\" OR 1=1 --",
    "$1",
    "x$1",
    "a$$b",
    "pg_terminate_backend",
    "DROP",
    "drop_table",
    "FLUSHALL",
    "flushall",
    "CONFIG SET dir /tmp",
    "*\r\nFLUSHALL\r\n",
    "x\r\nCONFIG SET dir /tmp\r\n",
    "SHUTDOWN",
    "--help",
    "-x",
    "../../etc/shadow",
    "*",
    "[a-z]*",
    "evil-program",
    "sh",
    "x.y",
    "mysql",
    "information_schema",
    "performance_schema",
    "a-b",
];

/// Every parameter set tried for a probe: its examples; each example with
/// one string parameter replaced by each hostile value its schema accepts;
/// each enum value.
pub fn parameter_sets(probe: &sonde_packs::manifest::ProbeSpec) -> Vec<Map<String, Value>> {
    let mut sets: Vec<Map<String, Value>> = probe.examples.clone();
    if sets.is_empty() {
        sets.push(Map::new());
    }
    let mut more = Vec::new();
    for base in &sets {
        for p in &probe.params {
            let ParamKind::String { values, .. } = &p.kind else {
                continue;
            };
            let candidates: Vec<String> = HOSTILE
                .iter()
                .map(|h| (*h).to_owned())
                .chain(values.iter().flatten().cloned())
                .collect();
            for c in candidates {
                let mut s = base.clone();
                s.insert(p.name.clone(), json!(c));
                if validate(&probe.params, &s).is_ok() {
                    more.push(s);
                }
            }
        }
    }
    sets.extend(more);
    sets
}
