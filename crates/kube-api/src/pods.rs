//! `pods/log` and `pods/exec`: the parts of the API that reach into a pod's sandbox, through the
//! `SandboxRuntime` the node agent runs it with. Exec speaks the WebSocket remote-command protocol
//! (`v5.channel.k8s.io`, and v4) that kubectl 1.30+ uses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use localfargate_controllers::node_agent::sandbox_of;
use localfargate_controllers::objects::{KubeError, resource};
use localfargate_runtime::{ExecRequest, LogOptions, RuntimeError, SandboxId, TerminalSize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::rest::{Query, Target, error_response};
use crate::server::Api;

const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

fn bad(message: String) -> KubeError {
    KubeError::BadRequest(message)
}

fn container_names(pod: &Value, key: &str) -> Vec<String> {
    pod["spec"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request means: `container=`, else the default-container annotation, else the
/// only one; with upstream's errors.
fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, KubeError> {
    let regular = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    let chosen = match asked.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => match pod["metadata"]["annotations"][DEFAULT_CONTAINER].as_str() {
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

async fn sandbox(
    api: &Api,
    pod: &Value,
    name: &str,
    container: &str,
) -> Result<SandboxId, KubeError> {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    match sandbox_of(&*api.runtime, uid).await {
        Some(id) => Ok(id),
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
    let pod = api.objects.get(resource("", "pods"), ns, name)?;
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

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// `GET …/pods/<name>/exec` with `Upgrade: websocket`.
pub async fn exec(api: Arc<Api>, target: Target, query: Query, request: Request) -> Response {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade != "websocket" {
        return error_response(&bad(format!(
            "localfargate serves exec over WebSocket ({V5}), not {upgrade}: kubectl 1.30 and later use it by default; with kubectl 1.29 set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true"
        )));
    }
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let prepared = async {
        let pod = api.objects.get(resource("", "pods"), &ns, &name)?;
        let container = pick_container(&pod, &name, query.get("container"))?;
        let id = sandbox(&api, &pod, &name, &container).await?;
        let command: Vec<String> = query
            .all("command")
            .into_iter()
            .map(str::to_string)
            .collect();
        if command.is_empty() {
            return Err(bad("you must specify at least 1 command".into()));
        }
        Ok::<_, KubeError>((id, container, command))
    }
    .await;
    let (id, container, command) = match prepared {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let ws = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let tty = query.flag("tty");
    let stdin = query.flag("stdin");
    ws.protocols([V5, V4])
        .on_upgrade(move |socket| session(api, socket, id, container, command, tty, stdin))
}

/// One exec session: frames are binary, the first byte the channel (0 stdin, 1 stdout,
/// 2 stderr, 3 status, 4 resize, 255 close in v5).
async fn session(
    api: Arc<Api>,
    mut socket: WebSocket,
    id: SandboxId,
    container: String,
    command: Vec<String>,
    tty: bool,
    stdin: bool,
) {
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(64);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
    let (resize_tx, resize_rx) = mpsc::channel::<TerminalSize>(8);
    let shown = command.join(" ");
    let request = ExecRequest {
        command,
        tty,
        stdin: stdin.then_some(in_rx),
        stdout: out_tx,
        stderr: err_tx,
        resize: tty.then_some(resize_rx),
    };
    let runtime = api.runtime.clone();
    let mut run = tokio::spawn(async move { runtime.exec(&id, &container, request).await });
    let mut in_tx = Some(in_tx);
    let outcome = loop {
        tokio::select! {
            r = &mut run => break r.map_err(|e| RuntimeError::Backend(e.to_string())).and_then(|r| r),
            Some(chunk) = out_rx.recv() => {
                if send(&mut socket, 1, &chunk).await.is_err() { return; }
            }
            Some(chunk) = err_rx.recv() => {
                if send(&mut socket, 2, &chunk).await.is_err() { return; }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    0 => if let Some(tx) = &in_tx { let _ = tx.send(data[1..].to_vec()).await; },
                    4 => if let Ok(size) = serde_json::from_slice::<Value>(&data[1..]) {
                        let _ = resize_tx.send(TerminalSize {
                            width: size["Width"].as_u64().unwrap_or(0) as u16,
                            height: size["Height"].as_u64().unwrap_or(0) as u16,
                        }).await;
                    },
                    // v5: the client closed its stdin.
                    255 => in_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { run.abort(); return; }
                _ => {}
            },
        }
    };
    // Flush what the command wrote before it ended.
    while let Ok(chunk) = out_rx.try_recv() {
        let _ = send(&mut socket, 1, &chunk).await;
    }
    while let Ok(chunk) = err_rx.try_recv() {
        let _ = send(&mut socket, 2, &chunk).await;
    }
    let status = match outcome {
        Ok(exit) if exit.success() => json!({"metadata": {}, "status": "Success"}),
        Ok(exit) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{shown}], exit code {}", exit.code),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": exit.code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {}, "status": "Failure",
            "message": e.to_string(),
            "reason": "BadRequest",
            "code": 400,
        }),
    };
    let _ = send(&mut socket, 3, status.to_string().as_bytes()).await;
    // A normal closure: kubectl treats any other code as a broken stream.
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> Result<(), axum::Error> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    socket.send(Message::Binary(frame.into())).await
}
