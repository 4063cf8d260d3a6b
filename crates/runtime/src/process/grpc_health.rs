//! The kubelet's gRPC probe (pkg/probe/grpc): `grpc.health.v1.Health/Check` over HTTP/2
//! cleartext with prior knowledge, success only on `SERVING`, and its failure messages.
//!
//! The two health messages hold one field each (`string service = 1`, `ServingStatus status =
//! 1`), so they are encoded here rather than through a protobuf code generator; HTTP/2 is `h2`.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::time::Instant;

const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// A health response is a few bytes; more than this is not a health service.
const MAX_RESPONSE: usize = 64 * 1024;

/// One health check of `service` at `addr` (`podIP:port`), within `timeout` for connecting and
/// the call together, as the kubelet's context deadline does.
pub(crate) async fn check(addr: &str, service: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let within = crate::timefmt::format_duration(timeout);
    let Some((send, _driver)) = connect(addr, deadline).await else {
        return Err(format!(
            "timeout: failed to connect service {addr:?} within {within}: context deadline exceeded"
        ));
    };
    match tokio::time::timeout_at(deadline, call(send, addr, service, deadline)).await {
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {within}"
        )),
        Ok(Err(status)) => Err(status.probe_message(&within)),
        Ok(Ok(SERVING)) => Ok(()),
        Ok(Ok(other)) => Err(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(other)
        )),
    }
}

/// A connection that speaks HTTP/2 (the server's answer to a PING came back), as grpc-go's
/// blocking dial waits for one: failed attempts are retried after grpc-go's back-off (1 s,
/// growing 1.6 times) until the deadline. `None` when the deadline passed first.
async fn connect(
    addr: &str,
    deadline: Instant,
) -> Option<(h2::client::SendRequest<Bytes>, Driver)> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let attempt = async {
            let tcp = TcpStream::connect(addr).await.ok()?;
            let _ = tcp.set_nodelay(true);
            let (send, mut connection) = h2::client::handshake(tcp).await.ok()?;
            let mut ping = connection.ping_pong()?;
            let driver = Driver(tokio::spawn(async move {
                let _ = connection.await;
            }));
            ping.ping(h2::Ping::opaque()).await.ok()?;
            Some((send, driver))
        };
        if let Ok(Some(connected)) = tokio::time::timeout_at(deadline, attempt).await {
            return Some(connected);
        }
        let next = Instant::now() + backoff;
        if next >= deadline {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::sleep_until(next).await;
        backoff = backoff.mul_f64(1.6);
    }
}

/// The task that drives a connection, ended with the check (or a failed attempt) whatever the
/// server does.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The unary call: the response's `status` field, or the call's gRPC status when not OK.
async fn call(
    send: h2::client::SendRequest<Bytes>,
    addr: &str,
    service: &str,
    deadline: Instant,
) -> Result<i32, RpcStatus> {
    let mut send = send.ready().await.map_err(RpcStatus::transport)?;
    // grpc-timeout carries at most 8 digits.
    let millis = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .clamp(1, 99_999_999);
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://{addr}{CHECK_PATH}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, super::probe::USER_AGENT)
        .header("grpc-timeout", format!("{millis}m"))
        .body(())
        .map_err(|e| RpcStatus::new(Code::INTERNAL, e.to_string()))?;
    let (response, mut body) = send
        .send_request(request, false)
        .map_err(RpcStatus::transport)?;
    body.send_data(frame(&encode_request(service)), true)
        .map_err(RpcStatus::transport)?;
    let response = response.await.map_err(RpcStatus::transport)?;
    let (head, mut recv) = response.into_parts();
    RpcStatus::check_response_head(head.status, &head.headers)?;
    if recv.is_end_stream() {
        // Trailers-Only: the status is in the headers.
        let status = RpcStatus::from_trailers(&head.headers)
            .unwrap_or_else(|| RpcStatus::new(Code::INTERNAL, NO_TRAILERS.into()));
        return if status.code == Code::OK {
            no_message(status)
        } else {
            Err(status)
        };
    }
    let mut data = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(RpcStatus::transport)?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > MAX_RESPONSE {
            return Err(RpcStatus::new(
                Code::RESOURCE_EXHAUSTED,
                format!("grpc: received message larger than max ({MAX_RESPONSE})"),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.map_err(RpcStatus::transport)?;
    let status = trailers
        .as_ref()
        .and_then(RpcStatus::from_trailers)
        .unwrap_or_else(|| RpcStatus::new(Code::INTERNAL, NO_TRAILERS.into()));
    if status.code != Code::OK {
        return Err(status);
    }
    let message = unframe(&data).map_err(|e| RpcStatus::new(Code::INTERNAL, e))?;
    match message {
        Some(m) => decode_response(m).map_err(|e| {
            RpcStatus::new(
                Code::INTERNAL,
                format!("grpc: failed to unmarshal the received message: {e}"),
            )
        }),
        None => no_message(status),
    }
}

const NO_TRAILERS: &str = "server closed the stream without sending trailers";

/// An OK status without a response message: a unary call has to have one.
fn no_message(_: RpcStatus) -> Result<i32, RpcStatus> {
    Err(RpcStatus::new(
        Code::INTERNAL,
        "cardinality violation: received no response message from non-streaming RPC".into(),
    ))
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// An enum value as protobuf-go prints it: its name, or its number when it has none.
fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// A gRPC status code (google.golang.org/grpc/codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Code(u32);

impl Code {
    const OK: Code = Code(0);
    const UNKNOWN: Code = Code(2);
    const DEADLINE_EXCEEDED: Code = Code(4);
    const RESOURCE_EXHAUSTED: Code = Code(8);
    const UNIMPLEMENTED: Code = Code(12);
    const INTERNAL: Code = Code(13);
    const UNAVAILABLE: Code = Code(14);

    /// As grpc-go's `codes.Code.String()` prints it.
    fn name(self) -> String {
        const NAMES: [&str; 17] = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        NAMES
            .get(self.0 as usize)
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("Code({})", self.0))
    }
}

/// A call's outcome: `grpc-status` and `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RpcStatus {
    code: Code,
    message: String,
}

impl RpcStatus {
    fn new(code: Code, message: String) -> RpcStatus {
        RpcStatus { code, message }
    }

    /// The call broke at the HTTP/2 level: a reset stream or a lost connection.
    fn transport(e: h2::Error) -> RpcStatus {
        match e.reason() {
            Some(reason) if e.is_reset() => RpcStatus::new(
                if reason == h2::Reason::REFUSED_STREAM {
                    Code::UNAVAILABLE
                } else if reason == h2::Reason::CANCEL {
                    Code(1)
                } else {
                    Code::INTERNAL
                },
                format!("stream terminated by RST_STREAM with error code: {reason:?}"),
            ),
            _ => RpcStatus::new(Code::UNAVAILABLE, format!("error reading from server: {e}")),
        }
    }

    /// A response that is not gRPC's (HTTP status other than 200, another content type), with
    /// grpc-go's mapping of HTTP statuses to codes.
    fn check_response_head(
        status: http::StatusCode,
        headers: &http::HeaderMap,
    ) -> Result<(), RpcStatus> {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let is_grpc = content_type
            .strip_prefix("application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']));
        if status == http::StatusCode::OK && is_grpc {
            return Ok(());
        }
        let code = match status.as_u16() {
            400 => Code::INTERNAL,
            401 => Code(16),
            403 => Code(7),
            404 => Code::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        };
        let mut parts = Vec::new();
        if status != http::StatusCode::OK {
            parts.push(format!(
                "unexpected HTTP status code received from server: {} ({})",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ));
        }
        if !is_grpc {
            parts.push(format!(
                "transport: received unexpected content-type {content_type:?}"
            ));
        }
        Err(RpcStatus::new(code, parts.join("; ")))
    }

    /// `grpc-status` and the percent-encoded `grpc-message`; `None` without a status.
    fn from_trailers(trailers: &http::HeaderMap) -> Option<RpcStatus> {
        let code = trailers.get("grpc-status")?;
        let code = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|c| c.parse().ok())
            .map(Code)
            .unwrap_or(Code::UNKNOWN);
        let message = trailers
            .get("grpc-message")
            .map(|m| {
                percent_encoding::percent_decode(m.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        Some(RpcStatus::new(code, message))
    }

    /// What the kubelet's event says about a failed call.
    fn probe_message(&self, within: &str) -> String {
        match self.code {
            Code::UNIMPLEMENTED => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                self.message
            ),
            Code::DEADLINE_EXCEEDED => {
                format!("timeout: health rpc did not complete within {within}")
            }
            _ => format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {}",
                self.code.name(),
                self.message
            ),
        }
    }
}

/// `HealthCheckRequest { service }`: field 1, length-delimited; empty when `service` is (proto3
/// leaves default values out).
fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(1 << 3 | 2);
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// `HealthCheckResponse.status` (field 1, a varint); other fields are skipped, the last
/// occurrence wins, absence is `UNKNOWN` (0).
fn decode_response(mut b: &[u8]) -> Result<i32, String> {
    const INVALID: &str = "proto: cannot parse invalid wire-format data";
    let mut status = 0;
    while !b.is_empty() {
        let key = take_varint(&mut b).ok_or(INVALID)?;
        let (field, wire_type) = (key >> 3, key & 7);
        if field == 0 {
            return Err(INVALID.into());
        }
        let skip = match wire_type {
            0 => {
                let v = take_varint(&mut b).ok_or(INVALID)?;
                if field == 1 {
                    // An enum is an int32; negative values come sign-extended to 64 bits.
                    status = v as i32;
                }
                0
            }
            1 => 8,
            2 => usize::try_from(take_varint(&mut b).ok_or(INVALID)?).map_err(|_| INVALID)?,
            5 => 4,
            _ => return Err(INVALID.into()),
        };
        b = b.get(skip..).ok_or(INVALID)?;
    }
    Ok(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A length-prefixed message: not compressed, its length big-endian.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message);
    out.freeze()
}

/// The single message of a unary response body (`None` for an empty body).
fn unframe(body: &[u8]) -> Result<Option<&[u8]>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let (&compressed, rest) = body
        .split_first()
        .ok_or_else(|| "grpc: malformed message".to_string())?;
    if compressed != 0 {
        return Err("grpc: compressed flag set with identity or empty encoding".into());
    }
    let len: [u8; 4] = rest
        .get(..4)
        .and_then(|l| l.try_into().ok())
        .ok_or_else(|| "grpc: malformed message header".to_string())?;
    let len = u32::from_be_bytes(len) as usize;
    let message = rest
        .get(4..4 + len)
        .ok_or_else(|| "grpc: message shorter than its length prefix".to_string())?;
    if rest.len() > 4 + len {
        return Err(
            "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message"
                .into(),
        );
    }
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_the_service_as_field_one() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("ok"), vec![0x0a, 2, b'o', b'k']);
        let long = "s".repeat(200);
        let encoded = encode_request(&long);
        // 200 needs two varint bytes: 0xc8 0x01.
        assert_eq!(&encoded[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(&encoded[3..], long.as_bytes());
    }

    #[test]
    fn responses_decode_their_status_and_skip_other_fields() {
        assert_eq!(decode_response(&[]), Ok(0));
        assert_eq!(decode_response(&[0x08, 1]), Ok(SERVING));
        assert_eq!(decode_response(&[0x08, 2]), Ok(2));
        // An unknown string field (2), a fixed64 (3) and a fixed32 (4) before the status.
        let mut b = vec![0x12, 3, b'a', b'b', b'c', 0x19];
        b.extend([0; 8]);
        b.extend([0x25, 0, 0, 0, 0, 0x08, 3]);
        assert_eq!(decode_response(&b), Ok(3));
        // The last occurrence wins.
        assert_eq!(decode_response(&[0x08, 2, 0x08, 1]), Ok(1));
        // Negative enum values come sign-extended.
        let mut neg = vec![0x08];
        put_varint(&mut neg, -1i64 as u64);
        assert_eq!(decode_response(&neg), Ok(-1));
        for bad in [
            &[0x08][..],
            &[0x12, 5, b'a'],
            &[0x0b],
            &[0x00, 1],
            &[0x80; 11],
        ] {
            assert_eq!(
                decode_response(bad),
                Err("proto: cannot parse invalid wire-format data".to_string()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut b = &out[..];
            assert_eq!(take_varint(&mut b), Some(v));
            assert!(b.is_empty());
        }
    }

    #[test]
    fn messages_are_length_prefixed_uncompressed() {
        let framed = frame(&[0x08, 1]);
        assert_eq!(&framed[..], &[0, 0, 0, 0, 2, 0x08, 1]);
        assert_eq!(unframe(&framed), Ok(Some(&[0x08, 1][..])));
        assert_eq!(unframe(&frame(&[])), Ok(Some(&[][..])));
        assert_eq!(unframe(&[]), Ok(None));
        assert!(
            unframe(&[1, 0, 0, 0, 0])
                .unwrap_err()
                .contains("compressed")
        );
        assert!(unframe(&[0, 0, 0, 0, 3, 1]).is_err());
        assert!(unframe(&[0, 0, 0]).is_err());
        let mut two = frame(&[0x08, 1]).to_vec();
        two.extend_from_slice(&frame(&[0x08, 1]));
        assert!(
            unframe(&two)
                .unwrap_err()
                .starts_with("cardinality violation")
        );
    }

    #[test]
    fn statuses_read_as_the_kubelets_messages() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "12".parse().unwrap());
        trailers.insert(
            "grpc-message",
            "unknown service grpc.health.v1.Health".parse().unwrap(),
        );
        let status = RpcStatus::from_trailers(&trailers).unwrap();
        assert_eq!(
            status.probe_message("1s"),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
        );
        trailers.insert("grpc-status", "5".parse().unwrap());
        trailers.insert("grpc-message", "unknown%20service%3A%20x".parse().unwrap());
        assert_eq!(
            RpcStatus::from_trailers(&trailers)
                .unwrap()
                .probe_message("1s"),
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service: x"
        );
        trailers.insert("grpc-status", "4".parse().unwrap());
        assert_eq!(
            RpcStatus::from_trailers(&trailers)
                .unwrap()
                .probe_message("500ms"),
            "timeout: health rpc did not complete within 500ms"
        );
        assert_eq!(Code(17).name(), "Code(17)");
        assert_eq!(RpcStatus::from_trailers(&http::HeaderMap::new()), None);
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(7), "7");
    }

    #[test]
    fn non_grpc_responses_map_http_statuses_to_codes() {
        let mut grpc = http::HeaderMap::new();
        grpc.insert(
            http::header::CONTENT_TYPE,
            "application/grpc".parse().unwrap(),
        );
        assert_eq!(
            RpcStatus::check_response_head(http::StatusCode::OK, &grpc),
            Ok(())
        );
        grpc.insert(
            http::header::CONTENT_TYPE,
            "application/grpc+proto".parse().unwrap(),
        );
        assert!(RpcStatus::check_response_head(http::StatusCode::OK, &grpc).is_ok());
        let err = RpcStatus::check_response_head(http::StatusCode::NOT_FOUND, &grpc).unwrap_err();
        assert_eq!(err.code, Code::UNIMPLEMENTED);
        assert_eq!(
            err.message,
            "unexpected HTTP status code received from server: 404 (Not Found)"
        );
        let mut html = http::HeaderMap::new();
        html.insert(http::header::CONTENT_TYPE, "text/html".parse().unwrap());
        let err = RpcStatus::check_response_head(http::StatusCode::OK, &html).unwrap_err();
        assert_eq!(
            err.probe_message("1s"),
            "error: health rpc probe failed: rpc error: code = Unknown desc = transport: received unexpected content-type \"text/html\""
        );
        let err = RpcStatus::check_response_head(http::StatusCode::SERVICE_UNAVAILABLE, &html)
            .unwrap_err();
        assert_eq!(err.code, Code::UNAVAILABLE);
        assert_eq!(
            err.message,
            "unexpected HTTP status code received from server: 503 (Service Unavailable); transport: received unexpected content-type \"text/html\""
        );
    }

    /// An HTTP/2 server that takes calls and never answers them.
    async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    let mut held = Vec::new();
                    while let Some(Ok(call)) = conn.accept().await {
                        held.push(call);
                    }
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_call_left_unanswered_is_a_health_rpc_timeout() {
        let (addr, server) = silent_server().await;
        assert_eq!(
            check(&addr, "", Duration::from_millis(500)).await,
            Err("timeout: health rpc did not complete within 500ms".to_string())
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_server_that_is_not_http2_is_never_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        assert_eq!(
            check(&addr, "", Duration::from_millis(500)).await,
            Err(format!(
                "timeout: failed to connect service {addr:?} within 500ms: context deadline exceeded"
            ))
        );
        server.abort();
    }
}
