//! `kubectl incident show`: one screen, most important first.

use jiff::Timestamp;

use super::{Lines, Style, WIDTH, clock, cut, deadline, severity, span};
use crate::api::{
    Incident, IncidentStatus,
    incident::{DeliveryState, DeploymentState},
};

/// Deployments shown one by one; the rest are counted.
const SHOW_DEPLOYMENTS: usize = 5;
/// Worst pods shown per Deployment.
const SHOW_PODS: usize = 3;
/// Most recent Warning events shown.
const SHOW_EVENTS: usize = 5;
/// Most recent timeline entries shown.
const SHOW_TIMELINE: usize = 6;

pub fn show(incident: &Incident, now: Timestamp, style: Style) -> String {
    let mut out = Lines::default();
    let spec = &incident.spec;
    let empty = IncidentStatus::default();
    let status = incident.status.as_ref().unwrap_or(&empty);
    let name = incident.metadata.name.as_deref().unwrap_or_default();
    let namespace = incident.metadata.namespace.as_deref().unwrap_or_default();

    out.push(format!(
        "{}  {}  {}  {}",
        style.bold(name),
        severity(style, &spec.severity, spec.phase),
        style.bold(&spec.phase.to_string()),
        style.dim(&format!("namespace {namespace}")),
    ));
    out.push(cut(&spec.title, WIDTH));
    let mut who = Vec::new();
    who.push(format!(
        "team {}",
        status.team.as_deref().unwrap_or("(none)")
    ));
    who.push(match spec.commander.as_deref().filter(|c| !c.is_empty()) {
        Some(commander) => format!("commander {commander}"),
        None => "no commander".into(),
    });
    if !spec.responders.is_empty() {
        who.push(format!("responders {}", spec.responders.join(", ")));
    }
    if let Some(declared) = &status.declared_at {
        who.push(format!(
            "declared {} ago at {}",
            span(declared.0, now),
            clock(declared)
        ));
    }
    out.push(who.join(" · "));
    if let Some(deadline) = deadline(status, spec.phase, now) {
        out.push(deadline.render(style));
    }
    if let Some(resolved) = &status.resolved_at {
        let mut line = format!("resolved at {}", clock(resolved));
        if let Some(pm) = &spec.postmortem {
            line.push_str(&format!(" · postmortem {}", pm.url));
        }
        out.push(style.green(&line));
    }

    let attention = crate::domain::incident::brief::attention(status);
    if !attention.is_empty() {
        out.blank();
        out.push(style.bold("Needs attention"));
        for line in attention {
            out.push(format!("  {} {}", style.red("!"), cut(&line, WIDTH - 4)));
        }
    }

    if let Some(summary) = &status.summary {
        out.blank();
        out.push(format!(
            "{} {}",
            style.bold("Summary:"),
            cut(summary, WIDTH)
        ));
    }

    if !status.deployments.is_empty() {
        out.blank();
        out.push(style.bold("Deployments"));
        for d in status.deployments.iter().take(SHOW_DEPLOYMENTS) {
            deployment(&mut out, d, now, style);
        }
        if status.deployments.len() > SHOW_DEPLOYMENTS {
            out.push(style.dim(&format!(
                "  … and {} more (kubectl describe inc {name} -n {namespace})",
                status.deployments.len() - SHOW_DEPLOYMENTS
            )));
        }
    }

    if !status.events.is_empty() {
        out.blank();
        out.push(style.bold("Events"));
        for e in status.events.iter().take(SHOW_EVENTS) {
            let when = e
                .last_seen
                .as_ref()
                .map(|t| format!("{} ago", span(t.0, now)))
                .unwrap_or_default();
            out.push(cut(
                &format!(
                    "  {:<8} {:<18} {:<30} x{:<4} {}",
                    when, e.reason, e.object, e.count, e.message
                ),
                WIDTH,
            ));
        }
    }

    if !status.metrics.is_empty() {
        out.blank();
        out.push(style.bold("Metrics"));
        for m in &status.metrics {
            let value = match (&m.value, &m.error) {
                (Some(v), _) => v.clone(),
                (None, Some(e)) => style.red(&format!("error: {}", cut(e, 100))),
                (None, None) => "no data".into(),
            };
            out.push(format!("  {} = {value}", m.name));
        }
    }

    if !status.timeline.is_empty() {
        out.blank();
        out.push(style.bold("Timeline (latest)"));
        let skip = status.timeline.len().saturating_sub(SHOW_TIMELINE);
        for e in status.timeline.iter().skip(skip) {
            out.push(cut(
                &format!("  {}  {:<18} {}", clock(&e.time), e.type_, e.message),
                WIDTH,
            ));
        }
    }

    let failing: Vec<String> = status
        .notifications
        .iter()
        .filter(|n| {
            n.state == DeliveryState::Failed
                || (n.state == DeliveryState::Pending && n.attempts > 0)
        })
        .map(|n| {
            format!(
                "  {} {} {}: {} after {} attempt{}{}",
                style.red("!"),
                n.receiver,
                n.trigger,
                match n.state {
                    DeliveryState::Failed => "failed",
                    _ => "still failing",
                },
                n.attempts,
                if n.attempts == 1 { "" } else { "s" },
                n.message
                    .as_deref()
                    .map(|m| format!(" ({})", cut(m, 100)))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !failing.is_empty() {
        out.blank();
        out.push(style.bold("Delivery problems"));
        for line in failing {
            out.push(line);
        }
    }
    out.blank();
    out.push(style.dim(&format!(
        "kubectl describe inc {name} -n {namespace} · kubectl incident timeline {name} -n {namespace}"
    )));
    out.finish()
}

fn deployment(out: &mut Lines, d: &DeploymentState, now: Timestamp, style: Style) {
    if !d.found {
        out.push(format!(
            "  {}  {}",
            style.bold(&d.name),
            style.red("not found")
        ));
        return;
    }
    let ready = d.ready_replicas.unwrap_or(0);
    let desired = d.replicas.unwrap_or(0);
    let counts = format!("{ready}/{desired} ready");
    let counts = if ready < desired {
        style.red(&counts)
    } else {
        style.green(&counts)
    };
    let mut head = format!("  {}  {counts}", style.bold(&d.name));
    if let Some(pods) = &d.pods
        && pods.restarts > 0
    {
        head.push_str(&format!("  {} restarts", pods.restarts));
    }
    if let Some(revision) = &d.revision {
        head.push_str(&format!("  revision {revision}"));
    }
    out.push(head);
    if let Some(pods) = &d.pods
        && !pods.reasons.is_empty()
    {
        let reasons: Vec<String> = pods
            .reasons
            .iter()
            .map(|r| format!("{} {}", r.count, r.reason))
            .collect();
        out.push(format!("    reasons: {}", style.red(&reasons.join(", "))));
    }
    if !d.previous_images.is_empty() || d.rollout_at.is_some() {
        let when = d
            .rollout_at
            .as_ref()
            .map(|t| format!("{} ago", span(t.0, now)))
            .unwrap_or_else(|| "?".into());
        let change = if d.previous_images.is_empty() {
            d.images.join(", ")
        } else {
            format!("{} → {}", d.previous_images.join(", "), d.images.join(", "))
        };
        out.push(cut(&format!("    rollout {when}: {change}"), WIDTH));
    }
    if let Some(usage) = &d.usage
        && (usage.cpu.is_some() || usage.memory.is_some())
    {
        let with_ratio = |value: &Option<String>, ratio: &Option<String>, of: &str| {
            let value = value.clone().unwrap_or_else(|| "?".into());
            // Ratios are fractions ("0.82"); people read percentages.
            match ratio.as_deref().map(|r| (r, r.parse::<f64>())) {
                Some((_, Ok(r))) => format!("{value} ({:.0}% of {of})", r * 100.0),
                Some((r, Err(_))) => format!("{value} ({r} of {of})"),
                None => value,
            }
        };
        let (cpu_ratio, cpu_of) = match (&usage.cpu_limit_ratio, &usage.cpu_request_ratio) {
            (Some(r), _) => (Some(r.clone()), "limit"),
            (None, r) => (r.clone(), "request"),
        };
        let (mem_ratio, mem_of) = match (&usage.memory_limit_ratio, &usage.memory_request_ratio) {
            (Some(r), _) => (Some(r.clone()), "limit"),
            (None, r) => (r.clone(), "request"),
        };
        out.push(format!(
            "    usage: cpu {}, memory {}",
            with_ratio(&usage.cpu, &cpu_ratio, cpu_of),
            with_ratio(&usage.memory, &mem_ratio, mem_of)
        ));
    }
    if let Some(pods) = &d.pods {
        for p in pods.items.iter().filter(|p| !p.ready).take(SHOW_PODS) {
            let mut line = format!(
                "    pod {}  {}  {} restarts",
                p.name,
                p.reason
                    .as_deref()
                    .or(p.phase.as_deref())
                    .unwrap_or("NotReady"),
                p.restarts
            );
            if let Some(message) = &p.message {
                line.push_str(&format!("  \"{}\"", cut(message, 80)));
            }
            out.push(cut(&line, WIDTH));
        }
    }
}
