//! What can go wrong in a `kubectl incident` command, each said in one
//! line a user can act on.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Kubernetes API: {0}")]
    Connect(String),
    #[error("cannot reach the cluster of context {context:?} ({server}): {reason}")]
    Unreachable {
        context: String,
        server: String,
        reason: String,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Input(String),
    #[error("incident {namespace}/{name} already exists")]
    Exists { namespace: String, name: String },
    #[error("incident {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    /// Every attempt met a newer version of the incident.
    #[error("incident {namespace}/{name} kept changing; nothing was changed, try again")]
    Conflict { namespace: String, name: String },
    /// A postmortem template that cannot be found, parsed or rendered;
    /// `origin` names where it came from.
    #[error("{origin}: {message}")]
    Template { origin: String, message: String },
    /// What the API server answered.
    #[error("{0}")]
    Api(String),
}

/// The error a request about incident `namespace/name` met.
pub fn api_error(error: kube::Error, namespace: &str, name: &str) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        },
        kube::Error::Api(status) if status.code == 409 => Error::Exists {
            namespace: namespace.into(),
            name: name.into(),
        },
        other => other_error(other),
    }
}

/// The error a request about anything else met: the server's message, or
/// the innermost cause when nothing answered.
pub fn other_error(error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) => Error::Api(status.message),
        // No answer at all: the cluster is unreachable.
        other => Error::Connect(first_line(&root_cause(&other))),
    }
}

/// The innermost error, which names what failed (connection refused, a
/// DNS name not found, a timeout).
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}
