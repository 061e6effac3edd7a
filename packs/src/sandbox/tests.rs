//! The sandbox, tested against the kernel. On a kernel without Landlock
//! these tests say so and pass, unless `SONDE_REQUIRE_SANDBOX=1` (set by
//! `.ci/run`), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::io::ErrorKind;
use std::process::{Command, Stdio};

fn sandbox_or_skip(hidden: Vec<PathBuf>) -> Option<Arc<Sandbox>> {
    let sb = Sandbox::new(hidden);
    if sb.level() == SandboxLevel::None {
        assert!(
            std::env::var_os("SONDE_REQUIRE_SANDBOX").is_none(),
            "SONDE_REQUIRE_SANDBOX is set but this kernel has no Landlock"
        );
        eprintln!("skipped: no Landlock on this kernel");
        return None;
    }
    Some(sb)
}

/// Runs `f` on a fresh thread (confinement is per thread and permanent).
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn real(p: &str) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

/// A copy of `env` under a name no list knows: a wrapper the checks miss.
fn unknown_wrapper(dir: &Path) -> PathBuf {
    let copy = dir.join("harmless-helper");
    std::fs::copy(real("/usr/bin/env"), &copy).unwrap();
    copy
}

#[test]
fn the_kernel_here_has_landlock() {
    let level = Sandbox::new(Vec::new()).level();
    eprintln!("sandbox level: {level}");
    if std::env::var_os("SONDE_REQUIRE_SANDBOX").is_some() {
        assert!(level.is_full(), "{level}");
    }
}

#[test]
fn elf_interpreters_and_scripts() {
    let ls = real("/usr/bin/ls");
    let interp = elf_interpreter(&ls)
        .unwrap()
        .expect("ls is dynamically linked");
    assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    assert!(elf_interpreter(&script).unwrap_err().contains("script"));
    let data = dir.path().join("d");
    std::fs::write(&data, vec![7u8; 100]).unwrap();
    assert!(elf_interpreter(&data).unwrap_err().contains("not a native"));
    let short = dir.path().join("short");
    std::fs::write(&short, b"\x7fELF\x02\x01").unwrap();
    assert!(elf_interpreter(&short).is_err());
    // A header that claims more program headers than there are bytes.
    let mut lie = std::fs::read(&ls).unwrap()[..64].to_vec();
    lie[56] = 200;
    let liar = dir.path().join("liar");
    std::fs::write(&liar, &lie).unwrap();
    assert!(elf_interpreter(&liar).is_err());
}

#[test]
fn a_confined_program_cannot_execute_a_shell_through_a_wrapper_the_checks_miss() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = unknown_wrapper(dir.path());
    let marker = dir.path().join("pwned");
    let interp = elf_interpreter(&wrapper)
        .unwrap()
        .map(|i| real(&i.to_string_lossy()));
    let attempts: Vec<Vec<String>> = vec![
        vec![
            "sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ],
        vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ],
        vec![
            "/usr/bin/dash".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ],
        vec!["touch".into(), marker.display().to_string()],
        vec![
            "python3".into(),
            "-c".into(),
            format!("open('{}','w')", marker.display()),
        ],
        vec![
            real("/lib64/ld-linux-x86-64.so.2").display().to_string(),
            "/bin/sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ],
    ];
    for args in attempts {
        let out = on_thread(|| {
            sb.confine_exec(&PackSandbox::default(), &wrapper, interp.as_deref())
                .unwrap();
            Command::new(&wrapper)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert!(!out.status.success(), "{args:?} ran: {out:?}");
        assert!(!marker.exists(), "{args:?} created the marker");
    }
}

#[test]
fn the_loader_as_a_program_cannot_map_a_shell() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let loader = real("/lib64/ld-linux-x86-64.so.2");
    let out = on_thread(|| {
        sb.confine_exec(&PackSandbox::default(), &loader, None)
            .unwrap();
        Command::new(&loader)
            .args(["/bin/sh", "-c", &format!("touch {}", marker.display())])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    assert!(!out.status.success(), "{out:?}");
    assert!(!marker.exists());
}

#[test]
fn a_confined_program_executes_only_itself() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let echo = real("/usr/bin/echo");
    let interp = elf_interpreter(&echo)
        .unwrap()
        .map(|i| real(&i.to_string_lossy()));
    let (own, other) = on_thread(|| {
        sb.confine_exec(&PackSandbox::default(), &echo, interp.as_deref())
            .unwrap();
        let own = Command::new(&echo).arg("ok").output().unwrap();
        let other = Command::new("/usr/bin/true").status();
        (own, other)
    });
    assert!(own.status.success());
    assert_eq!(own.stdout, b"ok\n");
    assert_eq!(other.unwrap_err().kind(), ErrorKind::PermissionDenied);
}

#[test]
fn the_agents_own_files_are_unreadable_by_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent-data");
    std::fs::create_dir(&data).unwrap();
    let key = data.join("signing.key");
    std::fs::write(&key, "sonde-ed25519-secret-v1:AAAA").unwrap();
    let link = dir.path().join("innocent.log");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let open_log = dir.path().join("app.log");
    std::fs::write(&open_log, "fine\n").unwrap();
    let Some(sb) = sandbox_or_skip(vec![data.clone()]) else {
        return;
    };
    let results = on_thread(|| {
        sb.confine_handler(&PackSandbox::default()).unwrap();
        (
            std::fs::read(&key).map_err(|e| e.kind()),
            std::fs::read(&link).map_err(|e| e.kind()),
            std::fs::read_dir(&data).map(|_| ()).map_err(|e| e.kind()),
            std::fs::read(format!("/proc/self/root{}", key.display())).map_err(|e| e.kind()),
            std::fs::read(&open_log).map_err(|e| e.kind()),
            std::fs::write(dir.path().join("new"), "x").map_err(|e| e.kind()),
        )
    });
    assert_eq!(results.0, Err(ErrorKind::PermissionDenied));
    assert_eq!(
        results.1,
        Err(ErrorKind::PermissionDenied),
        "through a symlink"
    );
    assert_eq!(results.2, Err(ErrorKind::PermissionDenied));
    assert_eq!(
        results.3,
        Err(ErrorKind::PermissionDenied),
        "through /proc/self/root"
    );
    assert_eq!(results.4.as_deref().ok(), Some(&b"fine\n"[..]));
    assert_eq!(
        results.5,
        Err(ErrorKind::PermissionDenied),
        "writes nowhere"
    );
    // (A hard link to the key made elsewhere is the same inode under a
    // readable directory: Landlock allows it. The file identity check in
    // `SecretGuard` refuses it: see `secrets::tests`.)
}

#[test]
fn programs_bind_nothing_and_connect_only_to_declared_ports() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = |pack: PackSandbox| {
        let sb = Arc::clone(&sb);
        on_thread(move || {
            // Confine for exec and try from this thread: the rules apply to
            // the thread too, which is what the program inherits.
            sb.confine_exec(&pack, &real("/usr/bin/true"), None)
                .unwrap();
            (
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(|_| ())
                    .map_err(|e| e.kind()),
                std::net::TcpListener::bind("127.0.0.1:0")
                    .map(|_| ())
                    .map_err(|e| e.kind()),
            )
        })
    };
    let (c, b) = connect(PackSandbox::default());
    assert_eq!(c, Err(ErrorKind::PermissionDenied));
    assert_eq!(b, Err(ErrorKind::PermissionDenied));
    let (c, _) = connect(PackSandbox {
        connect_tcp: vec![port],
        ..Default::default()
    });
    assert_eq!(c, Ok(()));
}

#[test]
fn a_confined_program_cannot_signal_the_agent() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let kill = real("/usr/bin/kill");
    let interp = elf_interpreter(&kill)
        .unwrap()
        .map(|i| real(&i.to_string_lossy()));
    let me = std::process::id().to_string();
    let out = on_thread(|| {
        sb.confine_exec(&PackSandbox::default(), &kill, interp.as_deref())
            .unwrap();
        Command::new(&kill).args(["-0", &me]).output().unwrap()
    });
    assert!(!out.status.success(), "kill -0 <agent> succeeded: {out:?}");
}

#[test]
fn program_directories_are_unreadable_to_programs() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let r = on_thread(|| {
        sb.confine_exec(&PackSandbox::default(), &real("/usr/bin/true"), None)
            .unwrap();
        (
            std::fs::read(real("/bin/sh"))
                .map(|_| ())
                .map_err(|e| e.kind()),
            std::fs::read("/etc/hostname")
                .map(|_| ())
                .map_err(|e| e.kind()),
        )
    });
    assert_eq!(r.0, Err(ErrorKind::PermissionDenied));
    assert!(r.1.is_ok() || r.1 == Err(ErrorKind::NotFound), "{:?}", r.1);
}

#[test]
fn read_devices_expand_patterns_to_device_nodes_only() {
    let found = expand_device_pattern(Path::new("/dev/loop*"));
    assert!(
        found
            .iter()
            .all(|p| p.to_string_lossy().starts_with("/dev/loop")),
        "{found:?}"
    );
    if Path::new("/dev/loop0").exists() {
        assert!(found.contains(&PathBuf::from("/dev/loop0")), "{found:?}");
        // `/dev/loop-control` is a device too: the pattern has no suffix.
        assert!(expand_device_pattern(Path::new("/dev/loop0")).len() == 1);
    }
    // Directories, symlinks and regular files never match.
    assert!(expand_device_pattern(Path::new("/dev/fd")).is_empty());
    assert!(
        expand_device_pattern(Path::new("/dev/pt*"))
            .iter()
            .all(|p| p != Path::new("/dev/pts"))
    );
    assert!(expand_device_pattern(Path::new("/dev/no-such-dev*")).is_empty());
    assert!(expand_device_pattern(Path::new("/nonexistent/dir/sd*")).is_empty());
}

#[test]
fn read_devices_allow_ioctls_but_never_a_writable_open() {
    let Some(sb) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let dev = Path::new("/dev/loop0");
    let root = rustix::process::geteuid().is_root();
    if !root || !dev.exists() {
        eprintln!("skipped: needs root and /dev/loop0 (a block device to open)");
        return;
    }
    let attempt = |pack: PackSandbox| {
        let sb = Arc::clone(&sb);
        on_thread(move || {
            sb.confine_exec(&pack, &real("/usr/bin/true"), None)
                .unwrap();
            let read = std::fs::File::open(dev).map_err(|e| e.kind());
            let ioctl = read.as_ref().map_err(|e| *e).and_then(|f| {
                rustix::fs::ioctl_blksszget(f).map_err(|e| std::io::Error::from(e).kind())
            });
            let write = std::fs::OpenOptions::new()
                .write(true)
                .open(dev)
                .map(|_| ())
                .map_err(|e| e.kind());
            (read.map(|_| ()), ioctl.map(|_| ()), write)
        })
    };
    // Without the allowance: readable (like any file) but no ioctl, no write.
    let (read, ioctl, write) = attempt(PackSandbox::default());
    assert_eq!(read, Ok(()));
    assert_eq!(ioctl, Err(ErrorKind::PermissionDenied));
    assert_eq!(write, Err(ErrorKind::PermissionDenied));
    // With a pattern that covers it: ioctls work, writing is still refused.
    let (read, ioctl, write) = attempt(PackSandbox {
        read_devices: vec![PathBuf::from("/dev/loop*")],
        ..Default::default()
    });
    assert_eq!(read, Ok(()));
    assert_eq!(ioctl, Ok(()));
    assert_eq!(write, Err(ErrorKind::PermissionDenied));
}

/// A mounted file system that never answers (here a FUSE mount whose
/// daemon never reads its requests; in life a dead NFS share or a wedged
/// zfs-fuse, which is how this was found) must not hang the walk that
/// builds the rules: the sandbox is built, the mount gets no rule, and a
/// path beside it stays hidden. The mount lives in a mount namespace of
/// the test thread's own, so no other test sees it.
#[test]
fn a_mount_that_never_answers_does_not_hang_the_sandbox() {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    use std::os::fd::AsRawFd;
    use std::sync::mpsc;
    use std::time::Duration;
    if !rustix::process::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        assert!(
            std::env::var_os("SONDE_REQUIRE_SANDBOX").is_none(),
            "SONDE_REQUIRE_SANDBOX is set but this test needs root and /dev/fuse"
        );
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let Some(_) = sandbox_or_skip(Vec::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stuck = dir.path().join("stuck");
    let secret = dir.path().join("secret");
    std::fs::create_dir(&stuck).unwrap();
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key"), "hidden").unwrap();
    let (tx, rx) = mpsc::channel();
    let (stuck_t, secret_t) = (stuck.clone(), secret.clone());
    std::thread::spawn(move || {
        // SAFETY: unsharing the mount namespace changes only this thread's
        // view of mounts (and its own fs context, which nothing else in
        // the thread relies on); threads it starts inherit that view.
        #[allow(unsafe_code)]
        unsafe {
            rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS).unwrap();
        }
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .unwrap();
        let fuse =
            rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let options = std::ffi::CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .unwrap();
        rustix::mount::mount(
            "sonde-test",
            &stuck_t,
            "fuse",
            MountFlags::empty(),
            options.as_c_str(),
        )
        .unwrap();
        // The mount really does not answer: a stat beneath it blocks.
        let (stat_tx, stat_rx) = mpsc::channel();
        let probe = stuck_t.clone();
        std::thread::spawn(move || {
            let _ = stat_tx.send(std::fs::metadata(&probe).is_ok());
        });
        let answered = stat_rx.recv_timeout(Duration::from_secs(1)).is_ok();
        let sb = Sandbox::new(vec![secret_t.clone()]);
        let hidden_read = on_thread(|| {
            sb.confine_handler(&PackSandbox::default()).unwrap();
            std::fs::read(secret_t.join("key")).map_err(|e| e.kind())
        });
        let _ = tx.send((answered, sb.level(), hidden_read));
        // Closing the device aborts the connection: blocked threads return.
        drop(fuse);
    });
    let (answered, level, hidden_read) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("building the sandbox hung on a mount that never answers");
    assert!(
        !answered,
        "the test's FUSE mount answered a stat; the test proves nothing"
    );
    assert!(level.is_full(), "{level}");
    assert_eq!(hidden_read, Err(ErrorKind::PermissionDenied));
}
