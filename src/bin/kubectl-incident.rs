//! `kubectl incident`: declare and drive incidents from the command line.
//! kubectl finds this binary on PATH as the plugin `incident`.
//!
//! ```sh
//! kubectl incident declare checkout-5xx -n shop --title "Checkout returns 5xx" \
//!     --severity SEV2 --deployment checkout --commander alice
//! kubectl incident ack checkout-5xx -n shop
//! kubectl incident note checkout-5xx -n shop "Rolled back to v41"
//! kubectl incident resolve checkout-5xx -n shop --postmortem https://wiki.example/pm/123
//! kubectl incident show checkout-5xx -n shop --watch
//! kubectl incident list -A
//! kubectl incident timeline checkout-5xx -n shop
//! ```
//!
//! Every change it makes records who made it: the user the cluster knows
//! the caller as (a SelfSubjectReview), in the annotations
//! `klaxon.dev/actor` and `klaxon.dev/actor-generation`, which an
//! admission policy holds to the truth.

use std::{collections::BTreeMap, io::IsTerminal, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use klaxon::{
    api::{
        Incident, IncidentSpec, Phase,
        incident::{
            ACTOR_ANNOTATION, ACTOR_GENERATION_ANNOTATION, Affected, AffectedDeployment, Note,
            Postmortem,
        },
    },
    cli::view::{self, Style},
    domain::incident::conditions::POSTMORTEM_REQUIRED,
};
use kube::{
    Api, Client, Config,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, wait::await_condition, watcher},
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
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Colour::Auto)]
    color: Colour,
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
        /// Who writes it (default: who the cluster knows you as).
        #[arg(long)]
        author: Option<String>,
    },
    /// One screen: what is wrong, what needs attention, the Deployments,
    /// events, metrics, the latest timeline entries, delivery problems.
    Show {
        name: String,
        /// Print the Incident as yaml or json instead.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        /// Keep showing it as it changes.
        #[arg(short, long)]
        watch: bool,
    },
    /// The open incidents, most severe first.
    #[command(alias = "ls")]
    List {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Resolved incidents too.
        #[arg(long)]
        resolved: bool,
    },
    /// Everything that happened, oldest first.
    Timeline { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum Colour {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot reach the Kubernetes API: {0}")]
    Connect(String),
    #[error("cannot reach the cluster of context {context:?} ({server}): {reason}")]
    Unreachable {
        context: String,
        server: String,
        reason: String,
    },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = Target::of(&cli);
    match run(cli).await.map_err(|e| target.explain(e)) {
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
    let api: Api<Incident> = Api::namespaced(client.clone(), &namespace);
    let ns = namespace.as_str();
    let style = Style {
        colour: match cli.color {
            Colour::Always => true,
            Colour::Never => false,
            Colour::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        },
    };

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
            let actor = whoami(&client).await?;
            let mut incident = Incident::new(
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
                    ..Default::default()
                },
            );
            if let Some(actor) = &actor {
                incident.metadata.annotations = Some(actor_annotations(actor, 1));
            }
            api.create(&PostParams::default(), &incident)
                .await
                .map_err(|e| api_error(e, ns, &name))?;
            println!("incident.klaxon.dev/{name} declared in namespace {ns}");
            if !no_wait {
                brief(&api, &name).await;
            }
            Ok(())
        }
        Command::Ack { name, commander } => {
            let mut spec = json!({"phase": Phase::Acknowledged});
            if let Some(commander) = commander {
                spec["commander"] = json!(commander);
            }
            let actor = whoami(&client).await?;
            let done = change(&api, ns, &name, spec, actor.as_deref()).await?;
            println!(
                "incident.klaxon.dev/{name} {}",
                done.unwrap_or("acknowledged")
            );
            Ok(())
        }
        Command::Mitigate { name } => {
            let actor = whoami(&client).await?;
            let spec = json!({"phase": Phase::Mitigated});
            let done = change(&api, ns, &name, spec, actor.as_deref()).await?;
            println!("incident.klaxon.dev/{name} {}", done.unwrap_or("mitigated"));
            Ok(())
        }
        Command::Resolve { name, postmortem } => {
            let mut spec = json!({"phase": Phase::Resolved});
            if let Some(url) = postmortem {
                spec["postmortem"] = json!(Postmortem { url });
            }
            let actor = whoami(&client).await?;
            let done = change(&api, ns, &name, spec, actor.as_deref()).await?;
            println!("incident.klaxon.dev/{name} {}", done.unwrap_or("resolved"));
            warn_postmortem(&api, ns, &name).await;
            Ok(())
        }
        Command::Severity { name, severity } => {
            let actor = whoami(&client).await?;
            let spec = json!({"severity": severity});
            let done = change(&api, ns, &name, spec, actor.as_deref()).await?;
            println!(
                "incident.klaxon.dev/{name} {}",
                done.unwrap_or("severity changed")
            );
            Ok(())
        }
        Command::Note { name, text, author } => {
            let author = match author {
                Some(author) => Some(author),
                None => whoami(&client)
                    .await?
                    .or_else(|| std::env::var("USER").ok()),
            };
            add_note(&api, ns, &name, text, author).await?;
            println!("incident.klaxon.dev/{name} noted");
            Ok(())
        }
        Command::Show {
            name,
            output,
            watch,
        } => match (output, watch) {
            (Some(format), _) => {
                let incident = api.get(&name).await.map_err(|e| api_error(e, ns, &name))?;
                print!("{}", render(&incident, format)?);
                Ok(())
            }
            (None, false) => {
                let incident = api.get(&name).await.map_err(|e| api_error(e, ns, &name))?;
                print!("{}", view::show(&incident, now(), style));
                Ok(())
            }
            (None, true) => follow(&api, ns, &name, style).await,
        },
        Command::List {
            all_namespaces,
            resolved,
        } => {
            let api: Api<Incident> = if all_namespaces {
                Api::all(client)
            } else {
                api
            };
            let mut incidents = api
                .list(&ListParams::default())
                .await
                .map_err(|e| api_error(e, ns, ""))?
                .items;
            if !resolved {
                incidents.retain(|i| i.spec.phase != Phase::Resolved);
            }
            if incidents.is_empty() {
                let scope = if all_namespaces {
                    "any namespace".to_string()
                } else {
                    format!("namespace {ns}")
                };
                let which = if resolved { "" } else { "open " };
                println!("No {which}incidents in {scope}.");
                return Ok(());
            }
            print!("{}", view::list(&incidents, all_namespaces, now(), style));
            Ok(())
        }
        Command::Timeline { name } => {
            let incident = api.get(&name).await.map_err(|e| api_error(e, ns, &name))?;
            print!("{}", view::timeline(&incident));
            Ok(())
        }
    }
}

/// The time views are drawn at; `KLAXON_NOW` (RFC 3339) fixes it, so that
/// output can be compared with a recorded one.
fn now() -> jiff::Timestamp {
    std::env::var("KLAXON_NOW")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

fn render(incident: &Incident, format: Output) -> Result<String, Error> {
    let mut incident = incident.clone();
    incident.metadata.managed_fields = None;
    match format {
        Output::Json => serde_json::to_string_pretty(&incident)
            .map(|s| s + "\n")
            .map_err(|e| Error::Api(e.to_string())),
        Output::Yaml => serde_saphyr::to_string(&incident).map_err(|e| Error::Api(e.to_string())),
    }
}

/// `show --watch`: draws the incident again whenever it changes, and every
/// few seconds for the clocks, until interrupted or it is deleted.
async fn follow(api: &Api<Incident>, ns: &str, name: &str, style: Style) -> Result<(), Error> {
    let mut current = api.get(name).await.map_err(|e| api_error(e, ns, name))?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(api.clone(), config).applied_objects().boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let terminal = std::io::stdout().is_terminal();
    loop {
        if terminal {
            // Home and clear, so the screen holds one view.
            print!("\u{1b}[H\u{1b}[2J");
        }
        print!("{}", view::show(&current, now(), style));
        if !terminal {
            println!();
        }
        tokio::select! {
            next = changes.next() => match next {
                Some(Ok(incident)) => current = incident,
                Some(Err(error)) => eprintln!("kubectl-incident: watch: {error}; retrying"),
                None => return Ok(()),
            },
            _ = tick.tick(), if terminal => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Who the cluster knows the caller as (a SelfSubjectReview). `None` when
/// the cluster cannot say (older than 1.28, or the API is off): the change
/// is then made without naming anyone.
async fn whoami(client: &Client) -> Result<Option<String>, Error> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match api.create(&PostParams::default(), &review).await {
        Ok(review) => Ok(review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())),
        Err(kube::Error::Api(status)) if matches!(status.code, 403..=405) => Ok(None),
        Err(error) => Err(api_error(error, "", "")),
    }
}

fn actor_annotations(actor: &str, generation: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ACTOR_ANNOTATION.to_string(), actor.to_string()),
        (
            ACTOR_GENERATION_ANNOTATION.to_string(),
            generation.to_string(),
        ),
    ])
}

/// Changes the spec, naming `actor` for the generation it makes, unless
/// the spec already says so. `Some(text)` says why nothing was changed.
async fn change(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
    actor: Option<&str>,
) -> Result<Option<&'static str>, Error> {
    for _ in 0..5 {
        let current = api.get(name).await.map_err(|e| api_error(e, ns, name))?;
        let before = serde_json::to_value(&current.spec).map_err(|e| Error::Api(e.to_string()))?;
        let mut after = before.clone();
        json_patch_merge(&mut after, &spec);
        if after == before {
            return Ok(Some("unchanged: it already says so"));
        }
        if current.spec.phase == Phase::Resolved
            && spec.get("phase").is_some_and(|p| p != "Resolved")
        {
            return Err(Error::Input(format!(
                "incident {ns}/{name} is resolved, which is final; declare a new incident instead"
            )));
        }
        let mut body = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": spec,
        });
        if let Some(actor) = actor {
            let next = current.metadata.generation.unwrap_or(0) + 1;
            body["metadata"]["annotations"] = json!(actor_annotations(actor, next));
        }
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(api_error(error, ns, name)),
        }
    }
    Err(Error::Api(format!(
        "incident {ns}/{name} kept changing; nothing was changed, try again"
    )))
}

/// RFC 7386 merge of `patch` into `target`.
fn json_patch_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    json_patch_merge(
                        target.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// After `resolve`: once the operator has looked at the resolution, warns
/// when the policy requires a postmortem the incident does not link.
async fn warn_postmortem(api: &Api<Incident>, ns: &str, name: &str) {
    let seen = |incident: Option<&Incident>| {
        incident.is_some_and(|i| {
            i.status.as_ref().and_then(|s| s.observed_generation) == i.metadata.generation
        })
    };
    let Ok(Ok(Some(incident))) =
        tokio::time::timeout(SHOW_WAIT, await_condition(api.clone(), name, seen)).await
    else {
        return;
    };
    let missing = incident
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == POSTMORTEM_REQUIRED))
        .is_some_and(|c| c.status == "True");
    if missing {
        eprintln!(
            "warning: the policy requires a postmortem for resolved {} incidents; link it with:\n  kubectl incident resolve {name} -n {ns} --postmortem URL",
            incident.spec.severity
        );
    }
}

/// Where the plugin points, to name it when the cluster cannot be reached.
struct Target {
    context: String,
    server: String,
}

impl Target {
    fn of(cli: &Cli) -> Self {
        let config = Kubeconfig::read().ok();
        let context = cli
            .context
            .clone()
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

    fn explain(&self, error: Error) -> Error {
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

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
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
async fn brief(api: &Api<Incident>, name: &str) {
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
        "details:     kubectl incident show {name} -n {}",
        incident.metadata.namespace.as_deref().unwrap_or_default()
    );
}
