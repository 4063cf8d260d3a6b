//! The server side of a SPDY/3.1 session over an upgraded HTTP connection, as Kubernetes' Go
//! peers (`moby/spdystream`) speak it: the client opens every stream; each is accepted with a
//! SYN_REPLY and ends on a FIN in each direction (or a RST_STREAM); PINGs are echoed.
//!
//! Flow control (SETTINGS, WINDOW_UPDATE) is read and ignored: spdystream neither sends window
//! updates nor waits for them, so a sender that honoured SPDY/3.1 windows would stall after
//! 64 KiB. Backpressure comes from the bounded queues between the socket and the streams.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::SpdyError;
use super::frame::{Frame, GoAwayStatus, RstStatus};
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};

/// Chunks queued per stream before the socket reader waits for the stream's consumer.
const STREAM_QUEUE: usize = 32;
/// Frames queued for the socket writer.
const WRITE_QUEUE: usize = 64;
/// The most bytes put in one DATA frame.
const DATA_CHUNK: usize = 32 * 1024;

enum Command {
    Frame(Frame),
    /// Flush, then shut the sending direction of the socket down.
    Shutdown(oneshot::Sender<()>),
}

/// One SPDY session. Streams opened by the peer come out of [`accept`](Connection::accept).
pub struct Connection {
    incoming: mpsc::Receiver<Stream>,
    commands: mpsc::Sender<Command>,
    peer_gone: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

/// A stream the peer opened: its headers, what the peer sends on it, and our side of it.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

/// What the peer sends on a stream; `None` once it half-closed (FIN), reset it, or the session
/// ended.
pub struct StreamReader {
    data: mpsc::Receiver<Vec<u8>>,
}

impl StreamReader {
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.data.recv().await
    }
}

/// Our side of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    commands: mpsc::Sender<Command>,
}

impl StreamWriter {
    /// Sends `data` as DATA frames; fails once the session is over.
    pub async fn write(&self, data: &[u8]) -> Result<(), SpdyError> {
        for chunk in data.chunks(DATA_CHUNK) {
            self.send(Frame::Data {
                stream_id: self.id,
                fin: false,
                data: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Half-closes the stream: an empty DATA frame with FIN.
    pub async fn finish(&self) -> Result<(), SpdyError> {
        self.send(Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Vec::new(),
        })
        .await
    }

    /// Aborts the stream in both directions.
    pub async fn reset(&self, status: RstStatus) -> Result<(), SpdyError> {
        self.send(Frame::rst(self.id, status)).await
    }

    async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        self.commands
            .send(Command::Frame(frame))
            .await
            .map_err(|_| SpdyError::Closed)
    }
}

impl Connection {
    /// Serves a session on `io` (the connection after `101 Switching Protocols`).
    pub fn serve<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (commands, command_rx) = mpsc::channel(WRITE_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(8);
        let (gone_tx, peer_gone) = watch::channel(false);
        let writer = tokio::spawn(write_frames(write, command_rx));
        let reader = tokio::spawn(read_frames(read, commands.clone(), incoming_tx, gone_tx));
        Connection {
            incoming,
            commands,
            peer_gone,
            reader,
            writer,
        }
    }

    /// The next stream the peer opens (already answered with a SYN_REPLY); `None` once the
    /// session is over.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Resolves once the peer has closed the connection (or it failed).
    pub async fn peer_closed(&self) {
        let mut gone = self.peer_gone.clone();
        let _ = gone.wait_for(|g| *g).await;
    }

    /// Ends the session: a GOAWAY after everything queued, then the sending direction shut
    /// down; then waits, at most `linger`, for the peer to close its side. Closing first would
    /// make the kernel answer the peer's late frames with a reset, which can throw away data
    /// the peer has received but not yet read.
    pub async fn close(self, linger: Duration) {
        let _ = self
            .commands
            .send(Command::Frame(Frame::GoAway {
                last_good_stream_id: 0,
                status: GoAwayStatus::Ok as u32,
            }))
            .await;
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(ack)).await.is_ok() {
            let _ = tokio::time::timeout(linger, done).await;
        }
        let _ = tokio::time::timeout(linger, self.peer_closed()).await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

async fn write_frames<W: AsyncWrite>(
    write: tokio::io::WriteHalf<W>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut write = write;
    let mut encoder = HeaderEncoder::new();
    let mut buf = Vec::new();
    while let Some(command) = commands.recv().await {
        let mut next = Some(command);
        // Everything queued goes out in one write.
        while let Some(command) = next.take() {
            match command {
                Command::Frame(frame) => {
                    if let Err(e) = frame.encode(&mut encoder, &mut buf) {
                        tracing::warn!(error = %e, "encoding a SPDY frame");
                    }
                }
                Command::Shutdown(ack) => {
                    let _ = write.write_all(&buf).await;
                    let _ = write.flush().await;
                    let _ = write.shutdown().await;
                    let _ = ack.send(());
                    return;
                }
            }
            if buf.len() < 256 * 1024 {
                next = commands.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
}

async fn read_frames<R: AsyncRead>(
    read: tokio::io::ReadHalf<R>,
    commands: mpsc::Sender<Command>,
    incoming: mpsc::Sender<Stream>,
    gone: watch::Sender<bool>,
) {
    let mut read = read;
    let mut decoder = HeaderDecoder::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // Per open stream, where the peer's data goes (`None` once it half-closed).
    let mut streams: HashMap<u32, Option<mpsc::Sender<Vec<u8>>>> = HashMap::new();
    let mut last_id = 0u32;
    let send = |frame: Frame| {
        let commands = commands.clone();
        async move { commands.send(Command::Frame(frame)).await.is_ok() }
    };
    'session: loop {
        loop {
            let frame = match Frame::decode(&mut buf, &mut decoder) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY protocol error");
                    send(Frame::GoAway {
                        last_good_stream_id: last_id,
                        status: GoAwayStatus::ProtocolError as u32,
                    })
                    .await;
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                    ..
                } => {
                    // Client streams are odd and increase.
                    if stream_id % 2 == 0 || stream_id <= last_id {
                        send(Frame::rst(stream_id, RstStatus::ProtocolError)).await;
                        continue;
                    }
                    last_id = stream_id;
                    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                    streams.insert(stream_id, (!fin).then_some(tx));
                    // Answered before it is handed on, so the reply precedes any data.
                    send(Frame::SynReply {
                        stream_id,
                        fin: false,
                        headers: Headers::new(),
                    })
                    .await;
                    let stream = Stream {
                        id: stream_id,
                        headers,
                        reader: StreamReader { data: rx },
                        writer: StreamWriter {
                            id: stream_id,
                            commands: commands.clone(),
                        },
                    };
                    if incoming.send(stream).await.is_err() {
                        streams.remove(&stream_id);
                        send(Frame::rst(stream_id, RstStatus::RefusedStream)).await;
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => match streams.get_mut(&stream_id) {
                    Some(slot) => {
                        if let Some(tx) = slot {
                            // A consumer that went away just stops receiving.
                            if !data.is_empty() && tx.send(data).await.is_err() {
                                *slot = None;
                            }
                        }
                        if fin {
                            *slot = None;
                        }
                    }
                    None if stream_id > last_id => {
                        send(Frame::rst(stream_id, RstStatus::InvalidStream)).await;
                    }
                    None => {}
                },
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => {
                    // No new streams; the open ones go on until the peer closes.
                }
                Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown { .. } => {}
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    drop(streams);
    let _ = gone.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spdy::testing::pair;

    fn open(id: u32, kind: &str, fin: bool) -> Frame {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin,
            unidirectional: false,
            headers: Headers::new().with("streamType", kind),
        }
    }

    #[tokio::test]
    async fn streams_are_accepted_replied_to_and_carry_data_both_ways() {
        let (mut conn, mut peer) = pair();
        peer.send(open(1, "error", false)).await;
        peer.send(open(3, "stdin", false)).await;
        let mut error = conn.accept().await.unwrap();
        let mut stdin = conn.accept().await.unwrap();
        assert_eq!(error.headers.get("streamtype"), Some("error"));
        assert_eq!(stdin.id, 3);
        for id in [1, 3] {
            assert_eq!(
                peer.recv().await,
                Some(Frame::SynReply {
                    stream_id: id,
                    fin: false,
                    headers: Headers::new()
                })
            );
        }
        peer.send(Frame::Data {
            stream_id: 3,
            fin: false,
            data: b"input".to_vec(),
        })
        .await;
        peer.send(Frame::Data {
            stream_id: 3,
            fin: true,
            data: vec![],
        })
        .await;
        assert_eq!(stdin.reader.recv().await.as_deref(), Some(&b"input"[..]));
        assert_eq!(stdin.reader.recv().await, None);
        peer.send(Frame::Ping { id: 1 }).await;
        assert_eq!(peer.recv().await, Some(Frame::Ping { id: 1 }));
        error.writer.write(b"status").await.unwrap();
        error.writer.finish().await.unwrap();
        assert_eq!(
            peer.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: false,
                data: b"status".to_vec()
            })
        );
        assert_eq!(
            peer.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                data: vec![]
            })
        );
        // The peer sees the GOAWAY and the end, then closes; close returns.
        let closing = tokio::spawn(conn.close(Duration::from_secs(30)));
        assert!(matches!(peer.recv().await, Some(Frame::GoAway { .. })));
        assert_eq!(peer.recv().await, None);
        drop(peer);
        closing.await.unwrap();
        assert_eq!(error.reader.recv().await, None);
    }

    #[tokio::test]
    async fn bad_stream_ids_resets_and_unknown_frames() {
        let (mut conn, mut peer) = pair();
        peer.send(open(2, "stdout", false)).await;
        assert_eq!(
            peer.recv().await.and_then(|f| f.rst_status()),
            Some(RstStatus::ProtocolError)
        );
        peer.send(open(5, "stdout", false)).await;
        let mut out = conn.accept().await.unwrap();
        assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
        // Reusing a lower id, data on a stream never opened.
        peer.send(open(3, "stderr", false)).await;
        assert_eq!(
            peer.recv().await.and_then(|f| f.rst_status()),
            Some(RstStatus::ProtocolError)
        );
        peer.send(Frame::Data {
            stream_id: 9,
            fin: false,
            data: b"x".to_vec(),
        })
        .await;
        assert_eq!(
            peer.recv().await.and_then(|f| f.rst_status()),
            Some(RstStatus::InvalidStream)
        );
        // Ignored: settings, window updates, unknown types. A reset ends the stream's data.
        peer.send(Frame::Settings {
            entries: vec![(0, 7, 1)],
        })
        .await;
        peer.send(Frame::WindowUpdate {
            stream_id: 5,
            delta: 10,
        })
        .await;
        peer.send(Frame::Unknown { frame_type: 0x30 }).await;
        peer.send(Frame::rst(5, RstStatus::Cancel)).await;
        assert_eq!(out.reader.recv().await, None);
        // A stream opened with FIN has nothing to read.
        peer.send(open(7, "error", true)).await;
        let mut fin = conn.accept().await.unwrap();
        assert_eq!(fin.reader.recv().await, None);
        // A protocol error ends the session with a GOAWAY.
        peer.io
            .write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])
            .await
            .unwrap();
        loop {
            match peer.recv().await {
                Some(Frame::GoAway { status, .. }) => {
                    assert_eq!(status, GoAwayStatus::ProtocolError as u32);
                    break;
                }
                Some(_) => {}
                None => panic!("no GOAWAY"),
            }
        }
        conn.peer_closed().await;
        assert!(conn.accept().await.is_none());
    }
}
