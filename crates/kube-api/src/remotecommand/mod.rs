//! `pods/exec` and `pods/attach`: Kubernetes' remote-command protocol.
//!
//! A session is the same whatever carries it: stdin, stdout, stderr, terminal resizes, and at
//! the end a status (success, a non-zero exit code, or an error), as the kubelet's streaming
//! server produces them. [`Session`] runs it against the `SandboxRuntime`; a [`Transport`]
//! carries it:
//!
//! * [`websocket`]: `v5.channel.k8s.io` / `v4.channel.k8s.io`, one binary message per chunk
//!   with the channel in its first byte (kubectl 1.30+);
//! * [`spdy`]: an upgrade to `SPDY/3.1` with one SPDY stream per channel, named by its
//!   `streamType` header, in the versions kubectl ≤ 1.29 offers (`v4.channel.k8s.io` down to
//!   `channel.k8s.io`), and what 1.30+ falls back to.

mod spdy;
mod websocket;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use k8s_openapi::api::core::v1::{Container, Pod};
use localfargate_registry::objects::KubeError;
use localfargate_runtime::{AttachRequest, ExecRequest, RuntimeError, SandboxId, TerminalSize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::context::Api;
use crate::pods::{bad, get_pod, pick_container, sandbox};
use crate::request::{Query, Target};
use crate::response::error_response;

/// Chunks of output queued between the runtime and the transport.
const OUTPUT_QUEUE: usize = 64;

/// What a session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `pods/exec`: a new process.
    Exec(Vec<String>),
    /// `pods/attach`: the container's main process.
    Attach,
}

/// The streams a client asked for (the query's `stdin`, `stdout`, `stderr`, `tty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    /// As the kubelet reads them: a terminal has no separate stderr, and at least one stream.
    fn from_query(query: &Query) -> Result<Options, KubeError> {
        let tty = query.flag("tty");
        let o = Options {
            stdin: query.flag("stdin"),
            stdout: query.flag("stdout"),
            stderr: query.flag("stderr") && !tty,
            tty,
        };
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(bad(
                "you must specify at least 1 of stdin, stdout, stderr".into()
            ));
        }
        Ok(o)
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// An exec'd command's non-zero exit code, with the command.
    ExitCode(i32, String),
    /// Anything else: the `Status` message.
    Failed(String),
}

impl Outcome {
    /// The `metav1.Status` the kubelet writes on the error channel (protocol v4 and later).
    pub fn status(&self) -> Value {
        match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::ExitCode(code, command) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command [{command}], exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Failed(message) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            }),
        }
    }

    /// What protocols v1–v3 write on the error stream: nothing for success, else the message.
    pub fn text(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            _ => self.status()["message"].as_str().map(str::to_string),
        }
    }
}

/// The channels between a transport and the runtime.
pub struct Io {
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: mpsc::Sender<Vec<u8>>,
    pub stderr: mpsc::Sender<Vec<u8>>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// A checked request: the pod's sandbox and container, what to run, the streams.
pub struct Session {
    api: Arc<Api>,
    sandbox: SandboxId,
    container: String,
    pub action: Action,
    pub options: Options,
}

impl Session {
    /// Checks a request before its connection is upgraded, with the API server's and kubelet's
    /// errors: the pod, the container, the command, the streams.
    pub async fn prepare(
        api: &Arc<Api>,
        target: &Target,
        query: &Query,
        attach: bool,
    ) -> Result<Session, KubeError> {
        let ns = target.namespace.clone().unwrap_or_default();
        let name = target.name.clone().unwrap_or_default();
        let pod = get_pod(api, &ns, &name)?;
        let container = pick_container(&pod, &name, query.get("container"))?;
        let id = sandbox(api, &pod, &name, &container).await?;
        let mut options = Options::from_query(query)?;
        let action = if attach {
            // The kubelet attaches with the container's own terminal setting.
            options.tty = container_spec(&pod, &container).and_then(|c| c.tty) == Some(true);
            options.stderr &= !options.tty;
            Action::Attach
        } else {
            let command: Vec<String> = query
                .all("command")
                .into_iter()
                .map(str::to_string)
                .collect();
            if command.is_empty() {
                return Err(bad("you must specify at least 1 command".into()));
            }
            Action::Exec(command)
        };
        Ok(Session {
            api: Arc::clone(api),
            sandbox: id,
            container,
            action,
            options,
        })
    }

    /// Runs the session to its end.
    pub async fn run(self, io: Io) -> Outcome {
        let runtime = &self.api.runtime;
        match self.action {
            Action::Exec(command) => {
                let shown = command.join(" ");
                let request = ExecRequest {
                    command,
                    tty: self.options.tty,
                    stdin: io.stdin,
                    stdout: io.stdout,
                    stderr: io.stderr,
                    resize: io.resize,
                };
                match runtime.exec(&self.sandbox, &self.container, request).await {
                    Ok(exit) if exit.success() => Outcome::Success,
                    Ok(exit) => Outcome::ExitCode(exit.code, shown),
                    Err(e) => failed("error executing command in container", e),
                }
            }
            Action::Attach => {
                let request = AttachRequest {
                    stdin: io.stdin,
                    stdout: io.stdout,
                    stderr: io.stderr,
                    resize: io.resize,
                };
                match runtime
                    .attach(&self.sandbox, &self.container, request)
                    .await
                {
                    Ok(()) => Outcome::Success,
                    Err(e) => failed("error attaching to container", e),
                }
            }
        }
    }
}

fn failed(what: &str, e: RuntimeError) -> Outcome {
    Outcome::Failed(format!("{what}: {e}"))
}

fn container_spec<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    /// The client's stdin ended.
    StdinEnd,
    Resize(TerminalSize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// How a session's streams travel.
pub trait Transport: Send {
    /// The client's next input; `None` once the client has gone.
    fn next(&mut self) -> impl Future<Output = Option<Input>> + Send;
    /// Sends output; false once the client has gone.
    fn output(&mut self, to: Output, data: Vec<u8>) -> impl Future<Output = bool> + Send;
    /// Sends the outcome and ends the session.
    fn finish(self, outcome: Outcome) -> impl Future<Output = ()> + Send;
}

/// Runs `session` over `transport`: input to the runtime, output to the client, then the
/// outcome. A client that goes away ends the session (an exec'd process is killed with it).
pub async fn drive(session: Session, mut transport: impl Transport) {
    let (stdout, mut out_rx) = mpsc::channel::<Vec<u8>>(OUTPUT_QUEUE);
    let (stderr, mut err_rx) = mpsc::channel::<Vec<u8>>(OUTPUT_QUEUE);
    let (stdin_tx, stdin) = mpsc::channel::<Vec<u8>>(OUTPUT_QUEUE);
    let (resize_tx, resize) = mpsc::channel::<TerminalSize>(8);
    let io = Io {
        stdin: session.options.stdin.then_some(stdin),
        stdout,
        stderr,
        resize: session.options.tty.then_some(resize),
    };
    let mut stdin_tx = Some(stdin_tx);
    let mut run = tokio::spawn(session.run(io));
    let outcome = loop {
        tokio::select! {
            r = &mut run => {
                break r.unwrap_or_else(|e| Outcome::Failed(format!("the session failed: {e}")));
            }
            Some(chunk) = out_rx.recv() => {
                if !transport.output(Output::Stdout, chunk).await {
                    run.abort();
                    return;
                }
            }
            Some(chunk) = err_rx.recv() => {
                if !transport.output(Output::Stderr, chunk).await {
                    run.abort();
                    return;
                }
            }
            input = transport.next() => match input {
                Some(Input::Stdin(data)) => {
                    if let Some(tx) = &stdin_tx {
                        let _ = tx.send(data).await;
                    }
                }
                Some(Input::StdinEnd) => stdin_tx = None,
                Some(Input::Resize(size)) => {
                    let _ = resize_tx.try_send(size);
                }
                None => {
                    run.abort();
                    return;
                }
            },
        }
    };
    // What the runtime wrote before it returned.
    while let Some(chunk) = out_rx.recv().await {
        transport.output(Output::Stdout, chunk).await;
    }
    while let Some(chunk) = err_rx.recv().await {
        transport.output(Output::Stderr, chunk).await;
    }
    transport.finish(outcome).await;
}

/// `GET`/`POST …/pods/<name>/exec` or `…/attach` with `Upgrade: websocket` or `SPDY/3.1`.
pub async fn serve(
    api: Arc<Api>,
    target: Target,
    query: Query,
    request: Request,
    attach: bool,
) -> Response {
    let session = match Session::prepare(&api, &target, &query, attach).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        websocket::serve(session, request).await
    } else if crate::spdy::is_upgrade(request.headers()) {
        spdy::serve(session, &query, request)
    } else {
        error_response(&bad(format!(
            "unable to upgrade: the request must upgrade to websocket or {}, not {upgrade:?}",
            crate::spdy::SPDY_31
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_kubelets() {
        assert_eq!(
            Outcome::Success.status(),
            json!({"metadata": {}, "status": "Success"})
        );
        assert_eq!(Outcome::Success.text(), None);
        let exit = Outcome::ExitCode(3, "sh -c exit 3".into()).status();
        assert_eq!(exit["reason"], "NonZeroExitCode");
        assert_eq!(exit["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(exit["details"]["causes"][0]["message"], "3");
        let failed = Outcome::Failed("error attaching to container: gone".into());
        assert_eq!(failed.status()["reason"], "InternalError");
        assert_eq!(failed.status()["code"], 500);
        assert_eq!(
            failed.text().as_deref(),
            Some("Internal error occurred: error attaching to container: gone")
        );
    }

    #[test]
    fn options_follow_the_kubelet() {
        let q = |s: &str| Query::parse(Some(s));
        let o = Options::from_query(&q("stdout=true&stderr=true&tty=true")).unwrap();
        assert!(o.stdout && o.tty && !o.stderr && !o.stdin);
        let none = Options::from_query(&q("tty=true&stderr=true")).unwrap_err();
        assert_eq!(
            none.to_string(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }
}
