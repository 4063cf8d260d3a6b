//! SPDY/3 frames: the subset Kubernetes' streaming protocols use, in the wire format of the
//! SPDY/3 draft (section 2.2).
//!
//! A control frame starts with the control bit, version 3 and a 16-bit type; a data frame with a
//! 31-bit stream id. Both carry 8 bits of flags and a 24-bit length.

use super::SpdyError;
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};

pub const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// The largest frame payload the 24-bit length allows.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// RST_STREAM status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstStatus {
    ProtocolError = 1,
    InvalidStream = 2,
    RefusedStream = 3,
    Cancel = 5,
    InternalError = 6,
    StreamAlreadyClosed = 9,
}

#[cfg(test)]
impl RstStatus {
    fn from_code(code: u32) -> Option<RstStatus> {
        Some(match code {
            1 => RstStatus::ProtocolError,
            2 => RstStatus::InvalidStream,
            3 => RstStatus::RefusedStream,
            5 => RstStatus::Cancel,
            6 => RstStatus::InternalError,
            9 => RstStatus::StreamAlreadyClosed,
            _ => return None,
        })
    }
}

/// GOAWAY status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoAwayStatus {
    Ok = 0,
    ProtocolError = 1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        /// The raw code: a peer may send codes this side has no name for.
        status: u32,
    },
    Settings {
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame of a type this side does not know (the draft says to ignore it).
    Unknown {
        frame_type: u16,
    },
}

impl Frame {
    pub fn rst(stream_id: u32, status: RstStatus) -> Frame {
        Frame::RstStream {
            stream_id,
            status: status as u32,
        }
    }

    #[cfg(test)]
    pub fn rst_status(&self) -> Option<RstStatus> {
        match self {
            Frame::RstStream { status, .. } => RstStatus::from_code(*status),
            _ => None,
        }
    }

    /// Appends the frame's wire form to `out`; header blocks go through `encoder`.
    pub fn encode(&self, encoder: &mut HeaderEncoder, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]| {
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.push(flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(payload);
        };
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        let words = |ws: &[u32]| ws.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        match self {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let mut payload = words(&[stream_id & 0x7fff_ffff, associated_to & 0x7fff_ffff]);
                payload.push((priority & 0x07) << 5);
                payload.push(0);
                payload.extend(encoder.encode(headers)?);
                let flags = fin_flag(*fin)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(out, SYN_STREAM, flags, &payload);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut payload = words(&[stream_id & 0x7fff_ffff]);
                payload.extend(encoder.encode(headers)?);
                control(out, SYN_REPLY, fin_flag(*fin), &payload);
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let mut payload = words(&[stream_id & 0x7fff_ffff]);
                payload.extend(encoder.encode(headers)?);
                control(out, HEADERS, fin_flag(*fin), &payload);
            }
            Frame::RstStream { stream_id, status } => {
                control(
                    out,
                    RST_STREAM,
                    0,
                    &words(&[stream_id & 0x7fff_ffff, *status]),
                );
            }
            Frame::Settings { entries } => {
                let mut payload = words(&[entries.len() as u32]);
                for (flags, id, value) in entries {
                    payload.extend(words(&[
                        (u32::from(*flags) << 24) | (id & 0xff_ffff),
                        *value,
                    ]));
                }
                control(out, SETTINGS, 0, &payload);
            }
            Frame::Ping { id } => control(out, PING, 0, &words(&[*id])),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => control(
                out,
                GOAWAY,
                0,
                &words(&[last_good_stream_id & 0x7fff_ffff, *status]),
            ),
            Frame::WindowUpdate { stream_id, delta } => control(
                out,
                WINDOW_UPDATE,
                0,
                &words(&[stream_id & 0x7fff_ffff, delta & 0x7fff_ffff]),
            ),
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(SpdyError::Protocol("a data frame is too large".into()));
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(fin_flag(*fin));
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Unknown { frame_type } => control(out, *frame_type, 0, &[]),
        }
        Ok(())
    }

    /// Takes one whole frame off the front of `buf`, if `buf` holds one; header blocks go
    /// through `decoder` (in order: the session's zlib stream depends on it).
    pub fn decode(
        buf: &mut Vec<u8>,
        decoder: &mut HeaderDecoder,
    ) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let frame: Vec<u8> = buf.drain(..8 + len).collect();
        let flags = frame[4];
        let payload = &frame[8..];
        let fin = flags & FLAG_FIN != 0;
        let word = |at: usize| -> Result<u32, SpdyError> {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| SpdyError::Protocol("a control frame is too short".into()))
        };
        if frame[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                fin,
                data: payload.to_vec(),
            }));
        }
        let version = u16::from_be_bytes([frame[0] & 0x7f, frame[1]]);
        if version != VERSION {
            return Err(SpdyError::Protocol(format!(
                "SPDY version {version}, not {VERSION}"
            )));
        }
        let kind = u16::from_be_bytes([frame[2], frame[3]]);
        let id = |at: usize| word(at).map(|w| w & 0x7fff_ffff);
        Ok(Some(match kind {
            SYN_STREAM => {
                let stream_id = id(0)?;
                let associated_to = id(4)?;
                let priority = payload.get(8).copied().unwrap_or(0) >> 5;
                let block = payload
                    .get(10..)
                    .ok_or_else(|| SpdyError::Protocol("a SYN_STREAM is too short".into()))?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: decoder.decode(block)?,
                }
            }
            SYN_REPLY | HEADERS => {
                let stream_id = id(0)?;
                let headers = decoder.decode(&payload[4..])?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            RST_STREAM => Frame::RstStream {
                stream_id: id(0)?,
                status: word(4)?,
            },
            SETTINGS => {
                let count = word(0)? as usize;
                let mut entries = Vec::new();
                for i in 0..count {
                    let flags_id = word(4 + i * 8)?;
                    entries.push((
                        (flags_id >> 24) as u8,
                        flags_id & 0xff_ffff,
                        word(8 + i * 8)?,
                    ));
                }
                Frame::Settings { entries }
            }
            PING => Frame::Ping { id: word(0)? },
            GOAWAY => Frame::GoAway {
                last_good_stream_id: id(0)?,
                status: word(4).unwrap_or(0),
            },
            WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: id(0)?,
                delta: id(4)?,
            },
            other => Frame::Unknown { frame_type: other },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut wire: Vec<u8>) -> Vec<Frame> {
        let mut dec = HeaderDecoder::new();
        let mut frames = Vec::new();
        while let Some(f) = Frame::decode(&mut wire, &mut dec).unwrap() {
            frames.push(f);
        }
        assert!(wire.is_empty(), "left over: {wire:x?}");
        frames
    }

    fn stream(id: u32, kind: &str) -> Frame {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new().with("streamtype", kind),
        }
    }

    /// What kubectl 1.28 sent for `echo hi | kubectl exec -i p1 -- cat` once the server had
    /// answered 101 (and each SYN_STREAM with a SYN_REPLY): four streams named by their
    /// `streamType`, the stdin bytes, and stdin's end as an empty DATA frame with FIN.
    #[test]
    fn decodes_what_kubectl_sends() {
        let frames = decode_all(include_bytes!("testdata/kubectl-1.28-exec-i.bin").to_vec());
        assert_eq!(
            frames,
            vec![
                stream(1, "error"),
                stream(3, "stdin"),
                stream(5, "stdout"),
                stream(7, "stderr"),
                Frame::Data {
                    stream_id: 3,
                    fin: false,
                    data: b"hi\n".to_vec()
                },
                Frame::Data {
                    stream_id: 3,
                    fin: true,
                    data: vec![]
                },
            ]
        );
        let plain = decode_all(include_bytes!("testdata/kubectl-1.28-exec.bin").to_vec());
        assert_eq!(
            plain,
            vec![stream(1, "error"), stream(3, "stdout"), stream(5, "stderr")]
        );
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = vec![
            stream(1, "error"),
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 1,
                fin: true,
                headers: Headers::new().with("a", "b"),
            },
            Frame::rst(3, RstStatus::Cancel),
            Frame::Settings {
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: GoAwayStatus::Ok as u32,
            },
            Frame::WindowUpdate {
                stream_id: 5,
                delta: 1024,
            },
            Frame::Data {
                stream_id: 5,
                fin: true,
                data: b"out".to_vec(),
            },
        ];
        let mut enc = HeaderEncoder::new();
        let mut wire = Vec::new();
        for f in &frames {
            f.encode(&mut enc, &mut wire).unwrap();
        }
        assert_eq!(decode_all(wire), frames);
        assert_eq!(frames[3].rst_status(), Some(RstStatus::Cancel));
    }

    #[test]
    fn known_wire_forms() {
        let mut enc = HeaderEncoder::new();
        let mut wire = Vec::new();
        Frame::Ping { id: 1 }.encode(&mut enc, &mut wire).unwrap();
        assert_eq!(wire, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
        wire.clear();
        Frame::Data {
            stream_id: 5,
            fin: true,
            data: b"ok".to_vec(),
        }
        .encode(&mut enc, &mut wire)
        .unwrap();
        assert_eq!(wire, [0, 0, 0, 5, 1, 0, 0, 2, b'o', b'k']);
        wire.clear();
        Frame::rst(3, RstStatus::RefusedStream)
            .encode(&mut enc, &mut wire)
            .unwrap();
        assert_eq!(wire, [0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 3]);
    }

    #[test]
    fn partial_frames_wait_and_bad_ones_are_errors() {
        let mut dec = HeaderDecoder::new();
        let mut wire = vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0];
        assert_eq!(Frame::decode(&mut wire, &mut dec).unwrap(), None);
        wire.extend_from_slice(&[0, 1]);
        assert_eq!(
            Frame::decode(&mut wire, &mut dec).unwrap(),
            Some(Frame::Ping { id: 1 })
        );
        let mut v2 = vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(Frame::decode(&mut v2, &mut dec).is_err());
        let mut short = vec![0x80, 3, 0, 3, 0, 0, 0, 2, 0, 0];
        assert!(Frame::decode(&mut short, &mut dec).is_err());
        let mut unknown = vec![0x80, 3, 0, 0x42, 0, 0, 0, 0];
        assert_eq!(
            Frame::decode(&mut unknown, &mut dec).unwrap(),
            Some(Frame::Unknown { frame_type: 0x42 })
        );
    }
}
