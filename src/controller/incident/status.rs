//! The Incident's status as a pure function of the incident, its previous
//! status, the enrichment gathered from the caches, and the clock.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{
        Incident, IncidentStatus, Phase,
        incident::{
            DeliveryState, DeploymentState, EventSummary, MetricValue, NotificationState,
            PolicyReference, TimelineEntry,
        },
        limits::{MAX_NOTIFICATIONS, MAX_TIMELINE},
        policy::Trigger,
    },
    conditions::{READY, condition},
    enrich,
    notify::{self, Backoff, DeliveryError},
    policy::{EffectivePolicy, humantime},
};

pub const ENRICHED: &str = "Enriched";
pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
pub const DEPLOYMENTS_FOUND: &str = "DeploymentsFound";
pub const COMMANDER_MISSING: &str = "CommanderMissing";
pub const POSTMORTEM_REQUIRED: &str = "PostmortemRequired";
pub const ACKNOWLEDGEMENT_OVERDUE: &str = "AcknowledgementOverdue";
pub const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
pub const QUERIES_SUCCEEDED: &str = "QueriesSucceeded";

/// The serialized status stays under this many bytes, whatever the cluster
/// throws at it.
pub const MAX_STATUS_BYTES: usize = 60 * 1024;

/// Timeline entries kept from the start when the timeline is full; the
/// rest are the most recent.
const TIMELINE_HEAD: usize = 10;

/// A rollout this long before the declaration is worth a timeline entry.
const ROLLOUT_WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// What the caches say about the incident's workloads right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Enrichment {
    pub deployments: Vec<DeploymentState>,
    pub events: Vec<EventSummary>,
    /// Warning events seen in all, counts included.
    pub warnings: i64,
    /// `None` until the metrics API was first probed.
    pub metrics_available: Option<bool>,
    /// True when selectors matched more Deployments than a status holds.
    pub truncated: bool,
    /// Fresh Prometheus query results; `None` keeps the previous ones.
    pub queries: Option<Vec<MetricValue>>,
}

/// A timeline entry added by this pass, to be reported as an Event.
/// `action` tells apart Events of one reason (the Recorder merges Events
/// with the same reason and action into one series).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub reason: String,
    pub action: String,
    pub message: String,
    /// Reported as a Warning Event.
    pub warning: bool,
}

pub struct Computed {
    pub status: IncidentStatus,
    pub transitions: Vec<Transition>,
    /// An incident Klaxon declared whose workload stayed healthy for the
    /// policy's `autoResolve.healthyFor`: set `spec.phase: Resolved`.
    pub resolve: bool,
}

pub fn compute(
    incident: &Incident,
    enrichment: Enrichment,
    policy: &EffectivePolicy,
    now: Timestamp,
) -> Computed {
    // Status times have second precision; keep `now` comparable with them.
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let previous = incident.status.clone().unwrap_or_default();
    let spec = &incident.spec;
    let generation = incident.metadata.generation;
    let mut status = previous.clone();
    let mut transitions = Vec::new();
    let mut add = |status: &mut IncidentStatus, time: Time, type_: &str, message: String| {
        transitions.push(Transition {
            reason: type_.to_string(),
            action: action_of(type_, &message),
            message: message.clone(),
            warning: type_ == "Escalated",
        });
        push_timeline(
            &mut status.timeline,
            TimelineEntry {
                time,
                type_: type_.to_string(),
                message,
            },
        );
    };

    // Lifecycle: each phase's first entry, and what changed since last time.
    let declared = incident
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(|| now.clone());
    let mut fired: Vec<Trigger> = Vec::new();
    if status.declared_at.is_none() {
        fired.push(Trigger::Declared);
        status.declared_at = Some(declared.clone());
        add(
            &mut status,
            declared.clone(),
            "Declared",
            format!("Declared {}: {}", spec.severity, spec.title),
        );
        if let Some(message) = incident
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::signals::MESSAGE_ANNOTATION))
        {
            add(
                &mut status,
                declared.clone(),
                "Signal",
                format!("Declared by Klaxon: {}", enrich::truncate(message, 512)),
            );
        }
    }
    let first_entry = if previous.declared_at.is_none() {
        declared.clone()
    } else {
        now.clone()
    };
    let phase_time = match spec.phase {
        Phase::Triggered => None,
        Phase::Acknowledged => Some(&mut status.acknowledged_at),
        Phase::Mitigated => Some(&mut status.mitigated_at),
        Phase::Resolved => Some(&mut status.resolved_at),
    };
    if let Some(slot) = phase_time
        && slot.is_none()
    {
        *slot = Some(first_entry.clone());
    }
    if let Some(old) = previous.observed_phase
        && old != spec.phase
    {
        fired.push(Trigger::PhaseChanged);
        if spec.phase == Phase::Resolved {
            fired.push(Trigger::Resolved);
        }
        add(
            &mut status,
            now.clone(),
            "PhaseChanged",
            format!("{old} → {}", spec.phase),
        );
    }
    if let Some(old) = &previous.observed_severity
        && *old != spec.severity
    {
        fired.push(Trigger::SeverityChanged);
        add(
            &mut status,
            now.clone(),
            "SeverityChanged",
            format!("{old} → {}", spec.severity),
        );
    }
    let seen_notes = usize::try_from(previous.observed_notes.unwrap_or(0)).unwrap_or(0);
    for note in spec.notes.iter().skip(seen_notes) {
        let author = note.author.as_deref().unwrap_or("someone");
        add(
            &mut status,
            note.time.clone().unwrap_or_else(|| now.clone()),
            "Note",
            format!("{author}: {}", enrich::truncate(&note.text, 256)),
        );
    }
    status.observed_phase = Some(spec.phase);
    status.observed_severity = Some(spec.severity.clone());
    status.observed_notes = Some(i32::try_from(spec.notes.len()).unwrap_or(i32::MAX));
    status.observed_generation = generation;

    // Policy: who owns it, which ladder, which deadline.
    status.team = policy.team.clone();
    status.policy = Some(PolicyReference {
        response_policy: policy.response_policy.clone(),
        cluster_response_policies: policy.cluster_policies.clone(),
    });
    let level = policy.level(&spec.severity);
    status.acknowledge_by = level
        .and_then(|l| l.acknowledge_within)
        .zip(status.declared_at.as_ref())
        .and_then(|(within, declared)| {
            let within = SignedDuration::try_from(within).ok()?;
            declared.0.checked_add(within).ok().map(Time)
        });
    let overdue = spec.phase == Phase::Triggered
        && status
            .acknowledge_by
            .as_ref()
            .is_some_and(|by| by.0 <= now.0);
    if overdue && status.escalated_at.is_none() {
        status.escalated_at = Some(now.clone());
        fired.push(Trigger::Escalated);
        let within = level
            .and_then(|l| l.acknowledge_within)
            .map(humantime)
            .unwrap_or_default();
        let to = if policy.escalation.is_empty() {
            "no escalation receivers are defined".to_string()
        } else {
            format!("escalating to {}", policy.escalation.join(", "))
        };
        add(
            &mut status,
            now.clone(),
            "Escalated",
            format!(
                "Not acknowledged within {within} of declaration ({} ladder); {to}",
                spec.severity
            ),
        );
    }

    // Notifications: one entry per (receiver, trigger), delivered once.
    if let Some(uid) = incident.metadata.uid.as_deref()
        && !uid.is_empty()
    {
        for trigger in &fired {
            let mut receivers: Vec<&String> = policy
                .routes
                .iter()
                .filter(|r| r.matches(&spec.severity, *trigger))
                .flat_map(|r| r.receivers.iter())
                .collect();
            if *trigger == Trigger::Escalated {
                receivers.extend(policy.escalation.iter());
            }
            for receiver in receivers {
                let trigger_name = format!("{trigger:?}");
                let exists = status
                    .notifications
                    .iter()
                    .any(|n| n.receiver == *receiver && n.trigger == trigger_name);
                if exists || status.notifications.len() >= MAX_NOTIFICATIONS as usize {
                    continue;
                }
                status.notifications.push(NotificationState {
                    receiver: receiver.clone(),
                    trigger: trigger_name,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    last_attempt_at: None,
                    next_attempt_at: None,
                    idempotency_key: Some(notify::idempotency_key(incident, *trigger, receiver)),
                    message: None,
                });
            }
        }
    }

    // Enrichment: live until resolution, then frozen as the evidence record.
    let frozen = spec.phase == Phase::Resolved && previous.resolved_at.is_some();
    if !frozen {
        let changed =
            status.deployments != enrichment.deployments || status.events != enrichment.events;
        status.deployments = enrichment.deployments;
        status.events = enrichment.events;
        if let Some(queries) = enrichment.queries {
            status.metrics = queries;
            status.metrics_at = Some(now.clone());
        }
        if policy.queries.is_empty() {
            status.metrics.clear();
            status.metrics_at = None;
        }
        status.summary = Some(enrich::summary(&status.deployments, enrichment.warnings));
        if changed || status.enriched_at.is_none() {
            status.enriched_at = Some(now.clone());
        }
        let declared_at = status
            .declared_at
            .clone()
            .unwrap_or_else(|| declared.clone());
        for (time, type_, key, message) in findings(&status.deployments, &declared_at) {
            if !status
                .timeline
                .iter()
                .any(|e| e.type_ == type_ && e.message.starts_with(&key))
            {
                add(
                    &mut status,
                    time.unwrap_or_else(|| now.clone()),
                    type_,
                    message,
                );
            }
        }
    }

    // Auto-resolution of incidents Klaxon declared from a signal.
    let signal = incident
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::signals::SIGNAL_LABEL))
        .and_then(|s| crate::signals::signal_type(s));
    let mut resolve = false;
    match (signal, policy.auto_resolve) {
        (Some(signal), Some(after)) if !frozen && spec.phase != Phase::Resolved => {
            if crate::signals::healthy(signal, &status.deployments) {
                let since = status
                    .healthy_since
                    .get_or_insert_with(|| now.clone())
                    .clone();
                let due = SignedDuration::try_from(after)
                    .ok()
                    .and_then(|after| since.0.checked_add(after).ok())
                    .is_some_and(|at| at <= now.0);
                if due {
                    resolve = true;
                    if !status.timeline.iter().any(|e| e.type_ == "AutoResolved") {
                        add(
                            &mut status,
                            now.clone(),
                            "AutoResolved",
                            format!(
                                "Healthy since {} (for {}); resolving",
                                since.0,
                                humantime(after)
                            ),
                        );
                    }
                }
            } else {
                status.healthy_since = None;
            }
        }
        _ if !frozen => status.healthy_since = None,
        _ => {}
    }

    // Conditions.
    let prev = previous.conditions.as_slice();
    let mut conditions = Vec::new();
    let mut problems: Vec<(&str, String)> = Vec::new();
    if level.is_none() {
        problems.push((
            "UnknownSeverity",
            format!(
                "Severity {} is not on the ladder for namespace {}; valid levels: {}.",
                spec.severity,
                incident.metadata.namespace.as_deref().unwrap_or_default(),
                policy.ladder_names().join(", ")
            ),
        ));
    }
    let commander_required = level.is_some_and(|l| l.require_commander);
    let commander_missing = commander_required
        && spec
            .commander
            .as_deref()
            .is_none_or(|c| c.trim().is_empty());
    if commander_missing {
        problems.push((
            COMMANDER_MISSING,
            format!(
                "{} incidents must name a commander: set spec.commander.",
                spec.severity
            ),
        ));
    }
    let postmortem_required =
        level.is_some_and(|l| l.require_postmortem) && spec.phase == Phase::Resolved;
    let postmortem_missing = postmortem_required && spec.postmortem.is_none();
    if postmortem_missing {
        problems.push((
            POSTMORTEM_REQUIRED,
            format!(
                "Resolved {} incidents must link a postmortem: set spec.postmortem.url.",
                spec.severity
            ),
        ));
    }
    conditions.push(match problems.first() {
        Some((reason, _)) => condition(
            prev,
            READY,
            false,
            reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            generation,
            &now,
        ),
        None => condition(
            prev,
            READY,
            true,
            if frozen { "Resolved" } else { "Enriched" },
            if frozen {
                "The incident is resolved; its record is complete."
            } else {
                "The incident is valid and its enrichment is current."
            },
            generation,
            &now,
        ),
    });
    if commander_required {
        conditions.push(if commander_missing {
            condition(
                prev,
                COMMANDER_MISSING,
                true,
                "NoCommander",
                format!(
                    "The ladder requires a commander for {}; set spec.commander.",
                    spec.severity
                ),
                generation,
                &now,
            )
        } else {
            condition(
                prev,
                COMMANDER_MISSING,
                false,
                "CommanderNamed",
                "A commander is named.",
                generation,
                &now,
            )
        });
    }
    if postmortem_required {
        conditions.push(if postmortem_missing {
            condition(prev, POSTMORTEM_REQUIRED, true, "NoPostmortem",
                format!("The ladder requires a postmortem for resolved {} incidents; set spec.postmortem.url.", spec.severity),
                generation, &now)
        } else {
            condition(prev, POSTMORTEM_REQUIRED, false, "PostmortemLinked",
                "The postmortem is linked.", generation, &now)
        });
    }
    if let Some(by) = &status.acknowledge_by {
        let by_text = by.0.to_string();
        conditions.push(match (&status.escalated_at, &status.acknowledged_at) {
            (Some(_), None) if spec.phase == Phase::Triggered => condition(
                prev,
                ACKNOWLEDGEMENT_OVERDUE,
                true,
                "Overdue",
                format!("Not acknowledged by {by_text}; escalated. Set spec.phase: Acknowledged."),
                generation,
                &now,
            ),
            (Some(_), _) => condition(
                prev,
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "AcknowledgedLate",
                format!("Acknowledged after the deadline {by_text}."),
                generation,
                &now,
            ),
            (None, Some(_)) => condition(
                prev,
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "Acknowledged",
                format!("Acknowledged before the deadline {by_text}."),
                generation,
                &now,
            ),
            (None, None) => condition(
                prev,
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "WithinDeadline",
                format!("Must be acknowledged by {by_text}."),
                generation,
                &now,
            ),
        });
    }
    conditions.push(if frozen {
        condition(
            prev,
            ENRICHED,
            true,
            "Frozen",
            "Enrichment was frozen at resolution as the evidence record.",
            generation,
            &now,
        )
    } else {
        condition(
            prev,
            ENRICHED,
            true,
            "Live",
            if enrichment.truncated {
                "Enrichment follows the cluster; selectors matched more Deployments than the status holds, the first ones are shown."
            } else {
                "Enrichment follows the cluster."
            },
            generation,
            &now,
        )
    });
    let missing: Vec<&str> = status
        .deployments
        .iter()
        .filter(|d| !d.found)
        .map(|d| d.name.as_str())
        .collect();
    if !status.deployments.is_empty() {
        conditions.push(if missing.is_empty() {
            condition(
                prev,
                DEPLOYMENTS_FOUND,
                true,
                "AllFound",
                "Every affected Deployment was found.",
                generation,
                &now,
            )
        } else {
            condition(
                prev,
                DEPLOYMENTS_FOUND,
                false,
                "DeploymentNotFound",
                format!(
                    "Deployment {} not found in namespace {}; it will be linked as soon as it exists.",
                    missing.join(", "),
                    incident.metadata.namespace.as_deref().unwrap_or_default()
                ),
                generation,
                &now,
            )
        });
    }
    if frozen {
        if let Some(kept) = crate::conditions::find(prev, METRICS_AVAILABLE) {
            conditions.push(kept.clone());
        }
    } else {
        match enrichment.metrics_available {
            Some(true) => conditions.push(condition(
                prev,
                METRICS_AVAILABLE,
                true,
                "MetricsAPIAvailable",
                "CPU and memory come from metrics.k8s.io.",
                generation,
                &now,
            )),
            Some(false) => conditions.push(condition(
                prev,
                METRICS_AVAILABLE,
                false,
                "MetricsAPIUnavailable",
                "metrics.k8s.io is not served in this cluster (install metrics-server); CPU and memory are not shown.",
                generation,
                &now,
            )),
            None => {}
        }
    }
    if !policy.queries.is_empty() && !status.metrics.is_empty() {
        let failed: Vec<String> = status
            .metrics
            .iter()
            .filter_map(|m| Some(format!("{}: {}", m.name, m.error.as_deref()?)))
            .collect();
        conditions.push(if failed.is_empty() {
            condition(
                prev,
                QUERIES_SUCCEEDED,
                true,
                "QueriesSucceeded",
                "Every Prometheus query returned a value.",
                generation,
                &now,
            )
        } else {
            condition(
                prev,
                QUERIES_SUCCEEDED,
                false,
                "QueryFailed",
                enrich::truncate(&failed.join("; "), 1000),
                generation,
                &now,
            )
        });
    }
    if let Some(c) = delivery_condition(&status.notifications, prev, generation, &now) {
        conditions.push(c);
    }
    status.conditions = conditions;
    strip_problems(&mut status.summary);
    let mut prefix: Vec<&str> = Vec::new();
    if level.is_none() {
        prefix.push("unknown severity");
    }
    if commander_missing {
        prefix.push("commander missing");
    }
    if postmortem_missing {
        prefix.push("postmortem required");
    }
    if overdue {
        prefix.push("acknowledgement overdue");
    }
    if !prefix.is_empty() {
        let rest = status.summary.take().unwrap_or_default();
        let line = if rest.is_empty() {
            prefix.join("; ")
        } else {
            format!("{}; {rest}", prefix.join("; "))
        };
        status.summary = Some(enrich::truncate(&line, 512));
    }

    fit(&mut status, MAX_STATUS_BYTES);
    Computed {
        status,
        transitions,
        resolve,
    }
}

/// What the summary may start with, most urgent first.
const PROBLEMS: [&str; 4] = [
    "unknown severity",
    "commander missing",
    "postmortem required",
    "acknowledgement overdue",
];

/// Removes problem prefixes a previous pass put on a kept summary.
fn strip_problems(summary: &mut Option<String>) {
    let Some(text) = summary.as_mut() else { return };
    let mut rest = text.as_str();
    loop {
        let before = rest;
        for problem in PROBLEMS {
            if let Some(after) = rest.strip_prefix(problem) {
                rest = after.strip_prefix("; ").unwrap_or(after);
            }
        }
        if rest == before {
            break;
        }
    }
    *text = rest.to_string();
}

/// `NotificationsDelivered`, once anything was routed.
fn delivery_condition(
    notifications: &[NotificationState],
    prev: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    generation: Option<i64>,
    now: &Time,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    if notifications.is_empty() {
        return None;
    }
    let failed: Vec<String> = notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Failed)
        .map(|n| format!("{} ({})", n.receiver, n.trigger))
        .collect();
    let pending = notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Pending)
        .count();
    Some(if !failed.is_empty() {
        condition(
            prev,
            NOTIFICATIONS_DELIVERED,
            false,
            "DeliveryFailed",
            format!("Gave up delivering to {}.", failed.join(", ")),
            generation,
            now,
        )
    } else if pending > 0 {
        condition(
            prev,
            NOTIFICATIONS_DELIVERED,
            false,
            "Pending",
            format!("{pending} notification(s) pending."),
            generation,
            now,
        )
    } else {
        condition(
            prev,
            NOTIFICATIONS_DELIVERED,
            true,
            "Delivered",
            "Every routed notification was delivered.",
            generation,
            now,
        )
    })
}

/// Marks the pending deliveries that are due as attempted (before they are
/// sent, so a restart retries them with the same key instead of forgetting
/// them) and returns their indexes.
pub fn begin_deliveries(
    status: &mut IncidentStatus,
    now: Timestamp,
    backoff: &Backoff,
) -> Vec<usize> {
    let now_time = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let mut due = Vec::new();
    for (i, n) in status.notifications.iter_mut().enumerate() {
        let ready = n.next_attempt_at.as_ref().is_none_or(|at| at.0 <= now);
        if n.state != DeliveryState::Pending || !ready {
            continue;
        }
        n.attempts = n.attempts.saturating_add(1);
        n.last_attempt_at = Some(now_time.clone());
        let wait = backoff.delay(u32::try_from(n.attempts).unwrap_or(u32::MAX));
        n.next_attempt_at = SignedDuration::try_from(wait)
            .ok()
            .and_then(|w| now.checked_add(w).ok())
            .map(Time);
        due.push(i);
    }
    due
}

/// Records the outcome of one attempt; returns the timeline entry it adds.
pub fn finish_delivery(
    status: &mut IncidentStatus,
    index: usize,
    outcome: Result<(), DeliveryError>,
    now: Timestamp,
    max_attempts: u32,
) -> Option<Transition> {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let n = status.notifications.get_mut(index)?;
    let (type_, message, warning) = match outcome {
        Ok(()) => {
            n.state = DeliveryState::Delivered;
            n.next_attempt_at = None;
            n.message = None;
            (
                "Notification",
                format!("Notified {} ({})", n.receiver, n.trigger),
                false,
            )
        }
        Err(error) => {
            let error = enrich::truncate(&error.to_string(), 300);
            n.message = Some(error.clone());
            if u32::try_from(n.attempts).unwrap_or(u32::MAX) < max_attempts {
                return None;
            }
            n.state = DeliveryState::Failed;
            n.next_attempt_at = None;
            (
                "NotificationFailed",
                format!(
                    "Gave up notifying {} ({}) after {} attempts: {error}",
                    n.receiver, n.trigger, n.attempts
                ),
                true,
            )
        }
    };
    push_timeline(
        &mut status.timeline,
        TimelineEntry {
            time: now,
            type_: type_.to_string(),
            message: message.clone(),
        },
    );
    Some(Transition {
        reason: type_.to_string(),
        action: format!("{type_}/{}", message.split(' ').nth(1).unwrap_or_default()),
        message,
        warning,
    })
}

/// Brings `NotificationsDelivered` in line with the notifications after
/// deliveries were attempted.
pub fn refresh_delivery_condition(
    status: &mut IncidentStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let fresh = delivery_condition(&status.notifications, &status.conditions, generation, &now);
    status
        .conditions
        .retain(|c| c.type_ != NOTIFICATIONS_DELIVERED);
    status.conditions.extend(fresh);
}

/// When the incident next needs attention without any change: the next
/// delivery retry, or its acknowledgement deadline.
pub fn next_wakeup(
    status: &IncidentStatus,
    spec_phase: Phase,
    auto_resolve: Option<std::time::Duration>,
) -> Option<Timestamp> {
    let retries = status
        .notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Pending)
        .filter_map(|n| n.next_attempt_at.as_ref().map(|t| t.0));
    let deadline = status
        .acknowledge_by
        .as_ref()
        .filter(|_| spec_phase == Phase::Triggered && status.escalated_at.is_none())
        .map(|t| t.0);
    let resolution = status
        .healthy_since
        .as_ref()
        .zip(auto_resolve)
        .filter(|_| spec_phase != Phase::Resolved)
        .and_then(|(since, after)| {
            let after = SignedDuration::try_from(after).ok()?;
            since.0.checked_add(after).ok()
        });
    retries.chain(deadline).chain(resolution).min()
}

/// The Event action for a timeline entry: the type, narrowed by what the
/// entry is about where one type covers several things.
fn action_of(type_: &str, message: &str) -> String {
    let word = match type_ {
        // "<deployment>: pods show <reason>"
        "PodFailure" => message.rsplit(' ').next(),
        // "<deployment> rolled out revision ..."
        "Rollout" => message.split(' ').next(),
        _ => None,
    };
    match word {
        Some(word) => format!("{type_}/{word}"),
        None => type_.to_string(),
    }
}

/// Timeline-worthy facts in the enrichment: recent rollouts, and the
/// first OOMKill or crash loop per Deployment. Each comes with the prefix
/// that identifies it, so it enters the timeline once even when details
/// (such as the images replaced) are learned later.
fn findings(
    deployments: &[DeploymentState],
    declared: &Time,
) -> Vec<(Option<Time>, &'static str, String, String)> {
    let mut found = Vec::new();
    for d in deployments.iter().filter(|d| d.found) {
        let window_start = declared.0.checked_sub(ROLLOUT_WINDOW).unwrap_or(declared.0);
        if let Some(at) = &d.rollout_at
            && at.0 >= window_start
        {
            let revision = d.revision.as_deref().unwrap_or("?");
            let when = if at.0 <= declared.0 {
                let seconds = declared.0.duration_since(at.0).as_secs();
                if seconds < 60 {
                    format!("{seconds}s before the incident was declared")
                } else {
                    format!("{}m before the incident was declared", seconds / 60)
                }
            } else {
                "after the incident was declared".to_string()
            };
            let change = if d.previous_images.is_empty() || d.previous_images == d.images {
                String::new()
            } else {
                format!(
                    ": {} → {}",
                    d.previous_images.join(", "),
                    d.images.join(", ")
                )
            };
            found.push((
                Some(at.clone()),
                "Rollout",
                format!("{} rolled out revision {revision} ", d.name),
                format!("{} rolled out revision {revision} {when}{change}", d.name),
            ));
        }
        for reason in ["OOMKilled", "CrashLoopBackOff", "ImagePullBackOff"] {
            let pods = d.pods.as_ref();
            if pods.is_some_and(|p| p.reasons.iter().any(|r| r.reason == reason)) {
                let message = format!("{}: pods show {reason}", d.name);
                found.push((None, "PodFailure", message.clone(), message));
            }
        }
    }
    found
}

/// Inserts in time order (stable for equal times) and keeps the timeline
/// bounded: the first entries and the most recent ones.
fn push_timeline(timeline: &mut Vec<TimelineEntry>, entry: TimelineEntry) {
    let at = timeline
        .iter()
        .rposition(|e| e.time.0 <= entry.time.0)
        .map(|i| i + 1)
        .unwrap_or(0);
    timeline.insert(at, entry);
    let max = MAX_TIMELINE as usize;
    if timeline.len() > max {
        timeline.remove(TIMELINE_HEAD);
    }
}

/// Sheds the least useful detail until the serialized status fits.
fn fit(status: &mut IncidentStatus, max_bytes: usize) {
    let size = |s: &IncidentStatus| serde_json::to_vec(s).map(|v| v.len()).unwrap_or(usize::MAX);
    while size(status) > max_bytes {
        if status.events.len() > 5 {
            status.events.pop();
        } else if let Some(pods) = status
            .deployments
            .iter_mut()
            .filter_map(|d| d.pods.as_mut())
            .filter(|p| p.items.len() > 1)
            .max_by_key(|p| p.items.len())
        {
            pods.items.pop();
        } else if status.timeline.len() > TIMELINE_HEAD + 5 {
            status.timeline.remove(TIMELINE_HEAD);
        } else if status.events.pop().is_some() {
        } else if status.deployments.len() > 1 {
            status.deployments.pop();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{self, EffectivePolicy};

    /// Without any policy: the default ladder, no routes.
    fn compute(incident: &Incident, enrichment: Enrichment, now: Timestamp) -> Computed {
        super::compute(incident, enrichment, &no_policy(), now)
    }

    fn no_policy() -> EffectivePolicy {
        policy::effective("shop", &[], None, None, "klaxon-system")
    }
    use crate::api::{
        IncidentSpec,
        incident::{Note, PodsSummary, ReasonCount},
    };

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn incident(phase: Phase, severity: &str) -> Incident {
        let mut incident = Incident::new(
            "checkout-5xx",
            IncidentSpec {
                title: "Checkout returns 5xx".into(),
                severity: severity.into(),
                phase,
                summary: None,
                commander: None,
                responders: vec![],
                affected: None,
                notes: vec![],
                postmortem: None,
            },
        );
        incident.metadata.namespace = Some("shop".into());
        incident.metadata.generation = Some(1);
        incident.metadata.creation_timestamp = Some(Time(at("2026-11-24T14:10:00Z")));
        incident
    }

    fn checkout(ready: i32, reasons: &[(&str, i32)]) -> DeploymentState {
        DeploymentState {
            name: "checkout".into(),
            found: true,
            replicas: Some(3),
            ready_replicas: Some(ready),
            revision: Some("2".into()),
            rollout_at: Some(Time(at("2026-11-24T14:01:00Z"))),
            images: vec!["shop/checkout:v42".into()],
            previous_images: vec!["shop/checkout:v41".into()],
            pods: Some(PodsSummary {
                reasons: reasons
                    .iter()
                    .map(|(r, n)| ReasonCount {
                        reason: r.to_string(),
                        count: *n,
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn enrichment(deployments: Vec<DeploymentState>) -> Enrichment {
        Enrichment {
            deployments,
            metrics_available: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn first_pass_declares_and_explains_the_rollout() {
        let now = at("2026-11-24T14:10:05Z");
        let out = compute(
            &incident(Phase::Triggered, "SEV2"),
            enrichment(vec![checkout(1, &[("CrashLoopBackOff", 2)])]),
            now,
        );
        let s = &out.status;
        assert_eq!(
            s.declared_at.as_ref().map(|t| t.0),
            Some(at("2026-11-24T14:10:00Z"))
        );
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(
            s.summary.as_deref(),
            Some("checkout 1/3 ready; 2 CrashLoopBackOff")
        );
        let timeline: Vec<(&str, &str)> = s
            .timeline
            .iter()
            .map(|e| (e.type_.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            timeline,
            [
                (
                    "Rollout",
                    "checkout rolled out revision 2 9m before the incident was declared: shop/checkout:v41 → shop/checkout:v42"
                ),
                ("Declared", "Declared SEV2: Checkout returns 5xx"),
                ("PodFailure", "checkout: pods show CrashLoopBackOff"),
            ]
        );
        let reasons: Vec<&str> = out.transitions.iter().map(|t| t.reason.as_str()).collect();
        assert_eq!(reasons, ["Declared", "Rollout", "PodFailure"]);
        let types: Vec<(&str, &str)> = s
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("Ready", "True"),
                ("Enriched", "True"),
                ("DeploymentsFound", "True"),
                ("MetricsAvailable", "True")
            ]
        );
    }

    #[test]
    fn a_second_pass_with_nothing_new_changes_nothing() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let first = compute(
            &inc,
            enrichment(vec![checkout(1, &[])]),
            at("2026-11-24T14:10:05Z"),
        );
        inc.status = Some(first.status.clone());
        let second = compute(
            &inc,
            enrichment(vec![checkout(1, &[])]),
            at("2026-11-24T14:20:00Z"),
        );
        assert_eq!(
            second.status, first.status,
            "no change must mean no status write"
        );
        assert!(second.transitions.is_empty());
    }

    #[test]
    fn a_rollout_enters_the_timeline_once_even_when_details_arrive_later() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let mut early = checkout(1, &[]);
        early.previous_images.clear();
        let first = compute(&inc, enrichment(vec![early]), at("2026-11-24T14:10:05Z"));
        inc.status = Some(first.status);
        let second = compute(
            &inc,
            enrichment(vec![checkout(1, &[])]),
            at("2026-11-24T14:10:06Z"),
        );
        let rollouts = second
            .status
            .timeline
            .iter()
            .filter(|e| e.type_ == "Rollout")
            .count();
        assert_eq!(rollouts, 1);
        assert!(second.transitions.is_empty());
    }

    #[test]
    fn phase_severity_and_notes_enter_the_timeline_once() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let first = compute(&inc, enrichment(vec![]), at("2026-11-24T14:10:05Z"));
        inc.status = Some(first.status);
        inc.spec.phase = Phase::Acknowledged;
        inc.spec.severity = "SEV1".into();
        inc.spec.notes.push(Note {
            author: Some("alice".into()),
            text: "Rolled back to v41".into(),
            time: Some(Time(at("2026-11-24T14:20:00Z"))),
        });
        let second = compute(&inc, enrichment(vec![]), at("2026-11-24T14:21:00Z"));
        let s = &second.status;
        assert_eq!(
            s.acknowledged_at.as_ref().map(|t| t.0),
            Some(at("2026-11-24T14:21:00Z"))
        );
        let reasons: Vec<&str> = second
            .transitions
            .iter()
            .map(|t| t.reason.as_str())
            .collect();
        assert_eq!(reasons, ["PhaseChanged", "SeverityChanged", "Note"]);
        assert!(
            s.timeline
                .iter()
                .any(|e| e.message == "Triggered → Acknowledged")
        );
        assert!(s.timeline.iter().any(|e| e.message == "SEV2 → SEV1"));
        assert!(
            s.timeline
                .iter()
                .any(|e| e.message == "alice: Rolled back to v41")
        );
        inc.status = Some(s.clone());
        let third = compute(&inc, enrichment(vec![]), at("2026-11-24T14:22:00Z"));
        assert!(third.transitions.is_empty());
    }

    #[test]
    fn resolution_freezes_the_enrichment() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let first = compute(
            &inc,
            enrichment(vec![checkout(1, &[])]),
            at("2026-11-24T14:10:05Z"),
        );
        inc.status = Some(first.status);
        inc.spec.phase = Phase::Resolved;
        let resolving = compute(
            &inc,
            enrichment(vec![checkout(3, &[])]),
            at("2026-11-24T15:00:00Z"),
        );
        assert_eq!(resolving.status.deployments[0].ready_replicas, Some(3));
        inc.status = Some(resolving.status.clone());
        let later = compute(
            &inc,
            enrichment(vec![checkout(0, &[("OOMKilled", 3)])]),
            at("2026-11-24T15:30:00Z"),
        );
        assert_eq!(later.status.deployments, resolving.status.deployments);
        assert_eq!(later.status.summary, resolving.status.summary);
        let enriched =
            crate::conditions::find(&later.status.conditions, ENRICHED).expect("Enriched");
        assert_eq!(enriched.reason, "Frozen");
    }

    #[test]
    fn a_missing_deployment_is_a_condition() {
        let out = compute(
            &incident(Phase::Triggered, "SEV2"),
            enrichment(vec![crate::enrich::deployment::not_found("ledger")]),
            at("2026-11-24T14:10:05Z"),
        );
        let found =
            crate::conditions::find(&out.status.conditions, DEPLOYMENTS_FOUND).expect("condition");
        assert_eq!(found.status, "False");
        assert_eq!(found.reason, "DeploymentNotFound");
        assert!(found.message.contains("ledger"), "{}", found.message);
    }

    #[test]
    fn the_status_stays_bounded_under_an_event_storm() {
        let events: Vec<EventSummary> = (0..100)
            .map(|i| EventSummary {
                type_: "Warning".into(),
                reason: "BackOff".into(),
                object: format!("Pod/checkout-{i}"),
                message: "x".repeat(256),
                count: 1,
                first_seen: None,
                last_seen: None,
            })
            .collect();
        let mut storm = enrichment(vec![checkout(0, &[])]);
        storm.events = events;
        let mut status = compute(
            &incident(Phase::Triggered, "SEV2"),
            storm,
            at("2026-11-24T14:10:05Z"),
        )
        .status;
        fit(&mut status, 8 * 1024);
        assert!(
            serde_json::to_vec(&status)
                .map(|v| v.len())
                .unwrap_or(usize::MAX)
                <= 8 * 1024
        );
        assert!(!status.events.is_empty());
    }

    fn payments_policy() -> EffectivePolicy {
        use crate::api::policy::{
            ClusterResponsePolicy, ClusterResponsePolicySpec, Escalation, ResponsePolicySpec,
            Route, SeverityLevel,
        };
        let org = ClusterResponsePolicy::new(
            "org",
            ClusterResponsePolicySpec {
                namespace_selector: None,
                policy: ResponsePolicySpec {
                    severities: vec![
                        SeverityLevel {
                            name: "SEV1".into(),
                            acknowledge_within: Some("5m".into()),
                            require_commander: Some(true),
                            require_postmortem: Some(true),
                        },
                        SeverityLevel {
                            name: "SEV2".into(),
                            acknowledge_within: Some("15m".into()),
                            require_commander: None,
                            require_postmortem: None,
                        },
                    ],
                    receivers: vec![crate::api::policy::Receiver {
                        name: "hook".into(),
                        ..Default::default()
                    }],
                    routes: vec![Route {
                        receivers: vec!["hook".into()],
                        severities: vec!["SEV1".into()],
                        triggers: vec![Trigger::Declared, Trigger::Resolved],
                    }],
                    escalation: Some(Escalation {
                        receivers: vec!["hook".into()],
                    }),
                    ..Default::default()
                },
            },
        );
        policy::effective("shop", &[&org], None, Some("payments"), "klaxon-system")
    }

    #[test]
    fn an_unknown_severity_lists_the_valid_levels() {
        let out = super::compute(
            &incident(Phase::Triggered, "P1"),
            enrichment(vec![]),
            &payments_policy(),
            at("2026-11-24T14:10:05Z"),
        );
        let ready = crate::conditions::find(&out.status.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "UnknownSeverity")
        );
        assert!(
            ready.message.contains("valid levels: SEV1, SEV2"),
            "{}",
            ready.message
        );
        assert_eq!(out.status.acknowledge_by, None);
    }

    #[test]
    fn requirements_deadlines_routes_and_escalation_follow_the_ladder() {
        let mut inc = incident(Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let first = super::compute(
            &inc,
            enrichment(vec![]),
            &policy,
            at("2026-11-24T14:10:05Z"),
        );
        let s = &first.status;
        assert_eq!(s.team.as_deref(), Some("payments"));
        assert_eq!(s.acknowledge_by, Some(Time(at("2026-11-24T14:15:00Z"))));
        let ready = crate::conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, "CommanderMissing");
        assert!(
            s.summary
                .as_deref()
                .is_some_and(|l| l.starts_with("commander missing"))
        );
        let routed: Vec<(&str, &str)> = s
            .notifications
            .iter()
            .map(|n| (n.receiver.as_str(), n.trigger.as_str()))
            .collect();
        assert_eq!(routed, [("org/hook", "Declared")]);
        assert_eq!(
            s.notifications[0].idempotency_key.as_deref(),
            Some("u1.Declared.org/hook")
        );

        // The deadline passes unacknowledged: escalate once.
        inc.status = Some(first.status.clone());
        let late = super::compute(
            &inc,
            enrichment(vec![]),
            &policy,
            at("2026-11-24T14:15:01Z"),
        );
        let overdue = crate::conditions::find(&late.status.conditions, ACKNOWLEDGEMENT_OVERDUE)
            .expect("overdue");
        assert_eq!(overdue.status, "True");
        assert!(
            late.transitions
                .iter()
                .any(|t| t.reason == "Escalated" && t.warning)
        );
        assert!(
            late.status
                .notifications
                .iter()
                .any(|n| n.trigger == "Escalated")
        );
        inc.status = Some(late.status.clone());
        let again = super::compute(
            &inc,
            enrichment(vec![]),
            &policy,
            at("2026-11-24T14:16:00Z"),
        );
        assert!(again.transitions.is_empty());
        assert_eq!(
            again.status.notifications.len(),
            late.status.notifications.len()
        );
    }

    #[test]
    fn deliveries_are_recorded_before_they_are_sent_and_give_up_at_the_budget() {
        let mut inc = incident(Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let mut status = super::compute(
            &inc,
            enrichment(vec![]),
            &payments_policy(),
            at("2026-11-24T14:10:05Z"),
        )
        .status;
        let backoff = Backoff {
            base: std::time::Duration::from_secs(10),
            cap: std::time::Duration::from_secs(60),
            max_attempts: 2,
        };
        let now = at("2026-11-24T14:10:06Z");
        assert_eq!(begin_deliveries(&mut status, now, &backoff), [0]);
        assert_eq!(status.notifications[0].attempts, 1);
        // Not due again before its backoff passed.
        assert!(begin_deliveries(&mut status, now, &backoff).is_empty());
        assert!(finish_delivery(&mut status, 0, Err(DeliveryError::Status(500)), now, 2).is_none());
        assert_eq!(status.notifications[0].state, DeliveryState::Pending);
        let later = at("2026-11-24T14:11:00Z");
        assert_eq!(begin_deliveries(&mut status, later, &backoff), [0]);
        let gave_up = finish_delivery(&mut status, 0, Err(DeliveryError::Status(500)), later, 2)
            .expect("a transition");
        assert!(gave_up.warning);
        assert_eq!(status.notifications[0].state, DeliveryState::Failed);
        assert_eq!(
            status.notifications[0].message.as_deref(),
            Some("the receiver answered HTTP 500")
        );
    }
}
