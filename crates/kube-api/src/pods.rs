//! `pods/log`, and what `pods/exec` and `pods/attach` ([`crate::remotecommand`]) share with it:
//! the container a request means and the pod's sandbox in the `SandboxRuntime` the node agent
//! runs it with.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::{Container, Pod};
use localfargate_registry::objects::{KubeError, resource};
use localfargate_registry::typed;
use localfargate_runtime::{LogOptions, RuntimeError, SandboxId};

use crate::context::Api;
use crate::request::Query;

const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

pub(crate) fn bad(message: String) -> KubeError {
    KubeError::BadRequest(message)
}

/// The pod a request names, decoded.
pub(crate) fn get_pod(api: &Api, ns: &str, name: &str) -> Result<Pod, KubeError> {
    Ok(typed::decode(&api.objects.get(
        resource("", "pods"),
        ns,
        name,
    )?)?)
}

/// The names of the pod's regular containers and of its init containers.
fn container_names(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let names = |list: Option<&Vec<Container>>| -> Vec<String> {
        list.into_iter().flatten().map(|c| c.name.clone()).collect()
    };
    let spec = pod.spec.as_ref();
    (
        names(spec.map(|s| &s.containers)),
        names(spec.and_then(|s| s.init_containers.as_ref())),
    )
}

/// The container a request means: `container=`, else the default-container annotation, else the
/// only one; with upstream's errors.
pub(crate) fn pick_container(
    pod: &Pod,
    name: &str,
    asked: Option<&str>,
) -> Result<String, KubeError> {
    let (regular, init) = container_names(pod);
    let default = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER));
    let chosen = match asked.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => match default {
            Some(c) => c.to_string(),
            None if regular.len() == 1 => regular[0].clone(),
            None => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    regular.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                return Err(bad(message));
            }
        },
    };
    if !regular.contains(&chosen) && !init.contains(&chosen) {
        return Err(bad(format!(
            "container {chosen} is not valid for pod {name}"
        )));
    }
    Ok(chosen)
}

pub(crate) async fn sandbox(
    api: &Api,
    pod: &Pod,
    name: &str,
    container: &str,
) -> Result<SandboxId, KubeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    match api.runtime.sandbox_of_pod(uid).await.ok().flatten() {
        Some(summary) => Ok(summary.id),
        None => Err(bad(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))),
    }
}

fn runtime_error(e: RuntimeError) -> KubeError {
    match e {
        RuntimeError::ContainerWaiting { .. }
        | RuntimeError::PreviousNotFound { .. }
        | RuntimeError::NotFound(_)
        | RuntimeError::ExecUnsupported { .. }
        | RuntimeError::NotRunning { .. }
        | RuntimeError::Stopped { .. } => KubeError::BadRequest(e.to_string()),
        e => KubeError::Internal(e.to_string()),
    }
}

fn number(query: &Query, key: &str) -> Result<Option<u64>, KubeError> {
    query
        .get(key)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad(format!("{key}: invalid value {v:?}")))
        })
        .transpose()
}

/// `GET …/pods/<name>/log`.
pub async fn logs(
    api: &Arc<Api>,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response, KubeError> {
    let pod = get_pod(api, ns, name)?;
    let container = pick_container(&pod, name, query.get("container"))?;
    let id = sandbox(api, &pod, name, &container).await?;
    let since = match (number(query, "sinceSeconds")?, query.get("sinceTime")) {
        (Some(s), _) => Some(
            SystemTime::now()
                .checked_sub(Duration::from_secs(s))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        (None, Some(t)) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|e| bad(format!("sinceTime: {e}")))?
                .into(),
        ),
        (None, None) => None,
    };
    let options = LogOptions {
        follow: query.flag("follow"),
        tail_lines: number(query, "tailLines")?,
        limit_bytes: number(query, "limitBytes")?,
        timestamps: query.flag("timestamps"),
        since,
        previous: query.flag("previous"),
    };
    let mut rx = api
        .runtime
        .logs(&id, &container, options)
        .await
        .map_err(runtime_error)?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<Bytes, Infallible>(Bytes::from(b))))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}
