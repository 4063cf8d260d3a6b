//! The Amazon EKS API on the AWS wire protocol (rest-json): every operation of botocore's EKS
//! model (clusters, Fargate profiles, managed node groups, updates, add-ons, access entries,
//! identity providers, Pod Identity associations, tags), over the localfargate store; and on the same endpoint,
//! IAM and STS (Query protocol, XML: `iam`, `sts`). The aws CLI, boto3 and the Go SDK (eksctl,
//! Terraform) talk to it with nothing but an endpoint override.

mod access_entries;
mod addons;
pub mod auth;
mod clusters;
pub mod error;
pub mod iam;
pub mod iam_checks;
mod identity_providers;
mod misc;
mod nodegroups;
mod pod_identity;
mod profiles;
mod sts;
mod tags;
mod updates;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use localfargate_core::access_entries::default_principal_arn;
use localfargate_core::eks::Network;
use localfargate_core::profile::ProfileQuotas;
use localfargate_store::Store;
use serde_json::{Value, json};

pub use auth::{AuthMode, Credentials};
use error::ApiError;

/// How long each lifecycle step takes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub cluster_create: f64,
    pub cluster_delete: f64,
    pub profile_create: f64,
    pub profile_delete: f64,
    pub nodegroup_create: f64,
    pub nodegroup_delete: f64,
    /// Cluster, node group and add-on updates (InProgress → Successful).
    pub update: f64,
    /// Add-ons' creation and deletion.
    pub addon: f64,
}

impl Timing {
    /// Every step takes `seconds`.
    pub fn uniform(seconds: f64) -> Self {
        Timing {
            cluster_create: seconds,
            cluster_delete: seconds,
            profile_create: seconds,
            profile_delete: seconds,
            nodegroup_create: seconds,
            nodegroup_delete: seconds,
            update: seconds,
            addon: seconds,
        }
    }

    /// Durations like AWS's: clusters about 10 minutes, profiles and node groups a few.
    pub fn aws() -> Self {
        Timing {
            cluster_create: 600.0,
            cluster_delete: 300.0,
            profile_create: 120.0,
            profile_delete: 120.0,
            nodegroup_create: 180.0,
            nodegroup_delete: 180.0,
            update: 600.0,
            addon: 60.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub clusters: usize,
    pub profiles_per_cluster: usize,
    pub nodegroups_per_cluster: usize,
    pub profile: ProfileQuotas,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            clusters: 100,
            profiles_per_cluster: 10,
            nodegroups_per_cluster: 30,
            profile: ProfileQuotas::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub region: String,
    pub account_id: String,
    pub quotas: Quotas,
    pub timing: Timing,
    pub network: Network,
    /// Host of the clusters' Kubernetes APIs.
    pub kube_host: String,
    /// Each cluster's Kubernetes API gets its own port, the lowest free one from here: its TLS
    /// certificate is signed by that cluster's own CA, so clusters cannot share a listener.
    pub kube_port_base: u16,
    pub auth: AuthMode,
    /// `up --iam strict`: CreateCluster's and CreateFargateProfile's roles must exist in IAM and
    /// trust EKS's service principals, as AWS checks them. Off: any well-formed role ARN.
    pub iam_strict: bool,
    /// Clusters' OIDC issuers without a port, as EKS's are: `https://127.1.H.L/id/ID`, served
    /// on port 443 of a loopback address of the cluster's own (`up` sets it when it may bind
    /// port 443 and the API listens on loopback). Else `https://KUBE_HOST:PORT/id/ID` on the
    /// Kubernetes API's port.
    pub portless_issuer: bool,
}

impl Config {
    pub fn new(region: &str, account_id: &str) -> Self {
        Config {
            region: region.to_string(),
            account_id: account_id.to_string(),
            quotas: Quotas::default(),
            timing: Timing::uniform(2.0),
            network: Network::default_for(region),
            kube_host: "127.0.0.1".to_string(),
            kube_port_base: 6443,
            auth: AuthMode::Any,
            iam_strict: false,
            portless_issuer: false,
        }
    }

    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    fn arn(&self, resource: &str) -> String {
        format!(
            "arn:{}:eks:{}:{}:{resource}",
            self.partition(),
            self.region,
            self.account_id
        )
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Config,
}

/// The EKS API, plus `GET /_localfargate/health`, `GET /_localfargate/network` and
/// `POST /_localfargate/reset` for harnesses
/// (and `POST /moto-api/reset`, which moto's test suite calls).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let stored = |id: &str| stored_key(&state, id);
    let query = sts::query_parameters(&method, &uri, &headers, &body);
    let mut response = match query {
        Some(params) if iam::is_iam(&params, &headers) => {
            match auth::check_for(
                "iam",
                &state.config.auth,
                &stored,
                &method,
                &uri,
                &headers,
                &body,
            ) {
                Ok(caller) => {
                    let caller =
                        caller.unwrap_or_else(|| default_principal_arn(&state.config.account_id));
                    iam::handle(&state, &params, &caller, &request_id)
                }
                Err(e) => iam::from_api_error(&e, &request_id),
            }
        }
        Some(params) if sts::is_sts(&params, &headers) => {
            // Web identity federation is unsigned: the token is the credential.
            let checked = if sts::unsigned_action(&params) {
                Ok(None)
            } else {
                auth::check_for(
                    "sts",
                    &state.config.auth,
                    &stored,
                    &method,
                    &uri,
                    &headers,
                    &body,
                )
            };
            match checked {
                Ok(caller) => {
                    let caller =
                        caller.unwrap_or_else(|| default_principal_arn(&state.config.account_id));
                    sts::handle(&state, &params, &caller, &request_id)
                }
                Err(e) => sts::from_api_error(&e, &request_id),
            }
        }
        _ => match handle(&state, &method, &uri, &headers, &body) {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(%method, path = uri.path(), error_type = e.error_type, message = %e.message, "client error");
                e.into_response()
            }
        },
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// Credentials IAM (a user's access key) or STS (a session) issued: verified under `--auth
/// strict`, and in either mode the caller's identity (`auth::check_for`).
fn stored_key(state: &AppState, access_key_id: &str) -> Option<auth::StoredKey> {
    // What IAM and STS issue (`AKIA…`, `ASIA…`): other keys, such as the `test` most clients
    // send, are not looked up.
    if !(access_key_id.starts_with("AKIA") || access_key_id.starts_with("ASIA")) {
        return None;
    }
    let get = |kind: &str, key: &str| {
        state
            .store
            .get(kind, key)
            .ok()
            .flatten()
            .map(|o| o.value.clone())
    };
    localfargate_core::stored_credentials::lookup(&get, access_key_id)
}

fn json(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let path = uri.path();
    let segs = wire::segments(path);
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = wire::query(uri.query());
    // Health needs no signature; everything else, reset included, is checked in strict mode.
    if let (&Method::GET, ["_localfargate", "health"]) = (method, seg.as_slice()) {
        return Ok(json(json!({"status": "ok"})));
    }
    // Who the caller is: its access key's principal, or the account's default identity.
    let stored = |id: &str| stored_key(state, id);
    let caller = auth::check(&state.config.auth, &stored, method, uri, headers, body)?
        .unwrap_or_else(|| default_principal_arn(&state.config.account_id));
    if let (&Method::POST, ["_localfargate", "reset"] | ["moto-api", "reset"]) =
        (method, seg.as_slice())
    {
        state.store.reset()?;
        return Ok(json(json!({"status": "ok"})));
    }
    if let (&Method::GET, ["_localfargate", "network"]) = (method, seg.as_slice()) {
        // The VPC model this server runs with, so clients default to its subnets.
        return serde_json::to_value(&state.config.network)
            .map(json)
            .map_err(|e| ApiError::server(e.to_string()));
    }
    if let (&Method::GET, ["_localfargate", "clusters", name, "token"]) = (method, seg.as_slice()) {
        return clusters::kube_token(state, name).map(json);
    }
    let s = state;
    match (method, seg.as_slice()) {
        (&Method::POST, ["clusters"]) => clusters::create(s, &wire::body(body)?, &caller).map(json),
        (&Method::GET, ["clusters"]) => clusters::list(s, &q).map(json),
        (&Method::GET, ["clusters", name]) => clusters::describe(s, name).map(json),
        (&Method::DELETE, ["clusters", name]) => clusters::delete(s, name).map(json),
        (&Method::POST, ["clusters", c, "fargate-profiles"]) => {
            profiles::create(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "fargate-profiles"]) => profiles::list(s, c, &q).map(json),
        (&Method::GET, ["clusters", c, "fargate-profiles", p]) => profiles::describe(s, c, p),
        (&Method::DELETE, ["clusters", c, "fargate-profiles", p]) => {
            profiles::delete(s, c, p).map(json)
        }
        (&Method::POST, ["clusters", c, "node-groups"]) => {
            nodegroups::create(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "node-groups"]) => nodegroups::list(s, c, &q).map(json),
        (&Method::GET, ["clusters", c, "node-groups", n]) => nodegroups::describe(s, c, n),
        (&Method::DELETE, ["clusters", c, "node-groups", n]) => {
            nodegroups::delete(s, c, n).map(json)
        }
        (&Method::POST, ["clusters", c, "access-entries"]) => {
            access_entries::create(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "access-entries"]) => {
            access_entries::list(s, c, &q).map(json)
        }
        (&Method::GET, ["clusters", c, "access-entries", p]) => {
            access_entries::describe(s, c, p).map(json)
        }
        (&Method::POST, ["clusters", c, "access-entries", p]) => {
            access_entries::update(s, c, p, &wire::body(body)?).map(json)
        }
        (&Method::DELETE, ["clusters", c, "access-entries", p]) => {
            access_entries::delete(s, c, p).map(json)
        }
        (&Method::POST, ["clusters", c, "access-entries", p, "access-policies"]) => {
            access_entries::associate(s, c, p, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "access-entries", p, "access-policies"]) => {
            access_entries::list_associated(s, c, p, &q).map(json)
        }
        (
            &Method::DELETE,
            [
                "clusters",
                c,
                "access-entries",
                p,
                "access-policies",
                policy,
            ],
        ) => access_entries::disassociate(s, c, p, policy).map(json),
        (&Method::GET, ["access-policies"]) => access_entries::list_policies(&q).map(json),
        (&Method::POST, ["clusters", c, "update-config"]) => {
            updates::update_cluster_config(s, c, &wire::body(body)?).map(json)
        }
        (&Method::POST, ["clusters", c, "updates"]) => {
            updates::update_cluster_version(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "updates"]) => updates::list(s, c, &q).map(json),
        (&Method::GET, ["clusters", c, "updates", id]) => updates::describe(s, c, id, &q).map(json),
        (&Method::POST, ["clusters", c, "updates", id, "cancel-update"]) => {
            updates::cancel(s, c, id).map(json)
        }
        (&Method::POST, ["clusters", c, "node-groups", n, "update-config"]) => {
            updates::update_nodegroup_config(s, c, n, &wire::body(body)?).map(json)
        }
        (&Method::POST, ["clusters", c, "node-groups", n, "update-version"]) => {
            updates::update_nodegroup_version(s, c, n, &wire::body(body)?).map(json)
        }
        (&Method::POST, ["clusters", c, "addons"]) => {
            addons::create(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "addons"]) => addons::list(s, c, &q).map(json),
        (&Method::GET, ["clusters", c, "addons", a]) => addons::describe(s, c, a).map(json),
        (&Method::POST, ["clusters", c, "addons", a, "update"]) => {
            addons::update(s, c, a, &wire::body(body)?).map(json)
        }
        (&Method::DELETE, ["clusters", c, "addons", a]) => addons::delete(s, c, a, &q).map(json),
        (&Method::GET, ["addons", "supported-versions"]) => addons::versions(&q).map(json),
        (&Method::GET, ["addons", "configuration-schemas"]) => {
            addons::configuration_schema(&q).map(json)
        }
        (&Method::POST, ["clusters", c, "identity-provider-configs", "associate"]) => {
            identity_providers::associate(s, c, &wire::body(body)?).map(json)
        }
        (&Method::POST, ["clusters", c, "identity-provider-configs", "disassociate"]) => {
            identity_providers::disassociate(s, c, &wire::body(body)?).map(json)
        }
        (&Method::POST, ["clusters", c, "identity-provider-configs", "describe"]) => {
            identity_providers::describe(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "identity-provider-configs"]) => {
            identity_providers::list(s, c, &q).map(json)
        }
        (&Method::POST, ["clusters", c, "pod-identity-associations"]) => {
            pod_identity::create(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "pod-identity-associations"]) => {
            pod_identity::list(s, c, &q).map(json)
        }
        (&Method::GET, ["clusters", c, "pod-identity-associations", id]) => {
            pod_identity::describe(s, c, id).map(json)
        }
        (&Method::POST, ["clusters", c, "pod-identity-associations", id]) => {
            pod_identity::update(s, c, id, &wire::body(body)?).map(json)
        }
        (&Method::DELETE, ["clusters", c, "pod-identity-associations", id]) => {
            pod_identity::delete(s, c, id).map(json)
        }
        (&Method::GET, ["cluster-versions"]) => misc::cluster_versions(&q).map(json),
        (&Method::POST, ["clusters", c, "insights"]) => {
            misc::list_insights(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "insights", id]) => {
            misc::describe_insight(s, c, id).map(json)
        }
        (&Method::GET, ["clusters", c, "insights-refresh"]) => {
            misc::insights_refresh(s, c, false).map(json)
        }
        (&Method::POST, ["clusters", c, "insights-refresh"]) => {
            misc::insights_refresh(s, c, true).map(json)
        }
        (&Method::POST, ["clusters", c, "encryption-config", "associate"]) => {
            misc::associate_encryption_config(s, c, &wire::body(body)?).map(json)
        }
        (&Method::GET, ["clusters", c, "certificate-authorities"]) => {
            misc::list_certificate_authorities(s, c).map(json)
        }
        (&Method::GET, ["clusters", c, "certificate-authorities", id]) => {
            misc::describe_certificate_authority(s, c, id).map(json)
        }
        (&Method::POST, ["clusters", c, "certificate-authorities", ..])
        | (&Method::DELETE, ["clusters", c, "certificate-authorities", _]) => {
            misc::certificate_authority_change(s, c).map(json)
        }
        (&Method::POST, ["cluster-registrations"]) => {
            misc::register_cluster(&wire::body(body)?).map(json)
        }
        (&Method::DELETE, ["cluster-registrations", name]) => {
            misc::deregister_cluster(s, name).map(json)
        }
        (&Method::GET, ["clusters", c, "capabilities"]) => {
            misc::list_capabilities(s, c, &q).map(json)
        }
        (&Method::POST, ["clusters", c, "capabilities"]) => misc::capability(s, c, None).map(json),
        (_, ["clusters", c, "capabilities", name]) => misc::capability(s, c, Some(name)).map(json),
        (&Method::GET, ["eks-anywhere-subscriptions"]) => misc::list_subscriptions(&q).map(json),
        (&Method::POST, ["eks-anywhere-subscriptions"]) => misc::subscription(None).map(json),
        (_, ["eks-anywhere-subscriptions", id]) => misc::subscription(Some(id)).map(json),
        (&Method::POST, ["tags", arn]) => tags::tag(s, arn, &wire::body(body)?).map(json),
        (&Method::DELETE, ["tags", arn]) => tags::untag(s, arn, &q).map(json),
        (&Method::GET, ["tags", arn]) => tags::list(s, arn).map(json),
        _ => Err(ApiError::unknown_operation()),
    }
}
