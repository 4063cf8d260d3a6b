//! The container shim: one small process per container run, like containerd's runc shim or
//! CRI-O's conmon. It outlives localfargate, so a container keeps running, and its log keeps
//! being written, while localfargate restarts.
//!
//! `localfargate shim --runc R --root D --bundle B --id ID --log L --exit E --started S`:
//! 1. forks; the parent prints the child's pid and exits, so the caller is not its parent;
//! 2. the child starts a session, becomes a child subreaper (the container's init is
//!    re-parented to it once `runc create` exits) and runs `runc create` with the container's
//!    stdout and stderr on two pipes, then `runc start`, then writes `S` (`ShimStarted`);
//! 3. it copies both pipes into the CRI log file `L` (rotated) until the container's init
//!    exits and writes `E` (`ShimExit`); the runtime deletes the runc container once it has
//!    read the exit (and the cgroup's OOM count).
//!
//! With `--stdin true` the container's stdin is a pipe the shim keeps open, with `--tty true`
//! a terminal (runc's console socket); either way clients attach on `attach.sock` in the
//! bundle and get the output too ([`shim_attach`](super::shim_attach)).
//!
//! It is synchronous std code: it runs alone in its own process.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};
use serde::{Deserialize, Serialize};

use super::shim_attach::{self, Created, Hub};
use crate::crilog::{LogWriter, Stream};

/// What the shim writes once the container's process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimStarted {
    pub pid: i32,
    pub started_at: SystemTime,
}

/// What the shim writes when the run is over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimExit {
    pub exit_code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub finished_at: SystemTime,
    /// Set when the container never started (`runc create`/`start` failed): runc's message.
    pub error: Option<String>,
}

/// The shim's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimArgs {
    pub runc: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub log: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: usize,
    pub exit: PathBuf,
    pub started: PathBuf,
    /// The container's `stdin`: its stdin is a pipe kept open for attach.
    pub stdin: bool,
    /// The container's `tty`: its stdio is a terminal.
    pub tty: bool,
}

impl ShimArgs {
    /// The command line after the shim command itself.
    pub fn to_args(&self) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        vec![
            "--runc".into(),
            p(&self.runc),
            "--root".into(),
            p(&self.root),
            "--bundle".into(),
            p(&self.bundle),
            "--id".into(),
            self.id.clone(),
            "--log".into(),
            p(&self.log),
            "--log-max-bytes".into(),
            self.log_max_bytes.to_string(),
            "--log-max-files".into(),
            self.log_max_files.to_string(),
            "--exit".into(),
            p(&self.exit),
            "--started".into(),
            p(&self.started),
            "--stdin".into(),
            self.stdin.to_string(),
            "--tty".into(),
            self.tty.to_string(),
        ]
    }

    pub fn parse(args: &[String]) -> Result<ShimArgs, String> {
        let mut a = ShimArgs {
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            ..Default::default()
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("shim: {flag} needs a value"))?;
            match flag.as_str() {
                "--runc" => a.runc = value.into(),
                "--root" => a.root = value.into(),
                "--bundle" => a.bundle = value.into(),
                "--id" => a.id = value.clone(),
                "--log" => a.log = value.into(),
                "--log-max-bytes" => {
                    a.log_max_bytes = value.parse().map_err(|_| "shim: bad --log-max-bytes")?
                }
                "--log-max-files" => {
                    a.log_max_files = value.parse().map_err(|_| "shim: bad --log-max-files")?
                }
                "--exit" => a.exit = value.into(),
                "--started" => a.started = value.into(),
                "--stdin" => a.stdin = value == "true",
                "--tty" => a.tty = value == "true",
                other => return Err(format!("shim: unknown flag {other}")),
            }
        }
        if a.id.is_empty() || a.bundle.as_os_str().is_empty() || a.exit.as_os_str().is_empty() {
            return Err("shim: --id, --bundle and --exit are required".into());
        }
        Ok(a)
    }
}

/// Writes `value` as JSON to `path` atomically (a temporary file, then a rename).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// The shim's entry point (`localfargate shim …`). Returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    // `shim pause`: a pod's pause process instead (see `pause`).
    if args.first().map(String::as_str) == Some(super::pause::MODE) {
        return super::pause::main(&args[1..]);
    }
    let args = match ShimArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // Safety: the shim is single-threaded here (nothing has spawned a thread yet).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            0
        }
        Ok(ForkResult::Child) => {
            let code = run(&args);
            // Never return into the caller's stack as a second process.
            std::process::exit(code)
        }
        Err(e) => {
            eprintln!("shim: fork: {e}");
            1
        }
    }
}

fn runc(args: &ShimArgs) -> Command {
    let mut c = Command::new(&args.runc);
    c.arg("--root").arg(&args.root);
    c
}

/// What runc logged as errors (its `--log` is JSON lines with `level` and `msg`): the first
/// says what failed inside the container's setup, the last what runc made of it.
fn runc_error(log: &Path, fallback: &str) -> String {
    let messages: Vec<String> = std::fs::read_to_string(log)
        .map(|text| {
            text.lines()
                .filter_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    (v["level"] == "error" || v["level"] == "fatal")
                        .then(|| v["msg"].as_str().map(str::to_string))?
                })
                .collect()
        })
        .unwrap_or_default();
    match messages.as_slice() {
        [] => fallback.to_string(),
        [one] => one.clone(),
        [first, .., last] if last.contains(first.as_str()) => last.clone(),
        [first, .., last] => format!("{last} ({first})"),
    }
}

fn fail(args: &ShimArgs, message: String) -> i32 {
    let _ = write_json(
        &args.exit,
        &ShimExit {
            exit_code: 128,
            signal: None,
            finished_at: SystemTime::now(),
            error: Some(message),
        },
    );
    let _ = runc(args)
        .args(["delete", "--force", &args.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    1
}

/// Points the shim's stdio away from its caller's pipes (the caller reads them to their end,
/// which would otherwise last as long as the shim): stdin and stdout to `/dev/null`, stderr to
/// `shim.log` in the bundle.
fn detach_stdio(args: &ShimArgs) {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.bundle.join("shim.log"));
    if let Ok(null) = &null {
        // Safety: dup2 onto the standard descriptors of this single-threaded process.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    if let Ok(log) = log.as_ref().or(null.as_ref()) {
        // Safety: as above.
        unsafe {
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
}

fn run(args: &ShimArgs) -> i32 {
    detach_stdio(args);
    let _ = setsid();
    // Safety: prctl with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let writer = match LogWriter::open(&args.log, args.log_max_bytes, args.log_max_files) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => return fail(args, format!("opening log {}: {e}", args.log.display())),
    };
    let runc_log = args.bundle.join("runc.log");
    let pid_file = args.bundle.join("init.pid");
    let mut create = runc(args);
    create
        .arg("--log")
        .arg(&runc_log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file);
    let Created {
        status: create,
        outputs,
        hub,
    } = match shim_attach::create(args, create) {
        Ok(c) => c,
        Err(msg) => return fail(args, msg),
    };
    let pumps: Vec<_> = outputs
        .into_iter()
        .map(|(fd, stream)| {
            let (writer, hub) = (writer.clone(), hub.clone());
            std::thread::spawn(move || pump(fd, stream, &writer, &hub))
        })
        .collect();
    match create {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let msg = runc_error(&runc_log, &format!("runc create exited with {s}"));
            return fail(args, msg);
        }
        Err(e) => return fail(args, format!("running {}: {e}", args.runc.display())),
    }
    let pid: i32 = match std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(p) => p,
        None => return fail(args, "runc create wrote no pid".into()),
    };
    let start = runc(args)
        .arg("--log")
        .arg(&runc_log)
        .args(["--log-format", "json", "start", &args.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match start {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let msg = runc_error(&runc_log, &format!("runc start exited with {s}"));
            return fail(args, msg);
        }
        Err(e) => return fail(args, format!("running {}: {e}", args.runc.display())),
    }
    if let Err(e) = hub.listen(&args.bundle) {
        eprintln!("shim: attach socket: {e}");
    }
    let _ = write_json(
        &args.started,
        &ShimStarted {
            pid,
            started_at: SystemTime::now(),
        },
    );
    let (exit_code, signal) = wait_for(Pid::from_raw(pid));
    let finished_at = SystemTime::now();
    for p in pumps {
        let _ = p.join();
    }
    hub.close();
    if let Ok(mut w) = writer.lock() {
        let _ = w.flush();
    }
    // The runc container (and its cgroup, which holds the OOM count on cgroup v1) stays until
    // the runtime has read the exit: it deletes it then.
    let _ = write_json(
        &args.exit,
        &ShimExit {
            exit_code,
            signal,
            finished_at,
            error: None,
        },
    );
    0
}

/// Reaps children (the shim is their subreaper) until the container's init exits; its exit
/// code, or 128 + the signal that killed it.
fn wait_for(init: Pid) -> (i32, Option<i32>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => return (code, None),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => {
                return (128 + sig as i32, Some(sig as i32));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // No children left: the init was not ours to reap (it should always be).
            Err(_) => return (255, None),
        }
    }
}

fn pump(fd: OwnedFd, stream: Stream, writer: &Mutex<LogWriter>, hub: &Hub) {
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut w) = writer.lock() {
                    let _ = w.write(stream, &buf[..n], SystemTime::now());
                }
                hub.broadcast(stream, &buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The environment shims and pause processes start with. The shim is usually the main
/// `localfargate` binary, whose global allocator is mimalloc: with its defaults each shim had
/// 4 MiB of its arena resident, 6.4 MiB proportional set size per shim in all (measured with
/// scripts/bench-process-pods), over the 2 MiB per sandbox. Without the eager commits and
/// the arena reservation a shim is 1.6–1.8 MiB. A shim built with the system allocator (the
/// `localfargate-shim` binary of the tests) ignores them; runc and the containers get their
/// environment from the bundle, not from these.
pub(crate) const SHIM_ENV: &[(&str, &str)] = &[
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_EAGER_COMMIT", "0"),
    ("MIMALLOC_ARENA_RESERVE", "0"),
    ("MIMALLOC_RESERVE_OS_MEMORY", "0"),
];

/// Starts a shim with `command` (program and leading arguments) and returns its pid once it
/// has detached.
pub(crate) fn spawn(command: &[String], args: &ShimArgs) -> std::io::Result<i32> {
    let (program, leading) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no shim command configured"))?;
    let out = Command::new(program)
        .args(leading)
        .args(args.to_args())
        .envs(SHIM_ENV.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse() {
        Ok(pid) if out.status.success() => Ok(pid),
        _ => Err(std::io::Error::other(format!(
            "shim failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let a = ShimArgs {
            runc: "/usr/sbin/runc".into(),
            root: "/s/runc".into(),
            bundle: "/s/b".into(),
            id: "abc".into(),
            log: "/l/0.log".into(),
            log_max_bytes: 100,
            log_max_files: 3,
            exit: "/s/b/exit.json".into(),
            started: "/s/b/started.json".into(),
            stdin: true,
            tty: false,
        };
        assert_eq!(ShimArgs::parse(&a.to_args()).unwrap(), a);
        assert!(ShimArgs::parse(&["--id".into()]).is_err());
        assert!(ShimArgs::parse(&["--bogus".into(), "x".into()]).is_err());
    }
}
