//! Waiting for what the operator writes: what it found after a
//! declaration, whether a resolution still lacks its postmortem, and
//! following an incident as it changes (`show --watch`).

use std::{io::IsTerminal, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api,
    runtime::{WatchStreamExt, wait::await_condition, watcher},
};

use super::{
    Error,
    error::api_error,
    view::{self, Style},
};
use crate::{api::Incident, domain::incident::conditions::POSTMORTEM_REQUIRED};

/// How long `declare` and `resolve` wait for the operator to have looked.
const SHOW_WAIT: Duration = Duration::from_secs(10);

/// `show --watch`: draws the incident again whenever it changes, and every
/// few seconds for the clocks, until interrupted or it is deleted.
pub async fn follow(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    now: fn() -> Timestamp,
    style: Style,
) -> Result<(), Error> {
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

/// After `resolve`: once the operator has looked at the resolution, warns
/// when the policy requires a postmortem the incident does not link.
pub async fn warn_postmortem(api: &Api<Incident>, ns: &str, name: &str) {
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

/// Shows what the operator found, once it has looked (or after a while).
pub async fn brief(api: &Api<Incident>, name: &str) {
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
