use crate::{RuntimeKind, SandboxId};

/// Errors of a [`SandboxRuntime`](crate::SandboxRuntime). Messages are written for the person
/// running kubectl: the API layer may pass them on as they are.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A sandbox or container that does not exist; the text names it, e.g. `sandbox sim-1` or
    /// `container "web" in pod default/p1`.
    #[error("{0} not found")]
    NotFound(String),

    #[error("pod {pod} already has sandbox {sandbox}")]
    AlreadyExists { sandbox: SandboxId, pod: String },

    /// The spec cannot be run, e.g. duplicate container names or a malformed
    /// `sim.localfargate.io/*` annotation.
    #[error("invalid sandbox spec for pod {pod}: {message}")]
    InvalidSpec { pod: String, message: String },

    /// Logs of a container that has not started yet (the kubelet's wording; `pod` is the pod
    /// name).
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}")]
    ContainerWaiting {
        pod: String,
        container: String,
        reason: String,
    },

    /// `--previous` logs of a container that has not restarted (the kubelet's wording).
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    PreviousNotFound { pod: String, container: String },

    /// `pod` is `namespace/name`.
    #[error(
        "exec is not available in the simulated runtime: pod {pod} is simulated, no process runs; \
         start localfargate with --runtime process to exec into pods"
    )]
    ExecUnsupported { pod: String },

    /// Starting a container in a sandbox that is stopping or stopped.
    #[error("sandbox {sandbox} of pod {pod} is stopped")]
    Stopped { sandbox: SandboxId, pod: String },

    #[error("unknown runtime {0:?}: expected one of auto, simulated, process, microvm")]
    UnknownRuntime(String),

    #[error(
        "the {0} runtime is not built yet; start localfargate with --runtime process or \
         --runtime simulated"
    )]
    NotBuilt(RuntimeKind),

    /// Exec into a container that is not running (the kubelet's wording).
    #[error("container not found (\"{container}\")")]
    NotRunning { pod: String, container: String },

    /// The backend cannot run on this host; `reason` says why.
    #[error("the {kind} runtime cannot run here: {reason}")]
    Unavailable { kind: RuntimeKind, reason: String },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Image(#[from] crate::image::ImageError),

    #[error(transparent)]
    Network(#[from] crate::net::NetError),

    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),

    /// A backend failure (VMM, agent) with its own message.
    #[error("{0}")]
    Backend(String),

    /// A port-forward connection that could not be made, in containerd's words (the API
    /// layer adds the kubelet's `error forwarding port …` around it).
    #[error("{0}")]
    PortForward(String),

    /// `pod` is `namespace/name`.
    #[error(
        "port-forward is not available in the simulated runtime: pod {pod} is simulated, nothing \
         listens in it; start localfargate with --runtime process to forward ports to pods"
    )]
    PortForwardUnsupported { pod: String },
}

/// An I/O error as Go's standard library words it (`no space left on device`,
/// `connection refused`), which is what the kubelet's messages carry; Rust's own text adds
/// ` (os error N)` and a capital letter.
pub(crate) fn go_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
