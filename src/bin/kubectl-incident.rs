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
//! kubectl incident followup checkout-5xx -n shop --title "Canary for the card processor" --owner bob --due 14d
//! kubectl incident postmortem checkout-5xx -n shop > postmortem.md
//! kubectl incident report -A --since 30d
//! ```
//!
//! Every change it makes records who made it: the user the cluster knows
//! the caller as (a SelfSubjectReview), in the annotations
//! `klaxon.dev/actor` and `klaxon.dev/actor-generation`, which an
//! admission policy holds to the truth.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use jiff::tz::TimeZone;
use klaxon::{
    api::{Incident, Phase, incident::Postmortem},
    cli::{
        Error,
        connect::{Target, connect},
        declare::{self, Declaration},
        error::{api_error, other_error},
        followup::{self, Closed},
        postmortem, report,
        view::{self, Style},
        watch,
        write::{add_note, change, whoami},
    },
};
use kube::{Api, api::ListParams};
use serde_json::json;

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
        /// An affected StatefulSet by name (repeatable).
        #[arg(long = "statefulset")]
        stateful_sets: Vec<String>,
        /// An affected DaemonSet by name (repeatable).
        #[arg(long = "daemonset")]
        daemon_sets: Vec<String>,
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
    /// Add a follow-up (an action item), or close one with --done.
    #[command(alias = "follow-up")]
    Followup {
        name: String,
        /// What to do; unique within the incident.
        #[arg(long, required_unless_present = "done", conflicts_with = "done")]
        title: Option<String>,
        /// Who will do it.
        #[arg(long, conflicts_with = "done")]
        owner: Option<String>,
        /// The day it is due: 2026-12-10, or 7d / 2w from today (UTC).
        #[arg(long, conflicts_with = "done")]
        due: Option<String>,
        /// Where it is tracked.
        #[arg(long, conflicts_with = "done")]
        url: Option<String>,
        /// Close follow-up N (as show and postmortem number them, from 1),
        /// or the one of this exact title.
        #[arg(long, value_name = "N")]
        done: Option<String>,
    },
    /// A Markdown draft of the postmortem, from the incident's record.
    Postmortem {
        name: String,
        /// Draft with this template (minijinja) instead of the team's or
        /// the organisation's.
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
    },
    /// Per team and severity: declared, resolved, open, time to
    /// acknowledge and resolve, overdue postmortems and follow-ups.
    Report {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Incidents declared within this long before now: 30d, 12h, 90m.
        #[arg(long, default_value = "30d")]
        since: String,
        /// json for the documented machine-readable shape.
        #[arg(short, long, value_enum, default_value_t = ReportOutput::Text)]
        output: ReportOutput,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportOutput {
    Text,
    Json,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = Target::of(cli.context.as_deref());
    match run(cli).await.map_err(|e| target.explain(e)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kubectl-incident: error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let (client, default_namespace) = connect(cli.context.clone()).await?;
    let namespace = cli.namespace.clone().unwrap_or(default_namespace);
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
            stateful_sets,
            daemon_sets,
            commander,
            summary,
            no_wait,
        } => {
            let actor = whoami(&client).await?;
            let declaration = Declaration {
                title,
                severity,
                deployments,
                selectors,
                stateful_sets,
                daemon_sets,
                commander,
                summary,
            };
            declare::create(&api, ns, &name, declaration, actor.as_deref()).await?;
            println!("incident.klaxon.dev/{name} declared in namespace {ns}");
            if !no_wait {
                watch::brief(&api, &name).await;
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
            watch::warn_postmortem(&api, ns, &name).await;
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
                print!(
                    "{}",
                    match format {
                        Output::Json => view::json(&incident)?,
                        Output::Yaml => view::yaml(&incident)?,
                    }
                );
                Ok(())
            }
            (None, false) => {
                let incident = api.get(&name).await.map_err(|e| api_error(e, ns, &name))?;
                print!("{}", view::show(&incident, now(), style));
                Ok(())
            }
            (None, true) => watch::follow(&api, ns, &name, now, style).await,
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
        Command::Followup {
            name,
            title,
            owner,
            due,
            url,
            done,
        } => {
            let actor = whoami(&client).await?;
            if let Some(which) = done {
                let said = match followup::close(&api, ns, &name, &which, actor.as_deref()).await? {
                    Closed::Now { number, title } => format!("follow-up {number} done: {title}"),
                    Closed::Already { number, title } => {
                        format!("follow-up {number} unchanged: it is already done ({title})")
                    }
                };
                println!("incident.klaxon.dev/{name} {said}");
                return Ok(());
            }
            let today = now().to_zoned(TimeZone::UTC).date();
            let title = title.unwrap_or_default();
            let item = followup::new_item(&title, owner, due.as_deref(), url, today)
                .map_err(|e| followup::refused(ns, &name, e))?;
            let title = item.title.clone();
            let number = followup::add(&api, ns, &name, item, actor.as_deref()).await?;
            println!("incident.klaxon.dev/{name} follow-up {number} added: {title}");
            Ok(())
        }
        Command::Postmortem { name, template } => {
            let incident = api.get(&name).await.map_err(|e| api_error(e, ns, &name))?;
            let (template, warning) = postmortem::find(&client, &incident, template).await?;
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            print!(
                "{}",
                postmortem::render(&template, &postmortem::context(&incident, now()))?
            );
            Ok(())
        }
        Command::Report {
            all_namespaces,
            since,
            output,
        } => {
            let now = now();
            let start = report::since(&since, now).map_err(Error::Input)?;
            let api: Api<Incident> = if all_namespaces {
                Api::all(client)
            } else {
                api
            };
            let incidents = api
                .list(&ListParams::default())
                .await
                .map_err(other_error)?
                .items;
            let scope = (!all_namespaces).then_some(ns);
            let report = report::report(&incidents, scope, start, now);
            match output {
                ReportOutput::Text => print!("{}", report::text(&report, &since)),
                ReportOutput::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| Error::Api(e.to_string()))?
                ),
            }
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
