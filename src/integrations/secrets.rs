//! Receiver Secrets, read with a GET and remembered for a short while, so
//! deliveries cost at most one Secret read per Secret per [`TTL`], and a
//! missing Secret, or one whose receiver fails, at most one per
//! [`FAILED_TTL`], not one per attempt (a changed URL is picked up within
//! seconds of a failure). Only the keys' bytes are kept,
//! in memory; they never reach a status, an Event or a log line.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// How long a read is reused.
pub const TTL: Duration = Duration::from_secs(30);
/// How long a failed read is reused: short, so a Secret created to fix a
/// receiver is noticed soon.
pub const FAILED_TTL: Duration = Duration::from_secs(5);

/// The label a Secret carries for the operator to read it in
/// [`Access::Labelled`] mode.
pub const RECEIVER_LABEL: &str = "klaxon.dev/receiver";

/// Which Secrets the operator reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    /// Any Secret a policy names (a GET by name; RBAC `get` on Secrets).
    #[default]
    All,
    /// Only Secrets labelled `klaxon.dev/receiver: "true"`: the operator
    /// asks with that label selector (and a field selector on the name),
    /// so the apiserver never hands it another Secret (RBAC `list`).
    Labelled,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {namespace}/{name} does not exist")]
    NotFound { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} does not exist or is not labelled {RECEIVER_LABEL}: \"true\" (the operator reads only labelled Secrets)"
    )]
    NotLabelled { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key}")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {reason}")]
    Unreadable {
        namespace: String,
        name: String,
        reason: String,
        /// The apiserver refused it (e.g. 403), as opposed to not being
        /// reached at all.
        answered: bool,
    },
}

type Data = BTreeMap<String, Vec<u8>>;

#[derive(Clone)]
struct Entry {
    read_at: Instant,
    data: Result<Data, SecretError>,
    /// What it holds did not work (the receiver at its URL failed): it
    /// may have changed since, so it is reused only briefly.
    suspect: bool,
}

impl Entry {
    fn ttl(&self) -> Duration {
        if self.data.is_ok() && !self.suspect {
            TTL
        } else {
            FAILED_TTL
        }
    }
}

/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Secrets {
    client: Client,
    access: Access,
    cache: Arc<Mutex<HashMap<(String, String), Entry>>>,
    /// One read per Secret at a time: concurrent askers for the same
    /// Secret wait for it; others do not.
    reading: Arc<Mutex<HashMap<(String, String), Gate>>>,
}

/// Held while one Secret is read.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// How long one Secret read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Secrets {
    pub fn new(client: Client, access: Access) -> Self {
        Self {
            client,
            access,
            cache: Arc::default(),
            reading: Arc::default(),
        }
    }

    /// The bytes of `key` in Secret `namespace/name`.
    pub async fn value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Vec<u8>, SecretError> {
        let data = match self.cached(namespace, name) {
            Some(data) => data,
            None => {
                let key = (namespace.to_string(), name.to_string());
                let gate = {
                    let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
                    reading.retain(|_, gate| Arc::strong_count(gate) > 1);
                    reading.entry(key).or_default().clone()
                };
                let _one_at_a_time = gate.lock().await;
                match self.cached(namespace, name) {
                    Some(data) => data,
                    None => self.read(namespace, name).await,
                }
            }
        }?;
        data.get(key)
            .cloned()
            .ok_or_else(|| SecretError::KeyMissing {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            })
    }

    /// Whether `key` of `namespace/name` is there, from the cache when it
    /// is fresh.
    pub async fn check(&self, namespace: &str, name: &str, key: &str) -> Result<(), SecretError> {
        self.value(namespace, name, key).await.map(|_| ())
    }

    /// Marks what `namespace/name` holds as not working (a delivery to
    /// the URL in it failed): it is read again once [`FAILED_TTL`] has
    /// passed since the last read, so a fixed URL is picked up within
    /// seconds while a failing receiver still costs at most one read per
    /// [`FAILED_TTL`].
    pub fn suspect(&self, namespace: &str, name: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = cache.get_mut(&(namespace.to_string(), name.to_string())) {
            entry.suspect = true;
        }
    }

    fn cached(&self, namespace: &str, name: &str) -> Option<Result<Data, SecretError>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(namespace.to_string(), name.to_string()))
            .filter(|e| e.read_at.elapsed() < e.ttl())
            .map(|e| e.data.clone())
    }

    async fn read(&self, namespace: &str, name: &str) -> Result<Data, SecretError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let read = async {
            match self.access {
                Access::All => api.get_opt(name).await,
                Access::Labelled => {
                    let params = kube::api::ListParams::default()
                        .labels(&format!("{RECEIVER_LABEL}=true"))
                        .fields(&format!("metadata.name={name}"));
                    api.list(&params)
                        .await
                        .map(|list| list.items.into_iter().next())
                }
            }
        };
        let read = tokio::time::timeout(READ_TIMEOUT, read).await;
        let read = read.unwrap_or_else(|_| {
            Err(kube::Error::Service(
                format!("no answer within {}s", READ_TIMEOUT.as_secs()).into(),
            ))
        });
        let data = match read {
            Ok(Some(secret)) => Ok(bytes(secret)),
            Ok(None) if self.access == Access::Labelled => Err(SecretError::NotLabelled {
                namespace: namespace.into(),
                name: name.into(),
            }),
            Ok(None) => Err(SecretError::NotFound {
                namespace: namespace.into(),
                name: name.into(),
            }),
            Err(error) => Err(SecretError::Unreadable {
                namespace: namespace.into(),
                name: name.into(),
                answered: matches!(&error, kube::Error::Api(status) if status.code < 500),
                reason: match error {
                    kube::Error::Api(status) => status.message,
                    other => other.to_string(),
                },
            }),
        };
        // Only the apiserver's answers are remembered: a read that could not
        // reach it says nothing about the Secret, and the next one may work.
        let answered = match &data {
            Ok(_) | Err(SecretError::NotFound { .. } | SecretError::NotLabelled { .. }) => true,
            Err(SecretError::Unreadable { answered, .. }) => *answered,
            Err(SecretError::KeyMissing { .. }) => true,
        };
        if !answered {
            return data;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, e| e.read_at.elapsed() < e.ttl());
        cache.insert(
            (namespace.to_string(), name.to_string()),
            Entry {
                read_at: Instant::now(),
                data: data.clone(),
                suspect: false,
            },
        );
        data
    }
}

fn bytes(secret: Secret) -> Data {
    let mut out: Data = secret
        .string_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    out.extend(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    out
}
