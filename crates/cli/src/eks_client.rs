//! A small EKS API client for the CLI's eksctl-shaped commands. It finds the endpoint as the aws
//! CLI does and signs requests with SigV4 (so it works against `up --auth strict` too).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use localfargate_core::sigv4::{SignedRequest, signature};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// An error the EKS API answered with.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub struct EksClient {
    http: reqwest::blocking::Client,
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
}

/// `--endpoint-url`, else `AWS_ENDPOINT_URL_EKS`, else `AWS_ENDPOINT_URL`, else the default.
pub fn resolve_endpoint(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("AWS_ENDPOINT_URL_EKS")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// RFC 3986 encoding of one path segment.
fn encode_segment(segment: &str) -> String {
    percent_encode(segment)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
fn amz_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl EksClient {
    pub fn new(endpoint: String, region: String) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(EksClient {
            http,
            endpoint,
            region,
            access_key: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".to_string()),
            secret_key: std::env::var("AWS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|_| "test".to_string()),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One call: `segments` are percent-encoded one by one; `body` is sent as JSON.
    pub fn call(&self, method: &str, segments: &[&str], body: Option<&Value>) -> Result<Value> {
        self.call_with_query(method, segments, &[], body)
    }

    fn call_with_query(
        &self,
        method: &str,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let path: String = segments
            .iter()
            .map(|s| format!("/{}", encode_segment(s)))
            .collect();
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{}", self.endpoint, query.join("&"))
        };
        let parsed =
            reqwest::Url::parse(&url).with_context(|| format!("invalid endpoint URL {url}"))?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("")),
            None => parsed.host_str().unwrap_or("").to_string(),
        };
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = amz_date(now);
        let headers = vec![
            ("host".to_string(), host),
            ("x-amz-date".to_string(), date.clone()),
        ];
        let payload_hash = hex::encode(Sha256::digest(payload.as_bytes()));
        let sig = signature(
            &self.secret_key,
            &SignedRequest {
                method,
                raw_path: parsed.path(),
                raw_query: parsed.query().unwrap_or(""),
                headers: &headers,
                payload_hash: &payload_hash,
                amz_date: &date,
                scope: (&date[..8], &self.region, "eks"),
            },
        );
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{}/eks/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}",
            self.access_key,
            &date[..8],
            self.region
        );
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .http
            .request(method, parsed)
            .header("x-amz-date", &date)
            .header("authorization", authorization);
        if body.is_some() {
            request = request
                .header("content-type", "application/json")
                .body(payload);
        }
        let response = request.send().with_context(|| {
            format!(
                "cannot reach the EKS API at {} (is `localfargate up` running?)",
                self.endpoint
            )
        })?;
        let status = response.status().as_u16();
        let code = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let text = response.text()?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if status >= 400 {
            let message = value["message"]
                .as_str()
                .or(value["Message"].as_str())
                .unwrap_or("")
                .to_string();
            return Err(AwsError {
                status,
                code: code.unwrap_or_else(|| status.to_string()),
                message,
            }
            .into());
        }
        Ok(value)
    }

    /// One Query-protocol call (IAM, STS) at the same endpoint, signed for `service` in
    /// `region`: the XML answer, or the `AwsError` its `<Code>` and `<Message>` name.
    pub fn query(&self, service: &str, region: &str, params: &[(&str, &str)]) -> Result<String> {
        let payload: String = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = format!("{}/", self.endpoint);
        let parsed =
            reqwest::Url::parse(&url).with_context(|| format!("invalid endpoint URL {url}"))?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("")),
            None => parsed.host_str().unwrap_or("").to_string(),
        };
        let date = amz_date(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            ("host".to_string(), host),
            ("x-amz-date".to_string(), date.clone()),
        ];
        let payload_hash = hex::encode(Sha256::digest(payload.as_bytes()));
        let sig = signature(
            &self.secret_key,
            &SignedRequest {
                method: "POST",
                raw_path: parsed.path(),
                raw_query: "",
                headers: &headers,
                payload_hash: &payload_hash,
                amz_date: &date,
                scope: (&date[..8], region, service),
            },
        );
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{region}/{service}/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={sig}",
            self.access_key,
            &date[..8],
        );
        let response = self
            .http
            .post(parsed)
            .header("content-type", content_type)
            .header("x-amz-date", &date)
            .header("authorization", authorization)
            .body(payload)
            .send()
            .with_context(|| format!("cannot reach {service} at {}", self.endpoint))?;
        let status = response.status().as_u16();
        let text = response.text()?;
        if status >= 400 {
            return Err(AwsError {
                status,
                code: xml_text(&text, "Code").unwrap_or_else(|| status.to_string()),
                message: xml_text(&text, "Message").unwrap_or_default(),
            }
            .into());
        }
        Ok(text)
    }

    /// Follow `nextToken` through every page of a list call.
    pub fn list_all(&self, segments: &[&str], member: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query: Vec<(&str, &str)> =
                token.iter().map(|t| ("nextToken", t.as_str())).collect();
            let page = self.call_with_query("GET", segments, &query, None)?;
            out.extend(
                page[member]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Poll until `done` says so, showing progress on stderr.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut() -> Result<Option<String>>,
    ) -> Result<()> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        let start = std::time::Instant::now();
        loop {
            match done()? {
                None => {
                    bar.finish_and_clear();
                    eprintln!("✔ {what} ({:.1}s)", start.elapsed().as_secs_f64());
                    return Ok(());
                }
                Some(state) => bar.set_message(format!(
                    "waiting for {what}: {state} ({}s)",
                    start.elapsed().as_secs()
                )),
            }
            if start.elapsed() > timeout {
                bar.finish_and_clear();
                bail!("timed out after {}s waiting for {what}", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The text of the first `<tag>` element of a Query-protocol answer, entities decoded (the
/// answers are flat enough that this is all the CLI reads from them).
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        // The HTTP Date header the server sent with createdAt 1795462785: Mon, 23 Nov 2026 19:39:45 GMT.
        assert_eq!(amz_date(1_795_462_785), "20261123T193945Z");
    }

    #[test]
    fn xml_text_reads_the_first_element_and_decodes_entities() {
        let xml =
            "<E><Error><Code>NoSuchEntity</Code><Message>a &amp; &lt;b&gt;</Message></Error></E>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("NoSuchEntity"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & <b>"));
        assert_eq!(xml_text(xml, "Arn"), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(
            encode_segment("arn:aws:eks:us-east-1:1:cluster/c"),
            "arn%3Aaws%3Aeks%3Aus-east-1%3A1%3Acluster%2Fc"
        );
    }
}
