//! The pod's pause process, for `shareProcessNamespace: true`: PID 1 of one PID namespace that
//! every container of the pod joins, as the kubelet's pause container is. It reaps the zombies
//! the containers' orphans leave (they are re-parented to it) and lives as long as the sandbox;
//! its PID namespace ends with it (the kernel kills whatever is left in it).
//!
//! `localfargate shim pause` (the shim binary's `pause` mode): unshares a PID namespace, forks
//! its init, prints the init's pid and exits, so the init outlives localfargate as a shim does.
//! The sandbox keeps the namespace bound at `ns/pid` (containers join it through the OCI
//! `namespaces` path) and the pid in `ns/pause.pid`; both survive a restart of localfargate, and
//! the pid is trusted only while `/proc/<pid>/ns/pid` is still that namespace.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};

/// The argument that selects pause mode in the shim's command line.
pub const MODE: &str = "pause";

/// `localfargate shim pause`. Returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    if !args.is_empty() {
        eprintln!("pause: takes no arguments");
        return 2;
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("pause: unsharing a PID namespace: {e}");
        return 1;
    }
    // Safety: the shim is single-threaded here (nothing has spawned a thread yet).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            0
        }
        Ok(ForkResult::Child) => std::process::exit(init()),
        Err(e) => {
            eprintln!("pause: fork: {e}");
            1
        }
    }
}

/// PID 1 of the pod: waits for signals; reaps children on `SIGCHLD`, ends on `SIGTERM` or
/// `SIGINT` (what the kubelet's pause does). A namespace's init gets no signal it has no
/// handler for, unless it is blocked, so they are blocked and taken with `sigwait`.
fn init() -> i32 {
    detach_stdio();
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    // Safety: prctl with a NUL-terminated name that outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"pause".as_ptr(), 0, 0, 0);
    }
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        signals.add(s);
    }
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).is_err() {
        return 1;
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(Signal::SIGTERM | Signal::SIGINT) => return 0,
            _ => {}
        }
    }
}

fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Standard streams to `/dev/null`: the caller reads the pid from a pipe to its end.
fn detach_stdio() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // Safety: dup2 onto the standard descriptors of this single-threaded process.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

/// Starts a pause process with the shim `command` and returns its pid (in this namespace).
fn spawn(command: &[String]) -> io::Result<i32> {
    let (program, leading) = command
        .split_first()
        .ok_or_else(|| io::Error::other("no shim command configured"))?;
    let out = Command::new(program)
        .args(leading)
        .arg(MODE)
        .envs(super::shim::SHIM_ENV.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    match String::from_utf8_lossy(&out.stdout).trim().parse() {
        Ok(pid) if out.status.success() => Ok(pid),
        _ => Err(io::Error::other(format!(
            "the pause process failed to start ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

fn ns_file(ns_dir: &Path) -> PathBuf {
    ns_dir.join("pid")
}

fn pid_file(ns_dir: &Path) -> PathBuf {
    ns_dir.join("pause.pid")
}

/// The pause process of the sandbox whose namespaces are in `ns_dir`, while it runs and still
/// holds the namespace bound there.
pub(crate) fn running(ns_dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file(ns_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let bound = fs::metadata(ns_file(ns_dir)).ok()?;
    let its = fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    let same = (bound.dev(), bound.ino()) == (its.dev(), its.ino());
    (same && super::pid_alive(pid)).then_some(pid)
}

/// Makes sure the sandbox's pause process runs, starting one (again) if not, and returns the
/// path of its PID namespace for the containers' bundles. `cgroup` puts it in the pod's
/// cgroups (so the pod's accounting and clean-up cover it).
pub(crate) fn ensure(
    ns_dir: &Path,
    command: &[String],
    cgroup: impl FnOnce(u32) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let ns = ns_file(ns_dir);
    if running(ns_dir).is_some() {
        return Ok(ns);
    }
    // Gone (killed, or never started): its namespace ended with it.
    stop(ns_dir);
    fs::create_dir_all(ns_dir)?;
    let pid = spawn(command)?;
    let bound = (|| {
        fs::write(&ns, b"")?;
        mount(
            Some(Path::new(&format!("/proc/{pid}/ns/pid"))),
            &ns,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
        fs::write(pid_file(ns_dir), pid.to_string())?;
        cgroup(pid as u32)
    })();
    if let Err(e) = bound {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        stop(ns_dir);
        return Err(e);
    }
    tracing::debug!(pid, dir = %ns_dir.display(), "pause process started");
    Ok(ns)
}

/// Ends the pause process (SIGKILL: the kernel then kills every process left in its PID
/// namespace) and unbinds the namespace. Idempotent.
pub(crate) fn stop(ns_dir: &Path) {
    if let Some(pid) = running(ns_dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        // Not our child: whoever adopted it reaps it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while super::pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let ns = ns_file(ns_dir);
    let _ = umount2(&ns, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(&ns);
    let _ = fs::remove_file(pid_file(ns_dir));
}
