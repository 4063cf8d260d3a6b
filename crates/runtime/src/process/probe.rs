//! What runs inside or against a running container: `kubectl exec` sessions (`runc exec`, with
//! a terminal when asked), probes (exec, HTTP GET, TCP, gRPC health) and lifecycle hooks, with
//! the kubelet's semantics: thresholds, periods, `Unhealthy` events, restarts on liveness
//! failure.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ProcessRuntime, Run, Sandbox, grpc_health, insecure_tls};
use crate::{Action, ContainerSpec, ExecRequest, ExitStatus, Probe, RuntimeError};

/// Output kept from an exec probe or hook for its event (the kubelet keeps 10 KiB).
const PROBE_OUTPUT_MAX: usize = 10 * 1024;

/// Runs `command` in the run's container to its end, with a time limit; `Ok` with its output
/// when it exits 0.
async fn exec_command(
    rt: &ProcessRuntime,
    run: &Run,
    command: &[String],
    timeout: Duration,
) -> Result<String, String> {
    // runc writes the process's pid, so a command that outlives its timeout is killed (ending
    // `runc exec` alone would leave it running in the container).
    let pid_file = run.dir.join(format!(
        "exec-{}.pid",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let (mut cmd, file) = rt
        .runc_exec(run, command, false, Some(&pid_file))
        .map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let result = tokio::time::timeout(timeout, cmd.output()).await;
    if result.is_err()
        && let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(pid_file);
    match result {
        Err(_) => Err(format!("command {command:?} timed out")),
        Ok(Err(e)) => Err(format!("running runc exec: {e}")),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.truncate(PROBE_OUTPUT_MAX);
            if out.status.success() {
                Ok(text)
            } else {
                Err(if text.trim().is_empty() {
                    format!(
                        "command {command:?} exited with {}",
                        out.status.code().unwrap_or(-1)
                    )
                } else {
                    text
                })
            }
        }
    }
}

/// A probe's or hook's action, once. `Err` carries what the kubelet puts in its event.
pub(super) async fn perform(
    rt: &ProcessRuntime,
    sb: &Sandbox,
    run: &Run,
    action: &Action,
    timeout: Duration,
) -> Result<String, String> {
    let host = |h: &str| {
        if h.is_empty() {
            sb.spec.ip.to_string()
        } else {
            h.to_string()
        }
    };
    match action {
        Action::Exec { command } => exec_command(rt, run, command, timeout).await,
        Action::TcpSocket { host: h, port } => {
            let addr = format!("{}:{port}", host(h));
            match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(String::new()),
                Ok(Err(e)) => Err(dial_error(&addr, &e)),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            }
        }
        Action::HttpGet {
            scheme,
            host: h,
            port,
            path,
            headers,
        } => {
            let https = if scheme.eq_ignore_ascii_case("https") {
                true
            } else if scheme.eq_ignore_ascii_case("http") {
                false
            } else {
                return Err(format!(
                    "scheme {scheme} is not supported by this runtime's probes"
                ));
            };
            let h = host(h);
            let url = format!(
                "{}://{h}:{port}{path}",
                if https { "https" } else { "http" }
            );
            match tokio::time::timeout(timeout, http_get(https, &h, *port, path, headers)).await {
                Err(_) => Err(format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
                Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(String::new()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
            }
        }
        Action::Grpc { port, service } => {
            grpc_health::check(&format!("{}:{port}", sb.spec.ip), service, timeout)
                .await
                .map(|()| String::new())
        }
        Action::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs(*seconds).min(timeout)).await;
            Ok(String::new())
        }
    }
}

/// A failed connect as Go's net package words it, which the kubelet's probe messages carry:
/// `dial tcp 10.0.1.5:8080: connect: connection refused`.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    format!("dial tcp {addr}: connect: {}", crate::error::go_text(e))
}

/// How the kubelet's probes name themselves (`kube-probe/<kubelet minor version>`), for HTTP and
/// gRPC alike.
pub(super) const USER_AGENT: &str = "kube-probe/1.33";

/// A minimal HTTP/1.1 GET, over TLS when `https` (the certificate unverified, as the kubelet's
/// prober does): the status code of the response.
async fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let addr = format!("{host}:{port}");
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| std::io::Error::other(dial_error(&addr, &e)))?;
    if https {
        let tls = insecure_tls::connect(host, tcp).await?;
        http_get_over(tls, host, port, path, headers).await
    } else {
        http_get_over(tcp, host, port, path, headers).await
    }
}

async fn http_get_over(
    mut s: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 256];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Starts the probe loops of a run that has just started.
pub(super) fn start(
    rt: &ProcessRuntime,
    sb: &Arc<Sandbox>,
    i: usize,
    c: &ContainerSpec,
    run: &Run,
) {
    let mut handles = Vec::new();
    for (kind, probe) in [
        (Kind::Startup, &c.startup),
        (Kind::Liveness, &c.liveness),
        (Kind::Readiness, &c.readiness),
    ] {
        let Some(probe) = probe.clone() else {
            continue;
        };
        let (rt, sb, run, name) = (rt.clone(), sb.clone(), run.clone(), c.name.clone());
        let task = tokio::spawn(async move { probe_loop(rt, sb, i, name, run, kind, probe).await });
        handles.push(task.abort_handle());
    }
    if !handles.is_empty() {
        sb.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.name.clone(), handles);
    }
}

async fn probe_loop(
    rt: ProcessRuntime,
    sb: Arc<Sandbox>,
    i: usize,
    name: String,
    run: Run,
    kind: Kind,
    probe: Probe,
) {
    tokio::time::sleep(probe.initial_delay).await;
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        // Liveness and readiness wait for the startup probe.
        let started = sb.state().containers[i].started;
        if kind != Kind::Startup && !started {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let result = perform(&rt, &sb, &run, &probe.action, probe.timeout).await;
        match result {
            Ok(_) => {
                failures = 0;
                successes += 1;
                if successes >= probe.success_threshold.max(1) {
                    let changed = {
                        let mut st = sb.state();
                        let c = &mut st.containers[i];
                        let before = (c.started, c.ready);
                        match kind {
                            Kind::Startup => {
                                c.started = true;
                                if sb.spec.containers[i].readiness.is_none() {
                                    c.ready = true;
                                }
                            }
                            Kind::Readiness => c.ready = true,
                            Kind::Liveness => {}
                        }
                        before != (c.started, c.ready)
                    };
                    if changed {
                        sb.persist();
                        rt.changed(&sb.id);
                    }
                    if kind == Kind::Startup {
                        return;
                    }
                }
            }
            Err(output) => {
                successes = 0;
                failures += 1;
                sb.event(
                    true,
                    "Unhealthy",
                    format!("{} probe failed: {}", kind.name(), output.trim_end()),
                    Some(&name),
                );
                if kind == Kind::Readiness {
                    sb.state().containers[i].ready = false;
                }
                // The event (and any readiness change) is news for the agent.
                rt.changed(&sb.id);
                if failures >= probe.failure_threshold.max(1) && kind != Kind::Readiness {
                    let what = if kind == Kind::Liveness {
                        "liveness"
                    } else {
                        "startup"
                    };
                    let grace = probe.termination_grace.unwrap_or(sb.spec.termination_grace);
                    rt.kill_container(
                        &sb,
                        &sb.spec.containers[i],
                        &run,
                        format!("Container {name} failed {what} probe, will be restarted"),
                        Instant::now() + grace,
                    )
                    .await;
                    sb.wake.notify_one();
                    return;
                }
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

/// A `kubectl exec` session: `runc exec` with the request's streams, a terminal when asked
/// (our pty is runc's controlling terminal, so a resize reaches the container's).
pub(super) async fn exec_session(
    rt: &ProcessRuntime,
    run: &Run,
    request: ExecRequest,
) -> Result<ExitStatus, RuntimeError> {
    let ExecRequest {
        command,
        tty,
        stdin,
        stdout,
        stderr,
        resize,
    } = request;
    if command.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            pod: run.id.clone(),
            message: "exec needs a command".into(),
        });
    }
    let mut guard = ExecGuard::new(run);
    let (mut cmd, file) = rt.runc_exec(run, &command, tty, Some(&guard.pid_file))?;
    let _remove = RemoveOnDrop(file);
    // The client has left when nothing reads the output any more (a terminal has only stdout).
    let client_gone = {
        let (out, err) = (stdout.clone(), (!tty).then(|| stderr.clone()));
        async move {
            out.closed().await;
            if let Some(err) = err {
                err.closed().await;
            }
        }
    };
    if tty {
        drop(stderr);
        return exec_tty(cmd, stdin, stdout, resize, guard, client_gone).await;
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Io {
        context: "running runc exec".into(),
        source,
    })?;
    let feed = match (stdin, child.stdin.take()) {
        (Some(mut rx), Some(mut w)) => Some(tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            // Dropping `w` closes the process's stdin.
        })),
        _ => None,
    };
    let copy = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                tx: tokio::sync::mpsc::Sender<Vec<u8>>| async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(copy(Box::new(o), stdout)));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(copy(Box::new(e), stderr)));
    let status = guard
        .wait(&mut child, client_gone)
        .await
        .map_err(|source| RuntimeError::Io {
            context: "waiting for runc exec".into(),
            source,
        })?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    if let Some(f) = feed {
        f.abort();
    }
    Ok(ExitStatus {
        code: status.code().unwrap_or(128 + status_signal(&status)),
    })
}

/// Removes the exec's process file when the session ends.
struct RemoveOnDrop(std::path::PathBuf);

/// The process a `kubectl exec` started, killed if the session ends before it does: its client
/// left (the kubelet's streaming server then cancels the exec, and containerd kills the
/// process), or the session was dropped. Ending `runc exec` alone would leave it running in the
/// container. runc writes its pid (in this PID namespace) to `pid_file`.
struct ExecGuard {
    pid_file: std::path::PathBuf,
    ended: bool,
}

impl ExecGuard {
    fn new(run: &Run) -> ExecGuard {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        ExecGuard {
            pid_file: run.dir.join(format!("exec-{unique}.pid")),
            ended: false,
        }
    }

    fn kill(&self) -> bool {
        kill_from(&self.pid_file)
    }

    /// Waits for `runc exec` (it ends with the process), killing the process first if the client
    /// goes away.
    async fn wait(
        &mut self,
        child: &mut tokio::process::Child,
        client_gone: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<std::process::ExitStatus> {
        let status = tokio::select! {
            status = child.wait() => status,
            _ = client_gone => loop {
                // The pid file appears once the process runs.
                if self.kill() {
                    break child.wait().await;
                }
                tokio::select! {
                    status = child.wait() => break status,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                }
            },
        };
        self.ended = true;
        status
    }
}

/// Kills the process whose pid `pid_file` holds; whether the file had one.
fn kill_from(pid_file: &std::path::Path) -> bool {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    true
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if self.ended || self.kill() {
            let _ = std::fs::remove_file(&self.pid_file);
            return;
        }
        // runc writes the pid file only once the process runs: a session dropped before that
        // would leave the command running in the container, so the kill waits for the file
        // in the background (runc goes on after the session is dropped).
        let pid_file = self.pid_file.clone();
        let waiter = std::thread::Builder::new()
            .name("exec-kill".into())
            .spawn(move || {
                for _ in 0..500 {
                    if kill_from(&pid_file) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let _ = std::fs::remove_file(&pid_file);
            });
        if let Err(e) = waiter {
            tracing::warn!(error = %e, "an ended exec's command could not be waited for");
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn status_signal(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

async fn exec_tty(
    mut cmd: tokio::process::Command,
    stdin: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    stdout: tokio::sync::mpsc::Sender<Vec<u8>>,
    resize: Option<tokio::sync::mpsc::Receiver<crate::TerminalSize>>,
    mut guard: ExecGuard,
    client_gone: impl std::future::Future<Output = ()>,
) -> Result<ExitStatus, RuntimeError> {
    let io = |context: &str| {
        let context = context.to_string();
        move |e: nix::Error| RuntimeError::Io {
            context,
            source: std::io::Error::from(e),
        }
    };
    let pty = nix::pty::openpty(None, None).map_err(io("opening a terminal"))?;
    let (master, slave): (OwnedFd, OwnedFd) = (pty.master, pty.slave);
    // Not inherited by anything else started meanwhile (a shim lives as long as its container,
    // and a slave held open elsewhere would keep the reader below from ever seeing the end).
    for fd in [&master, &slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(io("setting close-on-exec on the terminal"))?;
    }
    cmd.stdin(Stdio::from(slave.try_clone().map_err(|source| {
        RuntimeError::Io {
            context: "terminal".into(),
            source,
        }
    })?))
    .stdout(Stdio::from(slave.try_clone().map_err(|source| {
        RuntimeError::Io {
            context: "terminal".into(),
            source,
        }
    })?))
    .stderr(Stdio::from(slave));
    // Safety: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Io {
        context: "running runc exec".into(),
        source,
    })?;
    // Our copies of the slave are closed now (moved into the command and dropped with it).
    drop(cmd);
    let resize_fd = master.try_clone().map_err(|source| RuntimeError::Io {
        context: "terminal".into(),
        source,
    })?;
    let reader = std::fs::File::from(master.try_clone().map_err(|source| RuntimeError::Io {
        context: "terminal".into(),
        source,
    })?);
    let writer = std::fs::File::from(master);
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut r = reader;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stdout.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Blocking writes on a thread of their own: a process that does not read its terminal
    // must not hold up a runtime worker.
    let input = stdin.map(|mut rx| {
        tokio::task::spawn_blocking(move || {
            let mut w = writer;
            while let Some(chunk) = rx.blocking_recv() {
                use std::io::Write;
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    });
    let resizer = resize.map(|mut rx| {
        tokio::spawn(async move {
            let fd = resize_fd;
            while let Some(size) = rx.recv().await {
                super::set_window_size(&fd, size);
            }
        })
    });
    let status = guard
        .wait(&mut child, client_gone)
        .await
        .map_err(|source| RuntimeError::Io {
            context: "waiting for runc exec".into(),
            source,
        })?;
    for t in [input, resizer].into_iter().flatten() {
        t.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), out).await;
    Ok(ExitStatus {
        code: status.code().unwrap_or(128 + status_signal(&status)),
    })
}

#[cfg(test)]
mod tests {
    use super::dial_error;

    #[test]
    fn connect_errors_read_as_the_kubelets() {
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(
            dial_error("10.0.1.5:8080", &refused),
            "dial tcp 10.0.1.5:8080: connect: connection refused"
        );
        let unreachable = std::io::Error::from_raw_os_error(113);
        assert_eq!(
            dial_error("10.0.1.5:81", &unreachable),
            "dial tcp 10.0.1.5:81: connect: no route to host"
        );
    }
}
