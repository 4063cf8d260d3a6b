//! A small HTTP/1.1 keep-alive load generator for the EKS API benchmark (scripts/bench-eks-api):
//! N connections each send GET requests back to back for a fixed time, then it prints requests
//! per second and latency percentiles. Only loopback addresses are accepted.
//!
//! Usage: loadgen HOST:PORT PATH CONNECTIONS SECONDS [SERVICE]
//! (SERVICE: the credential scope's service, `eks` by default; `iam` or `sts` for Query
//! requests, which moto_server routes by it.)

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connection(
    addr: String,
    path: String,
    service: String,
    until: Instant,
) -> std::io::Result<Vec<u32>> {
    let mut stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nX-Amz-Date: 20260101T000000Z\r\n\r\n"
    );
    let mut latencies_us = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reconnect = false;
    while Instant::now() < until {
        let start = Instant::now();
        if reconnect {
            // The server closes after each response (moto's werkzeug does): a new connection per
            // request, its cost counted, as a client would see it.
            stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
        }
        stream.write_all(request.as_bytes()).await?;
        // Read headers, then exactly Content-Length bytes of body.
        let mut have = 0;
        let (header_end, body_len) = loop {
            let n = stream.read(&mut buf[have..]).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            have += n;
            if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(std::io::Error::other(format!(
                        "non-200 response: {}",
                        head.lines().next().unwrap_or("")
                    )));
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| std::io::Error::other("no content-length"))?;
                reconnect = head
                    .lines()
                    .any(|l| l.replace(' ', "") == "connection:close");
                break (end + 4, len);
            }
            if have == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        };
        while have < header_end + body_len {
            if buf.len() < header_end + body_len {
                buf.resize(header_end + body_len, 0);
            }
            let n = stream.read(&mut buf[have..]).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed mid-body"));
            }
            have += n;
        }
        latencies_us.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    Ok(latencies_us)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, path, connections, seconds, service) = match &args[..] {
        [_, addr, path, connections, seconds] => (addr, path, connections, seconds, "eks"),
        [_, addr, path, connections, seconds, service] => {
            (addr, path, connections, seconds, service.as_str())
        }
        _ => {
            eprintln!("usage: loadgen HOST:PORT PATH CONNECTIONS SECONDS [SERVICE]");
            std::process::exit(2);
        }
    };
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    if !(host.starts_with("127.") || host == "localhost" || host == "[::1]") {
        eprintln!("loadgen only targets loopback addresses");
        std::process::exit(2);
    }
    let connections: usize = connections.parse().unwrap_or(64);
    let seconds: f64 = seconds.parse().unwrap_or(5.0);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(connection(
                addr.clone(),
                path.clone(),
                service.to_string(),
                until,
            ))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("connection error: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("task error: {e}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} requests in {:.1}s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} connection errors",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed,
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        f64::from(all.last().copied().unwrap_or(0)) / 1000.0,
        errors
    );
}
