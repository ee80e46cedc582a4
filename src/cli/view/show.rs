//! `kubectl incident show`: one screen, most important first.

use jiff::Timestamp;

use super::{Lines, Style, WIDTH, clock, cut, deadline, severity, span};
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{DeliveryState, DeploymentState, PostmortemState, WorkloadKind},
    },
    domain::incident::{aftercare::overdue_at, brief},
};

/// Deployments shown one by one; the rest are counted.
const SHOW_DEPLOYMENTS: usize = 5;
/// Worst pods shown per Deployment.
const SHOW_PODS: usize = 3;
/// The last lines of the worst pod's log shown.
const SHOW_LOG_LINES: usize = 8;
/// Most recent Warning events shown.
const SHOW_EVENTS: usize = 5;
/// Changes shown, most recent first (the suspect always).
const SHOW_CHANGES: usize = 4;
/// Most recent timeline entries shown.
const SHOW_TIMELINE: usize = 6;
/// Open follow-ups shown one by one; the rest are counted.
const SHOW_FOLLOW_UPS: usize = 3;

/// Lines `show` keeps to: one screen of a laptop's terminal, with every
/// kind of workload, a bad node and a log excerpt on it.
pub const SCREEN: usize = 60;

/// The one-screen view. When everything does not fit, the events and the
/// timeline (which `describe` and `timeline` print whole) give way first.
pub fn show(incident: &Incident, now: Timestamp, style: Style) -> String {
    let mut room = Room {
        events: SHOW_EVENTS,
        timeline: SHOW_TIMELINE,
        log_lines: SHOW_LOG_LINES,
    };
    loop {
        let text = render(incident, now, style, &room);
        if text.lines().count() <= SCREEN {
            return text;
        }
        // Events and the timeline give way first (`kubectl describe` and
        // `timeline` have them all), then log lines, then the last of
        // events and timeline; what changed and the workloads stay.
        if room.events > 2 || room.timeline > 2 {
            if room.events >= room.timeline {
                room.events -= 1;
            } else {
                room.timeline -= 1;
            }
        } else if room.log_lines > 3 {
            room.log_lines -= 1;
        } else if room.events > 1 {
            room.events -= 1;
        } else if room.timeline > 1 {
            room.timeline -= 1;
        } else {
            return text;
        }
    }
}

/// How much of the lists that shrink to fit a screen is shown.
struct Room {
    events: usize,
    timeline: usize,
    log_lines: usize,
}

fn render(incident: &Incident, now: Timestamp, style: Style, room: &Room) -> String {
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
    record(&mut out, incident, status, now, style);

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

    changes(&mut out, status, now, style);

    // Every workload, Deployments by name and the other kinds as kubectl
    // names them, with the lines its kind adds.
    let workloads: Vec<(String, &DeploymentState, Vec<String>)> = status
        .deployments
        .iter()
        .map(|d| (d.name.clone(), d, Vec::new()))
        .chain(status.stateful_sets.iter().map(|s| {
            (
                WorkloadKind::StatefulSet.key(&s.workload.name),
                &s.workload,
                brief::statefulset_notes(s),
            )
        }))
        .chain(status.daemon_sets.iter().map(|d| {
            (
                WorkloadKind::DaemonSet.key(&d.workload.name),
                &d.workload,
                brief::daemonset_notes(d),
            )
        }))
        .collect();
    if !workloads.is_empty() {
        out.blank();
        out.push(style.bold("Workloads"));
        for (label, d, notes) in workloads.iter().take(SHOW_DEPLOYMENTS) {
            // Its rollout is in "What changed" already.
            let listed = d.revision.is_some()
                && status
                    .changes
                    .iter()
                    .any(|c| c.revision == d.revision && c.label() == *label);
            deployment(&mut out, label, d, now, style, listed);
            for note in notes.iter().filter(|_| d.found) {
                out.push(cut(&format!("    {note}"), WIDTH));
            }
        }
        if workloads.len() > SHOW_DEPLOYMENTS {
            out.push(style.dim(&format!(
                "  … and {} more (kubectl describe inc {name} -n {namespace})",
                workloads.len() - SHOW_DEPLOYMENTS
            )));
        }
    }

    // The worst pod's last lines: the first excerpt, worst pods and
    // workloads coming first.
    // Once the pods recovered (or were replaced), the record's latest.
    let worst = status
        .workloads()
        .filter_map(|(_, d)| d.pods.as_ref())
        .flat_map(|p| &p.items)
        .find_map(|p| Some((&p.name, p.log.as_ref().filter(|l| !l.lines.is_empty())?)))
        .or_else(|| status.logs.first().map(|r| (&r.pod, &r.log)));
    if let Some((pod, log)) = worst {
        out.blank();
        let when = log
            .fetched_at
            .as_ref()
            .map(|t| format!(", read {} ago", span(t.0, now)))
            .unwrap_or_default();
        let which = if log.previous {
            format!("before restart {}", log.restart_count)
        } else {
            "running".to_string()
        };
        let skip = log.lines.len().saturating_sub(room.log_lines);
        let last = if skip > 0 || log.truncated {
            format!(", the last {} lines", log.lines.len() - skip)
        } else {
            String::new()
        };
        out.push(format!(
            "{} {}",
            style.bold(&format!("Logs of {pod}/{}", log.container)),
            style.dim(&format!("({which}{when}{last})"))
        ));
        for line in &log.lines[skip..] {
            out.push(cut(&format!("  | {line}"), WIDTH));
        }
    }

    if !status.nodes.is_empty() {
        out.blank();
        out.push(style.bold("Nodes"));
        for node in status.nodes.iter().take(SHOW_DEPLOYMENTS) {
            let since = node
                .since
                .as_ref()
                .map(|t| format!("  for {}", span(t.0, now)))
                .unwrap_or_default();
            let tainted = if node.no_execute.is_empty() {
                String::new()
            } else {
                format!("  NoExecute {}", node.no_execute.join(", "))
            };
            out.push(cut(
                &format!(
                    "  {}  {}  {} affected pod{}{since}{tainted}",
                    style.bold(&node.name),
                    style.red(&crate::domain::enrich::nodes::trouble(node)),
                    node.pods,
                    if node.pods == 1 { "" } else { "s" }
                ),
                WIDTH,
            ));
            if let Some(message) = &node.message {
                out.push(cut(&format!("    \"{message}\""), WIDTH));
            }
        }
    }

    if !status.events.is_empty() {
        out.blank();
        out.push(style.bold("Events"));
        for e in status.events.iter().take(room.events) {
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
        let skip = status.timeline.len().saturating_sub(room.timeline);
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

/// "What changed": the most recent changes and the suspect, each with
/// how long ago, what, who and from which revision.
fn changes(out: &mut Lines, status: &IncidentStatus, now: Timestamp, style: Style) {
    if status.changes.is_empty() {
        return;
    }
    out.blank();
    out.push(style.bold("What changed"));
    let suspect = status.changes.iter().position(|c| c.suspect == Some(true));
    let shown: Vec<usize> = (0..status.changes.len())
        .filter(|&i| i < SHOW_CHANGES || Some(i) == suspect)
        .collect();
    for &i in &shown {
        let c = &status.changes[i];
        let label = c.label();
        let mut line = format!("  {} ago  {label}: {}", span(c.time.0, now), c.change);
        if let Some(by) = &c.by {
            line.push_str(&format!(" · by {by}"));
        }
        if let Some(source) = &c.source {
            line.push_str(&format!(" ({source})"));
        }
        if Some(i) == suspect {
            out.push(format!(
                "{} {}",
                cut(&line, WIDTH - 10),
                style.red("← suspect")
            ));
        } else {
            out.push(cut(&line, WIDTH));
        }
    }
    let more = status.changes.len() - shown.len();
    if more > 0 {
        out.push(style.dim(&format!("  … {more} more in status.changes")));
    }
}

/// The learning record, compactly, once it has something to say: how long
/// each stage took, the postmortem and follow-ups (the open ones numbered
/// as `followup --done` takes them), and the related incidents.
fn record(
    out: &mut Lines,
    incident: &Incident,
    status: &IncidentStatus,
    now: Timestamp,
    style: Style,
) {
    if let Some(d) = &status.durations {
        let took: Vec<String> = [
            ("detect", &d.to_detect),
            ("acknowledge", &d.to_acknowledge),
            ("mitigate", &d.to_mitigate),
            ("resolve", &d.to_resolve),
            ("recover", &d.to_recover),
        ]
        .into_iter()
        .filter_map(|(stage, took)| took.as_ref().map(|t| format!("{stage} {t}")))
        .collect();
        if !took.is_empty() {
            out.push(format!("durations: {}", took.join(" · ")));
        }
    }

    aftercare(out, incident, status, now, style);
    if let Some(line) = related(status) {
        out.push(line);
    }
}

/// Where the postmortem stands and the follow-ups, counted, with the
/// first open ones numbered.
fn aftercare(
    out: &mut Lines,
    incident: &Incident,
    status: &IncidentStatus,
    now: Timestamp,
    style: Style,
) {
    let mut aftercare = Vec::new();
    let linked = incident.spec.postmortem.as_ref();
    match (&status.postmortem, linked) {
        // The resolved line names a linked postmortem already.
        (_, Some(pm)) if status.resolved_at.is_none() => {
            aftercare.push(format!("postmortem {}", pm.url));
        }
        (Some(pm), None) if pm.required => {
            let due = pm
                .due
                .as_ref()
                .map(|d| d.0.strftime("%Y-%m-%d %H:%MZ").to_string());
            aftercare.push(match (pm.state, due) {
                (PostmortemState::Overdue, Some(due)) => {
                    style.red(&format!("postmortem OVERDUE (due {due})"))
                }
                (_, Some(due)) => style.yellow(&format!("postmortem due {due}")),
                (_, None) if status.resolved_at.is_none() => {
                    "postmortem required once resolved".into()
                }
                (_, None) => style.yellow("postmortem required"),
            });
        }
        _ => {}
    }
    let items = &incident.spec.follow_ups;
    let overdue = |due: &Option<String>| {
        due.as_deref()
            .and_then(overdue_at)
            .is_some_and(|at| at <= now)
    };
    if !items.is_empty() {
        let open = items.iter().filter(|i| !i.done).count();
        let late = items.iter().filter(|i| !i.done && overdue(&i.due)).count();
        let mut counts = format!("follow-ups {open} open");
        if late > 0 {
            counts.push_str(&style.red(&format!(" ({late} overdue)")));
        }
        counts.push_str(&format!(", {} done", items.len() - open));
        aftercare.push(counts);
    }
    if !aftercare.is_empty() {
        out.push(aftercare.join(" · "));
    }
    let open: Vec<(usize, &crate::api::incident::FollowUp)> =
        items.iter().enumerate().filter(|(_, i)| !i.done).collect();
    for (n, item) in open.iter().take(SHOW_FOLLOW_UPS) {
        let mut about = Vec::new();
        if let Some(owner) = &item.owner {
            about.push(owner.clone());
        }
        if let Some(due) = &item.due {
            about.push(if overdue(&item.due) {
                style.red(&format!("due {due}, overdue"))
            } else {
                format!("due {due}")
            });
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        out.push(cut(&format!("  {}. {}{about}", n + 1, item.title), WIDTH));
    }
    if open.len() > SHOW_FOLLOW_UPS {
        out.push(style.dim(&format!(
            "  … and {} more open (kubectl incident postmortem lists them all)",
            open.len() - SHOW_FOLLOW_UPS
        )));
    }
}

/// `related: a (RecurrenceOf, found by Klaxon, resolved 2026-10-30); ...`
fn related(status: &IncidentStatus) -> Option<String> {
    if status.related.is_empty() {
        return None;
    }
    let related: Vec<String> = status
        .related
        .iter()
        .map(|r| {
            let mut about = vec![r.relation.as_str().to_string()];
            if r.detected {
                about.push("found by Klaxon".into());
            }
            if let Some(at) = &r.resolved_at {
                about.push(format!("resolved {}", at.0.strftime("%Y-%m-%d")));
            }
            format!("{} ({})", r.name, about.join(", "))
        })
        .collect();
    Some(cut(&format!("related: {}", related.join("; ")), WIDTH))
}

fn deployment(
    out: &mut Lines,
    label: &str,
    d: &DeploymentState,
    now: Timestamp,
    style: Style,
    rollout_listed: bool,
) {
    if !d.found {
        out.push(format!(
            "  {}  {}",
            style.bold(label),
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
    let mut head = format!("  {}  {counts}", style.bold(label));
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
    if !rollout_listed && (!d.previous_images.is_empty() || d.rollout_at.is_some()) {
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
