//! The shim's side of `kubectl attach` (the wire format is in [`attach`](super::attach)).
//!
//! The shim gives the container its stdio when it runs `runc create`: pipes for stdout and
//! stderr, a pipe for stdin when the container has `stdin: true` (else `/dev/null`), or, for
//! `tty: true`, a terminal whose master runc hands over on a console socket. It keeps the
//! stdin end (or the master) for attached clients, and the [`Hub`] sends every chunk of output
//! to each of them as well as to the CRI log. Plain std threads: the shim is synchronous.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::attach::{CLOSE_STDIN, MAX_FRAME, RESIZE, SOCKET, STDERR, STDIN, STDOUT};
use super::attach::{frame, parse_resize};
use super::shim::ShimArgs;
use crate::crilog::Stream;

/// Output frames queued per client; a client that falls this far behind is dropped rather than
/// hold up the container's output.
const CLIENT_QUEUE: usize = 256;
/// How long a write to a client may block.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The console socket's name in the run's directory.
const CONSOLE_SOCKET: &str = "console.sock";

/// The attached clients of one container run, and the container's input.
pub(super) struct Hub {
    clients: Mutex<Clients>,
    /// Where clients' stdin goes: the write end of the stdin pipe, or the terminal's master.
    stdin: Mutex<Option<File>>,
    /// The terminal's master, for resizes.
    terminal: Option<OwnedFd>,
}

#[derive(Default)]
struct Clients {
    senders: Vec<SyncSender<Vec<u8>>>,
    writers: Vec<JoinHandle<()>>,
    closed: bool,
}

impl Hub {
    fn new(stdin: Option<File>, terminal: Option<OwnedFd>) -> Arc<Hub> {
        Arc::new(Hub {
            clients: Mutex::new(Clients::default()),
            stdin: Mutex::new(stdin),
            terminal,
        })
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a chunk of the container's output to every client.
    pub(super) fn broadcast(&self, stream: Stream, data: &[u8]) {
        let mut clients = self.clients();
        if clients.senders.is_empty() {
            return;
        }
        let kind = match stream {
            Stream::Stdout => STDOUT,
            Stream::Stderr => STDERR,
        };
        let wire = frame(kind, data);
        clients
            .senders
            .retain(|tx| match tx.try_send(wire.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            });
    }

    /// Listens on `attach.sock` in `dir` for clients.
    pub(super) fn listen(self: &Arc<Self>, dir: &Path) -> io::Result<()> {
        let dir = File::open(dir)?;
        let path = own_path(&dir, SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let hub = Arc::clone(self);
        std::thread::spawn(move || {
            // Keeps the directory's descriptor (and so the socket's path) alive.
            let _dir = dir;
            for conn in listener.incoming().flatten() {
                hub.add(conn);
            }
        });
        Ok(())
    }

    fn add(self: &Arc<Self>, conn: UnixStream) {
        let (Ok(reader), Ok(closer)) = (conn.try_clone(), conn.try_clone()) else {
            return;
        };
        let _ = conn.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
        let (tx, rx) = sync_channel::<Vec<u8>>(CLIENT_QUEUE);
        let mut clients = self.clients();
        if clients.closed {
            return;
        }
        clients.senders.push(tx);
        clients.writers.push(std::thread::spawn(move || {
            let mut conn = conn;
            for wire in rx {
                if conn.write_all(&wire).is_err() {
                    break;
                }
            }
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }));
        drop(clients);
        let hub = Arc::clone(self);
        std::thread::spawn(move || {
            hub.serve_input(reader);
            // The client left: its writer ends at its next write.
            let _ = closer.shutdown(std::net::Shutdown::Both);
        });
    }

    /// Applies what one client sends until it disconnects.
    fn serve_input(&self, mut conn: UnixStream) {
        let mut head = [0u8; 5];
        while conn.read_exact(&mut head).is_ok() {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > MAX_FRAME {
                return;
            }
            let mut payload = vec![0u8; len];
            if conn.read_exact(&mut payload).is_err() {
                return;
            }
            match head[0] {
                STDIN => {
                    let mut stdin = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&payload).is_err()
                    {
                        *stdin = None;
                    }
                }
                CLOSE_STDIN => {
                    self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
                }
                RESIZE => {
                    if let (Some(master), Some(size)) = (&self.terminal, parse_resize(&payload)) {
                        super::set_window_size(master, size);
                    }
                }
                _ => {}
            }
        }
    }

    /// The container's output has ended: every client gets what is queued, then the end.
    pub(super) fn close(&self) {
        let writers = {
            let mut clients = self.clients();
            clients.closed = true;
            clients.senders.clear();
            std::mem::take(&mut clients.writers)
        };
        for w in writers {
            let _ = w.join();
        }
    }
}

/// `name` in the directory open as `dir`, by a path short enough for a socket address and
/// valid in other processes too (runc connects to the console socket).
fn own_path(dir: &File, name: &str) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}/{name}",
        std::process::id(),
        dir.as_raw_fd()
    ))
}

/// What [`create`] started: runc's status, the container's outputs to copy into the log, and
/// the hub for attach clients.
pub(super) struct Created {
    pub status: io::Result<ExitStatus>,
    pub outputs: Vec<(OwnedFd, Stream)>,
    pub hub: Arc<Hub>,
}

/// Runs `runc create` (`command`, which lacks only the container id) with the container's stdio.
pub(super) fn create(args: &ShimArgs, mut command: Command) -> Result<Created, String> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: io::Error| format!("{what}: {e}")
    };
    if args.tty {
        let dir = File::open(&args.bundle).map_err(io("opening the bundle"))?;
        let path = own_path(&dir, CONSOLE_SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io("creating the console socket"))?;
        let mut child = command
            .arg("--console-socket")
            .arg(&path)
            .arg(&args.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(&format!("running {}", args.runc.display())))?;
        let master = receive_terminal(&listener, &mut child);
        let status = child.wait();
        let _ = std::fs::remove_file(&path);
        let master = match (master, &status) {
            (Ok(m), _) => m,
            // runc failed before it sent the terminal: its status says why.
            (Err(_), Ok(s)) if !s.success() => {
                return Ok(Created {
                    status,
                    outputs: Vec::new(),
                    hub: Hub::new(None, None),
                });
            }
            (Err(e), _) => return Err(format!("receiving the container's terminal: {e}")),
        };
        let dup = |m: &OwnedFd| m.try_clone().map_err(io("duplicating the terminal"));
        let (input, resize) = (File::from(dup(&master)?), dup(&master)?);
        return Ok(Created {
            status,
            outputs: vec![(master, Stream::Stdout)],
            hub: Hub::new(Some(input), Some(resize)),
        });
    }
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
    let (out_r, out_w) = pipe().map_err(|e| format!("creating the stdout pipe: {e}"))?;
    let (err_r, err_w) = pipe().map_err(|e| format!("creating the stderr pipe: {e}"))?;
    let (stdin, input) = if args.stdin {
        let (r, w) = pipe().map_err(|e| format!("creating the stdin pipe: {e}"))?;
        (Stdio::from(r), Some(File::from(w)))
    } else {
        (Stdio::null(), None)
    };
    // The command holds the container's ends and drops them when it returns: then only the
    // container has them, and the pipes end when it does.
    let status = command
        .arg(&args.id)
        .stdin(stdin)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status();
    drop(command);
    Ok(Created {
        status,
        outputs: vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
        hub: Hub::new(input, None),
    })
}

/// Accepts runc's connection on the console socket and takes the terminal's master from it
/// (`SCM_RIGHTS`); gives up once runc has exited without sending it.
fn receive_terminal(
    listener: &UnixListener,
    child: &mut std::process::Child,
) -> io::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)?;
                return receive_fd(&conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if child.try_wait()?.is_some() {
                    return Err(io::Error::other("runc exited without sending a terminal"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

fn receive_fd(conn: &UnixStream) -> io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Safety: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // Safety: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // Safety: recvmsg into the buffers described by `msg`.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: walking the control buffer recvmsg filled, as the CMSG macros do.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
            return Ok(OwnedFd::from_raw_fd(fd));
        }
    }
    Err(io::Error::other(
        "runc sent no terminal on the console socket",
    ))
}
