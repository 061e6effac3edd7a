//! Real servers for the operations packs' tests, each in a temp dir, on
//! 127.0.0.1, as an unprivileged user (`sonde-test` when the tests run as
//! root, as in CI): nginx with its own configuration, and NUT (`upsd` plus
//! the `dummy-ups` driver reading a `.dev` file the test writes).
//!
//! A test whose server is not installed **fails** when
//! `SONDE_REQUIRE_SERVICES=1` (set by `.ci/run`, which installs them) and
//! is skipped with a message otherwise. Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user servers run as when the tests run as root.
pub const TEST_USER: &str = "sonde-test";

/// `None` when `program` is installed; otherwise skips (returns `Some`)
/// or, under `SONDE_REQUIRE_SERVICES=1`, fails the test.
pub fn missing(program: &str, package: &str) -> Option<()> {
    if Path::new(program).exists() {
        return None;
    }
    let why = format!("{program} is not installed (Debian package {package})");
    assert!(
        std::env::var_os("SONDE_REQUIRE_SERVICES").is_none(),
        "SONDE_REQUIRE_SERVICES is set but {why}"
    );
    eprintln!("skipped: {why}");
    Some(())
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The uid and gid servers run as (created when running as root).
pub fn run_as() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let lookup = || {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(ids) = lookup() {
        return Some(ids);
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
    Some(lookup().expect("create the sonde-test user (useradd)"))
}

/// Gives `path` to the server user.
pub fn chown(path: &Path) {
    if let Some((uid, gid)) = run_as() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// A command that runs as the server user, in a process group of its own.
fn server_command(program: &str) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = run_as() {
        c.uid(uid).gid(gid);
    }
    c.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A child process group, killed when dropped.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(mut c: Command, name: &str) -> Proc {
        let child = c.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    /// Whether it is still running; if it exited, its stderr.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                Some(format!("{} exited ({status}): {err}", self.name))
            }
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// A temp dir the server user can use (and others can traverse).
pub fn server_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(dir.path());
    dir
}

fn write_owned(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    chown(path);
}

fn mkdir_owned(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    chown(path);
}

// ---- nginx ------------------------------------------------------------

pub const NGINX: &str = "/usr/sbin/nginx";

/// A real nginx on 127.0.0.1 with a configuration of the test's making.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    proc: Proc,
}

/// The access-log format the test server writes (combined + request time).
pub const TIMED_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time"#;

impl Nginx {
    /// Starts nginx (None: not installed, skipped). `server_extra` goes
    /// into the test server block.
    pub fn start(server_extra: &str) -> Option<Nginx> {
        if missing(NGINX, "nginx-light or nginx").is_some() {
            return None;
        }
        for _attempt in 0..3 {
            if let Some(n) = Self::try_start(server_extra) {
                return Some(n);
            }
        }
        panic!("nginx did not start in three attempts");
    }

    fn try_start(server_extra: &str) -> Option<Nginx> {
        let dir = server_dir("sonde-nginx-");
        let d = dir.path();
        for sub in ["conf", "conf/sites", "logs", "html", "tmp"] {
            mkdir_owned(&d.join(sub));
        }
        write_owned(&d.join("html/index.html"), "<h1>hello</h1>\n");
        let port = free_port();
        let root = d.display();
        write_owned(
            &d.join("conf/nginx.conf"),
            &format!(
                r#"# test configuration
worker_processes 1;
pid {root}/tmp/nginx.pid;
error_log {root}/logs/error.log info;
daemon off;
events {{ worker_connections 64; }}
http {{
    log_format timed '$remote_addr - $remote_user [$time_local] "$request" '
                     '$status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time';
    access_log {root}/logs/access.log timed;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    ssl_protocols TLSv1 TLSv1.2;
    server {{
        listen 127.0.0.1:{port};
        server_name test.local;
        root {root}/html;
        location = /nginx_status {{ stub_status; allow 127.0.0.1; deny all; }}
        location /fail {{ return 500; }}
        location /unavailable {{ return 503; }}
        location /api/ {{ return 200 "ok\n"; }}
        location /app/ {{
            fastcgi_param DB_PASSWORD hunter2secretvalue;
            proxy_set_header Authorization "Basic c29uZGU6c2VjcmV0cGFzc3dvcmQ=";
            proxy_set_header Host $host;
            proxy_pass http://127.0.0.1:9/;
        }}
        {server_extra}
    }}
    include sites/*.conf;
    include {root}/outside.conf;
}}
"#
            ),
        );
        write_owned(
            &d.join("conf/sites/extra.conf"),
            &format!("server {{ listen 127.0.0.1:{port}; server_name test.local; return 404; }}\n"),
        );
        write_owned(
            &d.join("outside.conf"),
            "# outside the configuration root\n",
        );
        let mut c = server_command(NGINX);
        c.args([
            "-p",
            &format!("{root}/"),
            "-e",
            &format!("{root}/logs/error.log"),
            "-c",
        ])
        .arg(d.join("conf/nginx.conf"));
        let mut proc = Proc::spawn(c, "nginx");
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() || proc.exited().is_some()
        });
        if let Some(why) = proc.exited() {
            eprintln!("nginx did not start: {why}");
            return None;
        }
        assert!(up, "nginx did not listen on {port} within 10 s");
        Some(Nginx { dir, port, proc })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// One GET; returns the status code.
    pub fn get(&self, target: &str, agent: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: test.local\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        text.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Settings for the pack pointing at this server.
    pub fn settings(&self) -> serde_json::Value {
        let d = self.dir.path().display();
        serde_json::json!({
            "log_paths": [format!("{d}/logs/")],
            "access_log": format!("{d}/logs/access.log"),
            "error_log": format!("{d}/logs/error.log"),
            "stub_status_url": format!("http://127.0.0.1:{}/nginx_status", self.port),
            "config_root": format!("{d}/conf"),
            "config_file": format!("{d}/conf/nginx.conf"),
            "log_group": "",
        })
    }

    /// Waits until the access log holds `n` lines (nginx writes after the
    /// response is sent).
    pub fn wait_for_access_lines(&self, n: usize) {
        let path = self.path("logs/access.log");
        assert!(
            wait_until(Duration::from_secs(10), || std::fs::read_to_string(&path)
                .map(|t| t.lines().count() >= n)
                .unwrap_or(false)),
            "the access log did not reach {n} lines"
        );
    }
}

// ---- NUT --------------------------------------------------------------

pub const UPSD: &str = "/lib/nut/upsd";
pub const DUMMY_UPS: &str = "/lib/nut/dummy-ups";
pub const UPSC: &str = "/usr/bin/upsc";

/// A real upsd on 127.0.0.1 serving UPS `myups` from the `dummy-ups`
/// driver, whose state is the `.dev` file the test writes.
pub struct Nut {
    pub dir: tempfile::TempDir,
    pub port: u16,
    _driver: Proc,
    _upsd: Proc,
}

/// A UPS on line power, fully charged.
pub const ON_LINE: &str = "battery.charge: 100\nbattery.charge.low: 20\nbattery.runtime: 1800\nbattery.runtime.low: 300\nbattery.date: 2023/06/01\nbattery.voltage: 27.1\ninput.voltage: 230.0\noutput.voltage: 230.0\nups.load: 23\nups.mfr: Dummy\nups.model: Test 1500\nups.serial: T1500-0042\nups.status: OL\nups.test.result: Done and passed\n";

impl Nut {
    /// Starts the driver and upsd (None: not installed, skipped).
    pub fn start(dev: &str) -> Option<Nut> {
        for (program, package) in [
            (UPSD, "nut-server"),
            (DUMMY_UPS, "nut-server"),
            (UPSC, "nut-client"),
        ] {
            if missing(program, package).is_some() {
                return None;
            }
        }
        let dir = server_dir("sonde-nut-");
        let d = dir.path();
        let state = d.join("state");
        mkdir_owned(&state);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        write_owned(&d.join("nut.conf"), "MODE=standalone\n");
        write_owned(
            &d.join("ups.conf"),
            &format!(
                "[myups]\n    driver = dummy-ups\n    port = {}\n    desc = \"Rack UPS\"\n",
                d.join("myups.dev").display()
            ),
        );
        write_owned(&d.join("upsd.conf"), &format!("LISTEN 127.0.0.1 {port}\n"));
        write_owned(&d.join("upsd.users"), "");
        write_owned(&d.join("myups.dev"), dev);
        let env = |c: &mut Command| {
            c.env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("NUT_CONFPATH", d)
                .env("NUT_STATEPATH", &state)
                .env("NUT_ALTPIDPATH", &state)
                .current_dir(d);
        };
        let mut c = server_command(DUMMY_UPS);
        c.args(["-a", "myups", "-F"]);
        env(&mut c);
        let mut driver = Proc::spawn(c, "dummy-ups");
        let socket = state.join("dummy-ups-myups");
        let ready = wait_until(Duration::from_secs(10), || {
            socket.exists() || driver.exited().is_some()
        });
        if let Some(why) = driver.exited() {
            panic!("the dummy-ups driver did not start: {why}");
        }
        assert!(ready, "the dummy-ups driver made no socket within 10 s");
        let mut c = server_command(UPSD);
        c.arg("-F");
        env(&mut c);
        let mut upsd = Proc::spawn(c, "upsd");
        let served = wait_until(Duration::from_secs(15), || {
            upsc_status(port).is_some_and(|s| s != "WAIT") || upsd.exited().is_some()
        });
        if let Some(why) = upsd.exited() {
            panic!("upsd did not start: {why}");
        }
        assert!(
            served,
            "upsd did not serve myups on port {port} within 15 s"
        );
        Some(Nut {
            dir,
            port,
            _driver: driver,
            _upsd: upsd,
        })
    }

    /// `ups.status` as upsc reads it now.
    pub fn upsc_status(&self) -> Option<String> {
        upsc_status(self.port)
    }

    /// Writes a new state and waits until upsd serves it (`dummy-ups`
    /// re-reads a `.dev` file whose modification time changed).
    pub fn set(&self, dev: &str, expect_status: &str) {
        let path = self.dir.path().join("myups.dev");
        write_owned(&path, dev);
        let bumped = std::time::SystemTime::now() + Duration::from_secs(2);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(bumped).unwrap();
        assert!(
            wait_until(Duration::from_secs(20), || self.upsc_status().as_deref()
                == Some(expect_status)),
            "upsd did not pick up status {expect_status:?} (still {:?})",
            self.upsc_status()
        );
    }

    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({"host": "127.0.0.1", "port": self.port})
    }
}

/// `ups.status` of `myups` on the upsd at `port`, read with the real upsc.
fn upsc_status(port: u16) -> Option<String> {
    let out = Command::new(UPSC)
        .args([&format!("myups@127.0.0.1:{port}"), "ups.status"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ---- probes in the agent's sandbox --------------------------------------

/// Runs a probe the way the agent does: on a thread confined for
/// in-process handlers, with a runner that starts each program in the
/// program sandbox made from the pack's allowances for these settings.
pub fn run_confined(
    def: &sonde_packs::PackDef,
    probe: &str,
    params: &serde_json::Map<String, serde_json::Value>,
    settings: &serde_json::Value,
    timeout: Duration,
) -> Result<sonde_packs::ProbeOutput, sonde_packs::ProbeError> {
    use sonde_packs::sandbox::Sandbox;
    let sandbox = Sandbox::new(Vec::new());
    if std::env::var_os("SONDE_REQUIRE_SANDBOX").is_some() {
        assert!(sandbox.level().is_full(), "no full Landlock sandbox here");
    }
    let allowances = def.sandbox(settings).to_pack_sandbox();
    let runner = sonde_packs::exec::SystemRunner::default()
        .confined(std::sync::Arc::clone(&sandbox), allowances.clone());
    std::thread::scope(|s| {
        s.spawn(|| {
            sandbox
                .confine_handler(&allowances)
                .map_err(|e| sonde_packs::ProbeError::Failed(e.to_string()))?;
            crate::support::run_with(def, probe, params, settings, &runner, timeout)
        })
        .join()
        .unwrap()
    })
}
