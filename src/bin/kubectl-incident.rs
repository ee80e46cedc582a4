//! `kubectl incident`: declare and drive incidents from the command line.
//! kubectl finds this binary on PATH as the plugin `incident`.
//!
//! ```sh
//! kubectl incident declare checkout-5xx -n shop --title "Checkout returns 5xx" \
//!     --severity SEV2 --deployment checkout --commander alice
//! kubectl incident ack checkout-5xx -n shop
//! kubectl incident note checkout-5xx -n shop "Rolled back to v41"
//! kubectl incident resolve checkout-5xx -n shop --postmortem https://wiki.example/pm/123
//! ```

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use klaxon::api::{
    Incident, IncidentSpec, Phase,
    incident::{Affected, AffectedDeployment, Note, Postmortem},
};
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams, PostParams},
    config::KubeConfigOptions,
    runtime::wait::await_condition,
};
use serde_json::json;

/// How long `declare` waits to show what the operator found.
const SHOW_WAIT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "kubectl incident",
    about = "Declare and drive Klaxon incidents",
    version
)]
struct Cli {
    /// The incident's namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Declare an incident.
    Declare {
        name: String,
        /// What is wrong, in one line.
        #[arg(long)]
        title: String,
        /// A level of the namespace's ladder.
        #[arg(long, default_value = "SEV3")]
        severity: String,
        /// An affected Deployment by name (repeatable).
        #[arg(long = "deployment", short = 'd')]
        deployments: Vec<String>,
        /// Affected Deployments by label, e.g. tier=payments,env=prod (repeatable).
        #[arg(long = "selector", short = 'l')]
        selectors: Vec<String>,
        #[arg(long)]
        commander: Option<String>,
        #[arg(long)]
        summary: Option<String>,
        /// Do not wait to show what the operator found.
        #[arg(long)]
        no_wait: bool,
    },
    /// Acknowledge: someone is on it.
    #[command(alias = "acknowledge")]
    Ack {
        name: String,
        /// Take command at the same time.
        #[arg(long)]
        commander: Option<String>,
    },
    /// The impact is mitigated.
    Mitigate { name: String },
    /// The incident is over.
    Resolve {
        name: String,
        /// Link the postmortem.
        #[arg(long)]
        postmortem: Option<String>,
    },
    /// Change the severity.
    Severity { name: String, severity: String },
    /// Add a note to the timeline.
    Note {
        name: String,
        text: String,
        /// Who writes it (default: $USER).
        #[arg(long)]
        author: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot reach the Kubernetes API: {0}")]
    Connect(String),
    #[error("{0}")]
    Input(String),
    #[error("incident {namespace}/{name} already exists")]
    Exists { namespace: String, name: String },
    #[error("incident {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("{0}")]
    Api(String),
}

fn api_error(error: kube::Error, namespace: &str, name: &str) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        },
        kube::Error::Api(status) if status.code == 409 => Error::Exists {
            namespace: namespace.into(),
            name: name.into(),
        },
        kube::Error::Api(status) => Error::Api(status.message),
        other => Error::Api(other.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kubectl-incident: error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match Config::from_kubeconfig(&options).await {
        Ok(config) => config,
        Err(_) => Config::incluster().map_err(|e| Error::Connect(e.to_string()))?,
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Error::Connect(e.to_string()))?;
    let api: Api<Incident> = Api::namespaced(client, &namespace);
    let ns = namespace.as_str();

    match cli.command {
        Command::Declare {
            name,
            title,
            severity,
            deployments,
            selectors,
            commander,
            summary,
            no_wait,
        } => {
            let mut affected: Vec<AffectedDeployment> = deployments
                .into_iter()
                .map(|d| AffectedDeployment {
                    name: Some(d),
                    selector: None,
                })
                .collect();
            for selector in selectors {
                affected.push(AffectedDeployment {
                    name: None,
                    selector: Some(parse_selector(&selector)?),
                });
            }
            let incident = Incident::new(
                &name,
                IncidentSpec {
                    title,
                    severity,
                    phase: Phase::Triggered,
                    summary,
                    commander,
                    responders: vec![],
                    affected: (!affected.is_empty()).then_some(Affected {
                        deployments: affected,
                    }),
                    notes: vec![],
                    postmortem: None,
                },
            );
            api.create(&PostParams::default(), &incident)
                .await
                .map_err(|e| api_error(e, ns, &name))?;
            println!("incident.klaxon.dev/{name} declared in namespace {ns}");
            if !no_wait {
                show(&api, &name).await;
            }
            Ok(())
        }
        Command::Ack { name, commander } => {
            let mut spec = json!({"phase": Phase::Acknowledged});
            if let Some(commander) = commander {
                spec["commander"] = json!(commander);
            }
            patch(&api, ns, &name, spec).await?;
            println!("incident.klaxon.dev/{name} acknowledged");
            Ok(())
        }
        Command::Mitigate { name } => {
            patch(&api, ns, &name, json!({"phase": Phase::Mitigated})).await?;
            println!("incident.klaxon.dev/{name} mitigated");
            Ok(())
        }
        Command::Resolve { name, postmortem } => {
            let mut spec = json!({"phase": Phase::Resolved});
            if let Some(url) = postmortem {
                spec["postmortem"] = json!(Postmortem { url });
            }
            patch(&api, ns, &name, spec).await?;
            println!("incident.klaxon.dev/{name} resolved");
            Ok(())
        }
        Command::Severity { name, severity } => {
            patch(&api, ns, &name, json!({"severity": severity})).await?;
            println!("incident.klaxon.dev/{name} severity changed");
            Ok(())
        }
        Command::Note { name, text, author } => {
            let author = author.or_else(|| std::env::var("USER").ok());
            add_note(&api, ns, &name, text, author).await?;
            println!("incident.klaxon.dev/{name} noted");
            Ok(())
        }
    }
}

/// `k=v,k2=v2` as matchLabels.
fn parse_selector(
    text: &str,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, Error> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Error::Input(format!(
                "--selector {text}: expected key=value pairs, e.g. tier=payments"
            ))
        })?;
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    if labels.is_empty() {
        return Err(Error::Input(
            "--selector needs at least one key=value".into(),
        ));
    }
    Ok(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        },
    )
}

async fn patch(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<(), Error> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .map(|_| ())
    .map_err(|e| api_error(e, ns, name))
}

/// Appends a note, retrying when someone else changed the incident.
async fn add_note(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    text: String,
    author: Option<String>,
) -> Result<(), Error> {
    let note = Note {
        author,
        text,
        time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        )),
    };
    for _ in 0..5 {
        let current = api.get(name).await.map_err(|e| api_error(e, ns, name))?;
        let mut notes = current.spec.notes.clone();
        notes.push(note.clone());
        let body = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"notes": notes},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(api_error(error, ns, name)),
        }
    }
    Err(Error::Api(format!(
        "incident {ns}/{name} kept changing; the note was not added, try again"
    )))
}

/// Shows what the operator found, once it has looked (or after a while).
async fn show(api: &Api<Incident>, name: &str) {
    let enriched = |incident: Option<&Incident>| {
        incident
            .and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.enriched_at.is_some())
    };
    let found = tokio::time::timeout(SHOW_WAIT, await_condition(api.clone(), name, enriched)).await;
    let incident = match found {
        Ok(Ok(Some(incident))) => incident,
        _ => {
            println!("(the operator has not enriched it yet: kubectl describe inc {name})");
            return;
        }
    };
    let Some(status) = incident.status.as_ref() else {
        return;
    };
    if let Some(team) = &status.team {
        println!("team:        {team}");
    }
    if let Some(by) = &status.acknowledge_by {
        println!("acknowledge: by {}", by.0);
    }
    if let Some(summary) = &status.summary {
        println!("summary:     {summary}");
    }
    if let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready")
        && ready.status != "True"
    {
        println!("attention:   {} ({})", ready.message, ready.reason);
    }
    println!(
        "details:     kubectl describe inc {name} -n {}",
        incident.metadata.namespace.as_deref().unwrap_or_default()
    );
}
