//! `kubectl attach` for the process runtime: the runtime's side of the attach socket.
//!
//! Each container's shim listens on `attach.sock` in the run's directory (see
//! [`shim_attach`](super::shim_attach)). It holds the container's stdin (a pipe for
//! `stdin: true`, or the terminal's master for `tty: true`) and sends everything the
//! container writes to every connected client. The wire format, both ways, is a frame of one
//! kind byte, a 32-bit big-endian length and the payload:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | 0 `STDIN` | to the shim | bytes for the container's stdin |
//! | 1 `STDOUT`, 2 `STDERR` | from the shim | the container's output |
//! | 3 `CLOSE_STDIN` | to the shim | none: close the container's stdin (`stdinOnce`) |
//! | 4 `RESIZE` | to the shim | width and height, 16 bits each |
//!
//! The shim closes the connection once the container's process has exited and its output is
//! sent.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{AttachRequest, ContainerSpec, RuntimeError, TerminalSize};

pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const CLOSE_STDIN: u8 = 3;
pub(crate) const RESIZE: u8 = 4;

/// The socket's name in the run's directory.
pub(crate) const SOCKET: &str = "attach.sock";

/// The most payload one frame carries.
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// A frame's wire form.
pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub(crate) fn resize_payload(size: TerminalSize) -> [u8; 4] {
    let [w0, w1] = size.width.to_be_bytes();
    let [h0, h1] = size.height.to_be_bytes();
    [w0, w1, h0, h1]
}

pub(crate) fn parse_resize(payload: &[u8]) -> Option<TerminalSize> {
    match payload {
        [w0, w1, h0, h1] => Some(TerminalSize {
            width: u16::from_be_bytes([*w0, *w1]),
            height: u16::from_be_bytes([*h0, *h1]),
        }),
        _ => None,
    }
}

/// A path to `name` in `dir` short enough for a socket address (108 bytes): through the
/// directory's descriptor in `/proc/self/fd`. The descriptor must stay open while it is used.
pub(crate) fn short_path(dir: &std::fs::File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

async fn connect(run_dir: &Path) -> io::Result<UnixStream> {
    let dir = std::fs::File::open(run_dir)?;
    UnixStream::connect(short_path(&dir, SOCKET)).await
}

/// Reads one frame; `None` at the end of the connection.
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other("attach frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// One attach session to the container whose current run lives in `run_dir`.
pub(super) async fn session(
    run_dir: &Path,
    pod: &str,
    c: &ContainerSpec,
    request: AttachRequest,
) -> Result<(), RuntimeError> {
    let socket = connect(run_dir).await.map_err(|source| RuntimeError::Io {
        context: format!(
            "attaching to container {} of pod {pod} (a container started before attach was \
             supported cannot be attached to until it restarts)",
            c.name
        ),
        source,
    })?;
    let (mut from_shim, mut to_shim) = socket.into_split();
    let AttachRequest {
        stdin,
        stdout,
        stderr,
        resize,
    } = request;
    // As containerd: stdin only reaches a container that keeps one open.
    let mut stdin = stdin.filter(|_| c.stdin);
    let mut resize = resize.filter(|_| c.tty);
    let output = async move {
        while let Ok(Some((kind, data))) = read_frame(&mut from_shim).await {
            let to = if kind == STDERR { &stderr } else { &stdout };
            if to.send(data).await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(output);
    loop {
        tokio::select! {
            _ = &mut output => return Ok(()),
            chunk = async { stdin.as_mut()?.recv().await }, if stdin.is_some() => match chunk {
                Some(data) => {
                    if to_shim.write_all(&frame(STDIN, &data)).await.is_err() {
                        return Ok(());
                    }
                }
                // containerd's rule: with stdinOnce and no terminal the container's stdin is
                // closed and the session goes on until it exits; otherwise the client detaches.
                None if c.stdin_once && !c.tty => {
                    stdin = None;
                    let _ = to_shim.write_all(&frame(CLOSE_STDIN, &[])).await;
                }
                None => return Ok(()),
            },
            size = async { resize.as_mut()?.recv().await }, if resize.is_some() => match size {
                Some(size) => {
                    let _ = to_shim.write_all(&frame(RESIZE, &resize_payload(size))).await;
                }
                None => resize = None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_resizes_have_fixed_forms() {
        assert_eq!(frame(STDIN, b"hi"), [0, 0, 0, 0, 2, b'h', b'i']);
        let size = TerminalSize {
            width: 300,
            height: 40,
        };
        assert_eq!(resize_payload(size), [1, 44, 0, 40]);
        assert_eq!(parse_resize(&resize_payload(size)), Some(size));
        assert_eq!(parse_resize(&[1, 2, 3]), None);
    }

    #[tokio::test]
    async fn frames_read_back() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&frame(STDOUT, b"out")).await.unwrap();
        a.write_all(&frame(CLOSE_STDIN, &[])).await.unwrap();
        drop(a);
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some((STDOUT, b"out".to_vec()))
        );
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some((CLOSE_STDIN, vec![]))
        );
        assert_eq!(read_frame(&mut b).await.unwrap(), None);
    }
}
