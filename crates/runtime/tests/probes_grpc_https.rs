//! gRPC health probes and HTTPS `httpGet` probes of the process runtime, against servers the
//! test runs inside the pod's network namespace (busybox has neither): a gRPC health service on
//! HTTP/2 cleartext and an HTTPS server with a self-signed certificate. Probes reach them at the
//! pod IP from the host, as the kubelet's do. Root only (skipped with the reason otherwise).

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use localfargate_runtime::{Action, Probe, SandboxRuntime};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRPC_PORT: u16 = 9000;
/// Nothing listens here.
const CLOSED_PORT: u16 = 9001;
const HTTPS_PORT: u16 = 8443;

/// A listener bound in the network namespace at `netns` (a socket keeps the namespace it was
/// made in; the thread that entered the namespace ends here).
fn listen_in(netns: &Path, port: u16) -> tokio::net::TcpListener {
    let netns = netns.to_path_buf();
    let listener = std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("opening the pod's netns");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind in the pod's netns");
        l.set_nonblocking(true).expect("non-blocking");
        l
    })
    .join()
    .expect("binding thread");
    tokio::net::TcpListener::from_std(listener).expect("tokio listener")
}

/// A gRPC health service: `""` and `"ok"` are SERVING, `"down"` NOT_SERVING, `"nohealth"`
/// answers as a server without the health service (UNIMPLEMENTED, Trailers-Only), anything
/// else NOT_FOUND as grpc-go's health server does. Records the services asked about.
async fn grpc_health_server(listener: tokio::net::TcpListener, asked: Arc<Mutex<Vec<String>>>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let asked = asked.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(tcp).await else {
                return;
            };
            while let Some(Ok((request, respond))) = conn.accept().await {
                tokio::spawn(answer_health_check(request, respond, asked.clone()));
            }
        });
    }
}

async fn answer_health_check(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    asked: Arc<Mutex<Vec<String>>>,
) {
    let path = request.uri().path().to_string();
    let content_type = request.headers().get("content-type").cloned();
    let mut body = request.into_body();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    assert_eq!(path, "/grpc.health.v1.Health/Check");
    assert_eq!(
        content_type.as_ref().map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    // One uncompressed message: `HealthCheckRequest`, field 1 (the service) when not empty.
    assert_eq!(data[0], 0, "compressed flag");
    let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
    let message = &data[5..5 + len];
    let service = if message.is_empty() {
        String::new()
    } else {
        assert_eq!(message[0], 0x0a, "field 1, length-delimited");
        String::from_utf8(message[2..2 + message[1] as usize].to_vec()).unwrap()
    };
    asked.lock().unwrap().push(service.clone());
    let grpc_response = |status: &[(&str, &str)]| {
        let mut r = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc");
        for (k, v) in status {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    };
    let serving_status = match service.as_str() {
        "" | "ok" => Some(1u8),
        "down" => Some(2),
        _ => None,
    };
    match (serving_status, service.as_str()) {
        (Some(status), _) => {
            let mut stream = respond.send_response(grpc_response(&[]), false).unwrap();
            stream
                .send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false)
                .unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            stream.send_trailers(trailers).unwrap();
        }
        (None, "nohealth") => {
            let response = grpc_response(&[
                ("grpc-status", "12"),
                ("grpc-message", "unknown service grpc.health.v1.Health"),
            ]);
            respond.send_response(response, true).unwrap();
        }
        (None, _) => {
            let mut stream = respond.send_response(grpc_response(&[]), false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "5".parse().unwrap());
            trailers.insert("grpc-message", "unknown%20service".parse().unwrap());
            stream.send_trailers(trailers).unwrap();
        }
    }
}

/// An HTTPS server with a self-signed certificate: `/healthz` is 200, anything else 503.
async fn https_server(listener: tokio::net::TcpListener) {
    let key = rcgen::generate_simple_self_signed(vec!["pod.invalid".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let status = if request.starts_with("GET /healthz ") {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = tls
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            let _ = tls.shutdown().await;
        });
    }
}

fn readiness(action: Action) -> Probe {
    let mut p = Probe::new(action);
    p.period = Duration::from_millis(500);
    p
}

fn grpc(port: u16, service: &str) -> Action {
    Action::Grpc {
        port,
        service: service.into(),
    }
}

fn https(path: &str) -> Action {
    Action::HttpGet {
        scheme: "HTTPS".into(),
        host: String::new(),
        port: HTTPS_PORT,
        path: path.into(),
        headers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_and_https_probes_gate_readiness_with_the_kubelets_messages() {
    if let Some(why) = process_skip_reason() {
        eprintln!("skipped: the process runtime cannot run here: {why}");
        return;
    }
    let b = ProcessBackend::new().await;
    let rt: &dyn SandboxRuntime = &b.rt;
    let probed = [
        ("serving", grpc(GRPC_PORT, "")),
        ("ok", grpc(GRPC_PORT, "ok")),
        ("down", grpc(GRPC_PORT, "down")),
        ("nohealth", grpc(GRPC_PORT, "nohealth")),
        ("missing", grpc(GRPC_PORT, "missing")),
        ("closed", grpc(CLOSED_PORT, "")),
        ("https", https("/healthz")),
        ("https-fail", https("/fail")),
    ];
    let containers = probed
        .iter()
        .map(|(name, action)| {
            let mut c = sh(name, "exec sleep 3600");
            c.readiness = Some(readiness(action.clone()));
            c
        })
        .collect();
    let id = rt
        .create_sandbox(pod_in_subnet("grpcprobe", 237, containers))
        .await
        .unwrap();
    let net =
        localfargate_runtime::net::PodNetwork::new(localfargate_runtime::net::NetworkConfig {
            bridge: b.config.bridge.clone(),
            netns_prefix: b.config.netns_prefix.clone(),
            egress: false,
        });
    let netns = net.netns_path(id.as_str());
    // The sandbox is built in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !netns.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Arc::new(Mutex::new(Vec::new()));
    let grpc_task = tokio::spawn(grpc_health_server(
        listen_in(&netns, GRPC_PORT),
        asked.clone(),
    ));
    let https_task = tokio::spawn(https_server(listen_in(&netns, HTTPS_PORT)));
    for (name, _) in &probed {
        rt.start_container(&id, name).await.unwrap();
    }

    let ip = "10.250.237.20";
    let expected_failures = [
        (
            "down",
            "service unhealthy (responded with \"NOT_SERVING\")".to_string(),
        ),
        (
            "nohealth",
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health".to_string(),
        ),
        (
            "missing",
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .to_string(),
        ),
        (
            "closed",
            format!(
                "timeout: failed to connect service \"{ip}:{CLOSED_PORT}\" within 1s: context deadline exceeded"
            ),
        ),
        (
            "https-fail",
            "HTTP probe failed with statuscode: 503".to_string(),
        ),
    ];
    let has_event = |s: &localfargate_runtime::SandboxStatus, name: &str, message: &str| {
        s.events.iter().any(|e| {
            e.reason == "Unhealthy"
                && e.container.as_deref() == Some(name)
                && e.message == format!("Readiness probe failed: {message}")
        })
    };
    let st = wait_for(rt, &id, Duration::from_secs(60), |s| {
        ["serving", "ok", "https"]
            .iter()
            .all(|n| container(s, n).ready)
            && expected_failures
                .iter()
                .all(|(name, message)| has_event(s, name, message))
    })
    .await;
    for name in ["serving", "ok", "https"] {
        assert!(container(&st, name).ready, "{name}: {st:?}");
    }
    for (name, message) in &expected_failures {
        let c = container(&st, name);
        assert!(c.state.is_running() && !c.ready, "{name}: {c:?}");
        assert!(
            has_event(&st, name, message),
            "{name}: no event {message:?} in {:?}",
            st.events
        );
    }
    // The ready containers never had a failed probe.
    for name in ["serving", "ok", "https"] {
        assert!(
            !st.events
                .iter()
                .any(|e| e.reason == "Unhealthy" && e.container.as_deref() == Some(name)),
            "{name}: {:?}",
            st.events
        );
    }
    let asked = asked.lock().unwrap().clone();
    for service in ["", "ok", "down", "nohealth", "missing"] {
        assert!(
            asked.iter().any(|s| s == service),
            "{service:?} in {asked:?}"
        );
    }
    grpc_task.abort();
    https_task.abort();
    rt.remove(&id).await.unwrap();
}
