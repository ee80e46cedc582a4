//! Reaching the cluster the user's kubeconfig names, and naming it when it
//! cannot be reached.

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::Error;

/// A client for the kubeconfig's context (or `context`), falling back to
/// the in-cluster configuration, and the context's default namespace.
pub async fn connect(context: Option<String>) -> Result<(Client, String), Error> {
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match Config::from_kubeconfig(&options).await {
        Ok(config) => config,
        Err(_) => Config::incluster().map_err(|e| Error::Connect(e.to_string()))?,
    };
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| Error::Connect(e.to_string()))?;
    Ok((client, namespace))
}

/// Where the plugin points, to name it when the cluster cannot be reached.
pub struct Target {
    context: String,
    server: String,
}

impl Target {
    /// The context `context` names, else the kubeconfig's current one.
    pub fn of(context: Option<&str>) -> Self {
        let config = Kubeconfig::read().ok();
        let context = context
            .map(str::to_string)
            .or_else(|| config.as_ref().and_then(|c| c.current_context.clone()))
            .unwrap_or_else(|| "(in-cluster)".into());
        let server = config
            .as_ref()
            .and_then(|c| {
                let cluster = c
                    .contexts
                    .iter()
                    .find(|n| n.name == context)?
                    .context
                    .as_ref()?
                    .cluster
                    .clone();
                c.clusters
                    .iter()
                    .find(|n| n.name == cluster)?
                    .cluster
                    .as_ref()?
                    .server
                    .clone()
            })
            .unwrap_or_else(|| "unknown server".into());
        Self { context, server }
    }

    /// An unreachable API, said with the context and server it was.
    pub fn explain(&self, error: Error) -> Error {
        match error {
            Error::Connect(reason) => Error::Unreachable {
                context: self.context.clone(),
                server: self.server.clone(),
                reason,
            },
            other => other,
        }
    }
}
