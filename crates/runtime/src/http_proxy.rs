//! An HTTP/1.1 reverse proxy on the host's loopback, listening as an Application Load Balancer's
//! listener does for an Ingress of class `alb` (target type `ip`) on EKS.
//!
//! [`HttpListener`] owns `127.0.0.1:<port>` (plain HTTP, or HTTPS with a [`ServerTls`]) and a
//! table of [`HttpRoutes`] its owner replaces: the listener's rules in priority order, each a set
//! of [`Condition`]s (all must hold; any value of one) and an [`Action`], and the default action
//! when no rule matches. Conditions are the ALB's: host header and path patterns (`*`, `?`; the
//! host case-insensitive, the path not), HTTP header, method, query string and source IP.
//! Actions: forward to weighted target groups (optionally sticky, by the ALB's `AWSALBTG`
//! cookie), a fixed response, a redirect with `#{host}`-style placeholders. A target group
//! without a ready target answers the ALB's `503 Service Temporarily Unavailable`; an
//! unreachable target the ALB's `502`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a connect to a target may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cookie an ALB sets for target group stickiness.
const STICKY_COOKIE: &str = "AWSALBTG";

/// An ALB pattern: `*` any characters (none included), `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point: patterns come from users, requests from anyone.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn glob_ignore_case(pattern: &str, text: &str) -> bool {
    glob(
        pattern.to_ascii_lowercase().as_bytes(),
        text.to_ascii_lowercase().as_bytes(),
    )
}

/// One condition of a rule; a request meets it when any of its values matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Host header patterns, case-insensitive.
    Host(Vec<String>),
    /// Path patterns, case-sensitive, on the path without the query.
    Path(Vec<String>),
    /// A header's value patterns, case-insensitive.
    Header { name: String, values: Vec<String> },
    /// Method names, exact.
    Method(Vec<String>),
    /// `key=value` patterns (no key: any key), case-insensitive, on the decoded query.
    Query(Vec<(Option<String>, String)>),
    /// CIDR blocks the client's address is in.
    SourceIp(Vec<(IpAddr, u8)>),
}

/// What a rule is asked about a request.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub host: String,
    pub path: String,
    /// The raw query, without `?`.
    pub query: String,
    pub method: String,
    pub headers: HeaderMap,
    pub source: Option<IpAddr>,
}

fn in_cidr(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl Condition {
    pub fn matches(&self, r: &RequestFacts) -> bool {
        match self {
            Condition::Host(values) => values.iter().any(|v| glob_ignore_case(v, &r.host)),
            Condition::Path(values) => values.iter().any(|v| glob(v.as_bytes(), r.path.as_bytes())),
            Condition::Header { name, values } => r
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|h| h.to_str().ok())
                .any(|h| values.iter().any(|v| glob_ignore_case(v, h))),
            Condition::Method(values) => values.contains(&r.method),
            Condition::Query(pairs) => {
                let query: Vec<(String, String)> = r
                    .query
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (decode(k), decode(v))
                    })
                    .collect();
                pairs.iter().any(|(key, value)| {
                    query.iter().any(|(k, v)| {
                        key.as_deref().is_none_or(|key| glob_ignore_case(key, k))
                            && glob_ignore_case(value, v)
                    })
                })
            }
            Condition::SourceIp(nets) => r
                .source
                .is_some_and(|ip| nets.iter().any(|n| in_cidr(ip, *n))),
        }
    }
}

/// One target group of a forward action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    pub targets: Vec<SocketAddr>,
    pub weight: u32,
}

/// Where an ALB redirect sends the client; each part may hold `#{protocol}`, `#{host}`,
/// `#{port}`, `#{path}` (without its leading `/`) and `#{query}` (without `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub protocol: String,
    pub host: String,
    pub port: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl Redirect {
    /// The ALB's defaults for parts not given: the request's own.
    pub fn keeping(status: u16) -> Redirect {
        Redirect {
            protocol: "#{protocol}".into(),
            host: "#{host}".into(),
            port: "#{port}".into(),
            path: "/#{path}".into(),
            query: "#{query}".into(),
            status,
        }
    }

    /// The `Location` for a request that came in by `protocol` (`HTTP`/`HTTPS`) on `port`.
    pub fn location(&self, r: &RequestFacts, protocol: &str, port: u16) -> String {
        let fill = |s: &str| {
            s.replace("#{protocol}", &protocol.to_ascii_lowercase())
                .replace("#{host}", &r.host)
                .replace("#{port}", &port.to_string())
                .replace("#{path}", r.path.trim_start_matches('/'))
                .replace("#{query}", &r.query)
        };
        let query = fill(&self.query);
        format!(
            "{}://{}:{}{}{}{}",
            fill(&self.protocol).to_ascii_lowercase(),
            fill(&self.host),
            fill(&self.port),
            fill(&self.path),
            if query.is_empty() { "" } else { "?" },
            query
        )
    }
}

/// What a rule does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward {
        groups: Vec<TargetGroup>,
        sticky: bool,
    },
    Fixed {
        status: u16,
        content_type: Option<String>,
        body: Option<String>,
    },
    Redirect(Redirect),
}

impl Action {
    /// Forward to one target group.
    pub fn forward(targets: Vec<SocketAddr>) -> Action {
        Action::Forward {
            groups: vec![TargetGroup { targets, weight: 1 }],
            sticky: false,
        }
    }

    /// The AWS Load Balancer Controller's default action: `404`, `text/plain`, no body.
    pub fn not_found() -> Action {
        Action::Fixed {
            status: 404,
            content_type: Some("text/plain".into()),
            body: None,
        }
    }
}

/// One listener rule: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    pub conditions: Vec<Condition>,
    pub action: Action,
}

/// Everything a listener routes: its rules in priority order and its default action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoutes {
    pub rules: Vec<HttpRule>,
    pub default: Action,
}

impl Default for HttpRoutes {
    fn default() -> Self {
        HttpRoutes {
            rules: Vec::new(),
            default: Action::not_found(),
        }
    }
}

impl HttpRoutes {
    /// The action for a request: the first rule whose conditions all hold, else the default.
    pub fn action(&self, r: &RequestFacts) -> &Action {
        self.choose(r).1
    }

    /// [`action`](Self::action) with the index of the rule that gave it (`None`: the default).
    fn choose(&self, r: &RequestFacts) -> (Option<usize>, &Action) {
        self.rules
            .iter()
            .position(|rule| rule.conditions.iter().all(|c| c.matches(r)))
            .map_or((None, &self.default), |i| (Some(i), &self.rules[i].action))
    }
}

/// A certificate and key to serve HTTPS with.
#[derive(Clone)]
pub struct ServerTls(Arc<rustls::ServerConfig>);

impl ServerTls {
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ServerTls, rustls::Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| rustls::Error::General(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| rustls::Error::General(format!("key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls(Arc::new(config)))
    }
}

struct Shared {
    routes: RwLock<HttpRoutes>,
    tls: RwLock<Option<ServerTls>>,
    /// Round-robin over a target group's targets.
    next: AtomicUsize,
    /// Smooth weighted round-robin state over each forward action's target groups, by rule.
    weighted: Mutex<HashMap<Option<usize>, Vec<i64>>>,
    port: u16,
}

/// `127.0.0.1:<port>` serving HTTP, or HTTPS once given a [`ServerTls`], by an [`HttpRoutes`]
/// table. Dropping it closes the port.
pub struct HttpListener {
    addr: SocketAddr,
    shared: Arc<Shared>,
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
        let shared = Arc::new(Shared {
            routes: RwLock::new(HttpRoutes::default()),
            tls: RwLock::new(None),
            next: AtomicUsize::new(0),
            weighted: Mutex::new(HashMap::new()),
            port: addr.port(),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(HttpListener { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn routes(&self) -> HttpRoutes {
        self.shared
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_routes(&self, routes: HttpRoutes) {
        *self
            .shared
            .routes
            .write()
            .unwrap_or_else(|p| p.into_inner()) = routes;
        // Rule indexes may mean other rules now.
        self.shared
            .weighted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// HTTPS with this certificate from the next connection on (`None`: plain HTTP).
    pub fn set_tls(&self, tls: Option<ServerTls>) {
        *self.shared.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
    }

    pub fn is_tls(&self) -> bool {
        self.shared
            .tls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        let tls = shared.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        tokio::spawn(async move {
            match tls {
                Some(ServerTls(config)) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    if let Ok(stream) = acceptor.accept(stream).await {
                        connection(stream, peer, shared, "HTTPS").await;
                    }
                }
                None => connection(stream, peer, shared, "HTTP").await,
            }
        });
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, protocol: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(req, &shared, peer, protocol).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

fn respond(status: StatusCode, content_type: Option<&str>, body: String) -> Response<Body> {
    let empty = body.is_empty();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if let Some(v) = content_type.filter(|_| !empty)
        && let Ok(v) = HeaderValue::from_str(v)
    {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

const BODY_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n";
const BODY_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

fn facts<B>(req: &Request<B>, peer: SocketAddr) -> RequestFacts {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .to_string();
    RequestFacts {
        host,
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        method: req.method().as_str().to_string(),
        headers: req.headers().clone(),
        source: Some(peer.ip()),
    }
}

/// The index of the sticky target group a request's cookie names, if any.
fn sticky_group(headers: &HeaderMap, groups: usize) -> Option<usize> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == STICKY_COOKIE)
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|i| *i < groups)
}

/// Smooth weighted round-robin: over any window of `sum(weights)` picks, each group gets its
/// weight's share, evenly spread.
fn pick_weighted(state: &mut Vec<i64>, weights: &[u32]) -> Option<usize> {
    if state.len() != weights.len() {
        *state = vec![0; weights.len()];
    }
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    for (s, w) in state.iter_mut().zip(weights) {
        *s += i64::from(*w);
    }
    let (best, _) = state
        .iter()
        .enumerate()
        .filter(|(i, _)| weights[*i] > 0)
        .max_by_key(|(i, s)| (**s, std::cmp::Reverse(*i)))?;
    state[best] -= total;
    Some(best)
}

async fn route(
    req: Request<Incoming>,
    shared: &Shared,
    peer: SocketAddr,
    protocol: &'static str,
) -> Response<Body> {
    let facts = facts(&req, peer);
    let (rule, action) = {
        let table = shared.routes.read().unwrap_or_else(|p| p.into_inner());
        let (rule, action) = table.choose(&facts);
        (rule, action.clone())
    };
    let (groups, sticky) = match action {
        Action::Fixed {
            status,
            content_type,
            body,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return respond(status, content_type.as_deref(), body.unwrap_or_default());
        }
        Action::Redirect(r) => {
            let mut response = respond(
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                None,
                String::new(),
            );
            if let Ok(v) = HeaderValue::from_str(&r.location(&facts, protocol, shared.port)) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            return response;
        }
        Action::Forward { groups, sticky } => (groups, sticky),
    };
    let chosen = match sticky_group(req.headers(), groups.len()).filter(|_| sticky) {
        Some(i) => Some(i),
        None if groups.len() == 1 => Some(0),
        None => {
            let weights: Vec<u32> = groups.iter().map(|g| g.weight).collect();
            let mut state = shared.weighted.lock().unwrap_or_else(|p| p.into_inner());
            pick_weighted(state.entry(rule).or_default(), &weights)
        }
    };
    let targets = chosen
        .and_then(|i| groups.get(i))
        .map(|g| g.targets.clone())
        .unwrap_or_default();
    let mut response = forward(req, targets, shared, peer, protocol).await;
    if sticky
        && let Some(i) = chosen
        && let Ok(v) = HeaderValue::from_str(&format!("{STICKY_COOKIE}={i}; Path=/"))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn forward(
    mut req: Request<Incoming>,
    targets: Vec<SocketAddr>,
    shared: &Shared,
    peer: SocketAddr,
    protocol: &'static str,
) -> Response<Body> {
    if targets.is_empty() {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("text/html"),
            BODY_503.into(),
        );
    }
    let start = shared.next.fetch_add(1, Ordering::Relaxed);
    let mut stream = None;
    for i in 0..targets.len() {
        let addr = targets[(start + i) % targets.len()];
        if let Ok(Ok(s)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            stream = Some(s);
            break;
        }
    }
    let bad_gateway = || respond(StatusCode::BAD_GATEWAY, Some("text/html"), BODY_502.into());
    let Some(stream) = stream else {
        return bad_gateway();
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return bad_gateway();
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
    let proto = if protocol == "HTTPS" { "https" } else { "http" };
    h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    if let Ok(v) = HeaderValue::from_str(&shared.port.to_string()) {
        h.insert("x-forwarded-port", v);
    }
    match sender.send_request(req).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => bad_gateway(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, path: &str) -> RequestFacts {
        RequestFacts {
            host: host.into(),
            path: path.into(),
            method: "GET".into(),
            source: Some(IpAddr::from([127, 0, 0, 1])),
            ..Default::default()
        }
    }

    fn fixed(body: &str) -> Action {
        Action::Fixed {
            status: 200,
            content_type: None,
            body: Some(body.into()),
        }
    }

    #[test]
    fn alb_patterns() {
        assert!(glob(b"/img/*.png", b"/img/a/b.png"));
        assert!(glob(b"/*", b"/"));
        assert!(!glob(b"/api", b"/api/"));
        assert!(glob(b"/a?c", b"/abc"));
        assert!(!glob(b"/a?c", b"/ac"));
        assert!(glob_ignore_case("*.Example.com", "shop.example.COM"));
        assert!(!glob_ignore_case("*.example.com", "example.com"));
        // Long adversarial input stays linear-ish.
        let text = "a".repeat(5000);
        assert!(!glob(b"*a*a*a*a*b", text.as_bytes()));
    }

    #[test]
    fn the_first_rule_whose_conditions_all_hold() {
        let table = HttpRoutes {
            rules: vec![
                HttpRule {
                    conditions: vec![
                        Condition::Method(vec!["POST".into()]),
                        Condition::Path(vec!["/api/*".into()]),
                    ],
                    action: fixed("post"),
                },
                HttpRule {
                    conditions: vec![Condition::SourceIp(vec![(IpAddr::from([10, 0, 0, 0]), 8)])],
                    action: fixed("vpc"),
                },
                HttpRule {
                    conditions: vec![Condition::Query(vec![(None, "yes".into())])],
                    action: fixed("query"),
                },
                HttpRule {
                    conditions: vec![
                        Condition::Host(vec!["shop.example.com".into()]),
                        Condition::Path(vec!["/*".into()]),
                    ],
                    action: fixed("shop"),
                },
            ],
            default: Action::not_found(),
        };
        let body = |r: &RequestFacts| match table.action(r) {
            Action::Fixed { body, status, .. } => {
                body.clone().unwrap_or_else(|| status.to_string())
            }
            other => format!("{other:?}"),
        };
        let mut post = request("x", "/api/v1");
        post.method = "POST".into();
        assert_eq!(body(&post), "post");
        assert_eq!(body(&request("x", "/api/v1")), "404");
        let mut inside = request("x", "/");
        inside.source = Some(IpAddr::from([10, 1, 2, 3]));
        assert_eq!(body(&inside), "vpc");
        let mut q = request("x", "/");
        q.query = "a=1&debug=YES".into();
        assert_eq!(body(&q), "query");
        assert_eq!(body(&request("SHOP.example.com", "/cart")), "shop");
    }

    #[test]
    fn weights_are_honoured_over_each_round() {
        let mut state = Vec::new();
        let picks: Vec<usize> = (0..10)
            .filter_map(|_| pick_weighted(&mut state, &[3, 0, 7]))
            .collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 3);
        assert_eq!(picks.iter().filter(|i| **i == 2).count(), 7);
        assert_eq!(pick_weighted(&mut state, &[0, 0]), None);
    }

    #[test]
    fn redirect_locations_fill_placeholders() {
        let mut r = request("shop.example.com", "/a/b");
        r.query = "x=1".into();
        assert_eq!(
            Redirect::keeping(301).location(&r, "HTTP", 8080),
            "http://shop.example.com:8080/a/b?x=1"
        );
        let to = Redirect {
            protocol: "HTTPS".into(),
            host: "www.#{host}".into(),
            port: "443".into(),
            path: "/v2/#{path}".into(),
            query: "from=#{port}".into(),
            status: 302,
        };
        assert_eq!(
            to.location(&request("example.com", "/"), "HTTP", 80),
            "https://www.example.com:443/v2/?from=80"
        );
        assert!(sticky_group(&HeaderMap::new(), 2).is_none());
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; AWSALBTG=1".parse().unwrap());
        assert_eq!(sticky_group(&h, 2), Some(1));
        assert_eq!(sticky_group(&h, 1), None);
    }
}
