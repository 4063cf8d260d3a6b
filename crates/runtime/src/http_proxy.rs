//! An HTTP/1.1 reverse proxy on the host's loopback, routing by host and path to pods: what an
//! Application Load Balancer does for an Ingress of class `alb` (target type `ip`) on EKS.
//!
//! [`HttpListener`] owns `127.0.0.1:<port>` and a table of [`HttpRoutes`] its owner replaces.
//! A request goes to the first route that matches: routes whose host matches come before
//! routes without a host; among them `Exact` paths first, then `Prefix` paths longest first,
//! then `ImplementationSpecific` ones (ALB path patterns, `*` and `?`) in order — the order the
//! AWS Load Balancer Controller gives the ALB's rules. No route: the default backend, else
//! `404 Not Found` (the controller's default action). A route without a ready target answers
//! the ALB's `503 Service Temporarily Unavailable`; an unreachable one the ALB's `502`.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a connect to a target may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a route's path matches (the Ingress's `pathType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Element-wise: `/foo` matches `/foo` and `/foo/…`, not `/foobar`.
    Prefix(String),
    /// An ALB path pattern: `*` any characters, `?` one; case-sensitive.
    Pattern(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                let p = p.trim_end_matches('/');
                p.is_empty() || path == p || path.starts_with(&format!("{p}/"))
            }
            PathMatch::Pattern(p) => glob(p.as_bytes(), path.as_bytes()),
        }
    }

    /// Sort key: exact, then prefix (longest first), then patterns in order.
    fn rank(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(_) => (0, 0),
            PathMatch::Prefix(p) => (1, usize::MAX - p.len()),
            PathMatch::Pattern(_) => (2, 0),
        }
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// One rule: an optional host (exact, or `*.example.com` for one label), a path, the targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub host: Option<String>,
    pub path: PathMatch,
    pub targets: Vec<SocketAddr>,
}

/// Everything a listener routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRoutes {
    pub routes: Vec<HttpRoute>,
    /// The default backend's targets, if there is one.
    pub default: Option<Vec<SocketAddr>>,
}

fn host_matches(rule: &str, host: &str) -> bool {
    match rule.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => rule.eq_ignore_ascii_case(host),
    }
}

impl HttpRoutes {
    /// The targets for a request, or `None` when nothing matches (and there is no default).
    pub fn targets(&self, host: &str, path: &str) -> Option<&[SocketAddr]> {
        let mut candidates: Vec<(u8, (u8, usize), usize, &HttpRoute)> = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.host.as_deref().is_none_or(|h| host_matches(h, host)))
            .map(|(i, r)| (u8::from(r.host.is_none()), r.path.rank(), i, r))
            .collect();
        candidates.sort_by_key(|(hostless, rank, i, _)| (*hostless, *rank, *i));
        candidates
            .into_iter()
            .find(|(.., r)| r.path.matches(path))
            .map(|(.., r)| r.targets.as_slice())
            .or(self.default.as_deref())
    }
}

/// `127.0.0.1:<port>` serving HTTP by an [`HttpRoutes`] table. Dropping it closes the port.
pub struct HttpListener {
    addr: SocketAddr,
    routes: Arc<RwLock<HttpRoutes>>,
    task: JoinHandle<()>,
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

impl HttpListener {
    /// Listens on `127.0.0.1:port`; fails with `AddrInUse` when something else has it.
    pub fn bind(port: u16) -> io::Result<HttpListener> {
        Self::listen(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Listens on a free loopback port.
    pub fn bind_any() -> io::Result<HttpListener> {
        Self::bind(0)
    }

    fn listen(addr: SocketAddr) -> io::Result<HttpListener> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let routes = Arc::new(RwLock::new(HttpRoutes::default()));
        let task = tokio::spawn(serve(listener, Arc::clone(&routes)));
        Ok(HttpListener { addr, routes, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn routes(&self) -> HttpRoutes {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_routes(&self, routes: HttpRoutes) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }
}

async fn serve(listener: TcpListener, routes: Arc<RwLock<HttpRoutes>>) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (routes, next) = (Arc::clone(&routes), Arc::clone(&next));
        let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (routes, next) = (Arc::clone(&routes), Arc::clone(&next));
                async move { Ok::<_, Infallible>(route(req, &routes, &next, peer, local_port).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn fixed(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    }
    response
}

const BODY_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n";
const BODY_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

async fn route(
    mut req: Request<Incoming>,
    routes: &RwLock<HttpRoutes>,
    next: &AtomicUsize,
    peer: SocketAddr,
    local_port: u16,
) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("")
        .to_string();
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host.as_str(), |(h, _)| h)
        .to_string();
    let targets = {
        let table = routes.read().unwrap_or_else(|p| p.into_inner());
        table
            .targets(&host, req.uri().path())
            .map(<[SocketAddr]>::to_vec)
    };
    let Some(targets) = targets else {
        return fixed(StatusCode::NOT_FOUND, "");
    };
    if targets.is_empty() {
        return fixed(StatusCode::SERVICE_UNAVAILABLE, BODY_503);
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    let mut stream = None;
    for i in 0..targets.len() {
        let addr = targets[(start + i) % targets.len()];
        if let Ok(Ok(s)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            stream = Some(s);
            break;
        }
    }
    let Some(stream) = stream else {
        return fixed(StatusCode::BAD_GATEWAY, BODY_502);
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return fixed(StatusCode::BAD_GATEWAY, BODY_502);
    };
    tokio::spawn(conn.with_upgrades());
    // The ALB's forwarding headers.
    let h = req.headers_mut();
    let forwarded = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        h.insert("x-forwarded-for", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(&local_port.to_string()) {
        h.insert("x-forwarded-port", v);
    }
    match sender.send_request(req).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => fixed(StatusCode::BAD_GATEWAY, BODY_502),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: Option<&str>, path: PathMatch, port: u16) -> HttpRoute {
        HttpRoute {
            host: host.map(str::to_string),
            path,
            targets: vec![SocketAddr::from(([10, 0, 1, 5], port))],
        }
    }

    #[test]
    fn routes_match_as_the_alb_rules_are_ordered() {
        let table = HttpRoutes {
            routes: vec![
                r(None, PathMatch::Prefix("/".into()), 1),
                r(None, PathMatch::Prefix("/api".into()), 2),
                r(None, PathMatch::Exact("/api/health".into()), 3),
                r(Some("shop.example.com"), PathMatch::Prefix("/".into()), 4),
                r(
                    Some("*.example.com"),
                    PathMatch::Pattern("/img/*.png".into()),
                    5,
                ),
            ],
            default: None,
        };
        let port = |host: &str, path: &str| table.targets(host, path).map(|t| t[0].port());
        assert_eq!(port("localhost", "/"), Some(1));
        assert_eq!(port("localhost", "/api"), Some(2));
        assert_eq!(port("localhost", "/api/users"), Some(2));
        assert_eq!(port("localhost", "/apix"), Some(1));
        assert_eq!(port("localhost", "/api/health"), Some(3));
        assert_eq!(port("SHOP.example.com", "/api"), Some(4));
        assert_eq!(port("cdn.example.com", "/img/a.png"), Some(5));
        assert_eq!(port("cdn.example.com", "/img/a.jpg"), Some(1));
        assert_eq!(port("a.b.example.com", "/img/a.png"), Some(1));
        let none = HttpRoutes {
            routes: vec![r(Some("x"), PathMatch::Exact("/".into()), 1)],
            default: None,
        };
        assert_eq!(none.targets("y", "/"), None);
    }
}
