//! The client's side of a SPDY session, for driving the server in tests.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::Connection;
use super::frame::Frame;
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};

pub struct Peer {
    pub io: DuplexStream,
    encoder: HeaderEncoder,
    decoder: HeaderDecoder,
    buf: Vec<u8>,
}

impl Peer {
    pub async fn send(&mut self, frame: Frame) {
        let mut wire = Vec::new();
        frame.encode(&mut self.encoder, &mut wire).unwrap();
        self.io.write_all(&wire).await.unwrap();
    }

    /// Opens stream `id` with a `streamType` header.
    pub async fn open(&mut self, id: u32, kind: &str) {
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new().with("streamType", kind),
        })
        .await;
    }

    /// The next frame; `None` at the end of the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = Frame::decode(&mut self.buf, &mut self.decoder).unwrap() {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Every frame until the end of the connection.
    pub async fn recv_all(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.recv().await {
            frames.push(f);
        }
        frames
    }
}

/// A server session and the client talking to it.
pub fn pair() -> (Connection, Peer) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (
        Connection::serve(a),
        Peer {
            io: b,
            encoder: HeaderEncoder::new(),
            decoder: HeaderDecoder::new(),
            buf: Vec::new(),
        },
    )
}
