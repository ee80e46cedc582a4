//! The incident plan: from the incident, its effective policy, what the
//! cluster shows ([`Observation`]) and the clock, the status to write, the
//! Events to emit, the deliveries that are due, and any spec action.
//! Pure: no client, no I/O, the clock passed in, so planning twice over
//! the same input gives the same output.
//!
//! The plan runs in stages, each a module:
//! [`lifecycle`] (declaration, phases, severity, notes) →
//! [`findings`] (rollouts and pod failures, each recorded once) →
//! [`deadlines`] (acknowledgement deadline, escalation) →
//! [`record`] (when impact started, durations, the rollouts before) →
//! [`related`] (links and recurrences) →
//! [`aftercare`] (the postmortem and follow-ups falling due) →
//! [`routing`] (a notification per receiver and transition, recorded in
//! the [`outbox`]) → [`resolution`] (auto-resolution) → [`conditions`] →
//! [`budget`] (the status stays under its size bound).

pub mod aftercare;
pub mod brief;
pub mod budget;
pub mod changes;
pub mod conditions;
pub mod deadlines;
pub mod findings;
pub mod lifecycle;
pub mod outbox;
pub mod pace;
pub mod record;
pub mod related;
pub mod resolution;
pub mod routing;
pub mod timeline;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{
            DaemonSetState, DeploymentState, EventSummary, MetricValue, NodeState, PolicyReference,
            StatefulSetState,
        },
    },
    domain::{enrich, policy::EffectivePolicy},
};

pub use self::{
    outbox::{Backoff, Delivery},
    timeline::Report,
};

/// What the caches say about the incident's workloads right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub deployments: Vec<DeploymentState>,
    pub stateful_sets: Vec<StatefulSetState>,
    pub daemon_sets: Vec<DaemonSetState>,
    /// The nodes under the pods that have a problem.
    pub nodes: Vec<NodeState>,
    pub events: Vec<EventSummary>,
    /// Warning events seen in all, counts included.
    pub warnings: i64,
    /// `None` until the metrics API was first probed.
    pub metrics_available: Option<bool>,
    /// True when selectors matched more Deployments than a status holds.
    pub truncated: bool,
    /// Entries of `spec.affected.deployments` that cannot be used, with
    /// why (e.g. a label selector the API server let through but that
    /// does not parse).
    pub invalid_selectors: Vec<String>,
    /// Fresh Prometheus query results; `None` keeps the previous ones.
    pub queries: Option<Vec<MetricValue>>,
    /// Why the last delivery attempt of a Pending notification failed, by
    /// idempotency key (failures short of the last attempt are written
    /// with the next attempt, so a failing receiver costs one status write
    /// per retry).
    pub delivery_errors: Vec<(String, String)>,
    /// Other incidents of the namespace that affected the same workloads,
    /// or that `spec.related` names.
    pub related: Vec<related::Earlier>,
    /// Changes to the affected workloads since the lookback before the
    /// declaration, as the cluster's history shows them now.
    pub changes: Vec<crate::api::incident::Change>,
}

/// What to do: write `status` (only when it differs from the incident's),
/// then emit `events`, then send `deliveries` (already recorded as
/// attempted in `status`), then resolve when `resolve` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: IncidentStatus,
    pub events: Vec<Report>,
    pub deliveries: Vec<Delivery>,
    /// An incident Klaxon declared whose workload stayed healthy for the
    /// policy's `autoResolve.healthyFor`: set `spec.phase: Resolved`.
    pub resolve: bool,
}

/// Status times have second precision; `now` is cut to match them, so
/// comparing a planned status with a written one is exact.
pub fn second(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Records `key` in `status.findings` (bounded: the oldest go first, a
/// routed reminder's last); true when it was not there yet, i.e. what it
/// stands for happens now.
pub(crate) fn remember(status: &mut IncidentStatus, key: String) -> bool {
    if status.findings.contains(&key) {
        return false;
    }
    status.findings.push(key);
    while status.findings.len() > crate::api::limits::MAX_FINDINGS as usize {
        let oldest = status
            .findings
            .iter()
            .position(|k| !aftercare::routed(k))
            .unwrap_or(0);
        status.findings.remove(oldest);
    }
    true
}

/// Whether the incident's enrichment is frozen as its evidence record:
/// it was resolved, and Resolved is final.
pub fn frozen(previous: &IncidentStatus) -> bool {
    previous.resolved_at.is_some()
}

pub fn plan(
    incident: &Incident,
    policy: &EffectivePolicy,
    observation: Observation,
    now: Timestamp,
    backoff: &Backoff,
) -> Plan {
    let exact = now;
    let now = second(now);
    let previous = incident.status.clone().unwrap_or_default();
    let frozen = frozen(&previous);
    let mut status = previous.clone();
    let mut reports = timeline::Reports::default();

    let mut changes = lifecycle::apply(incident, &previous, &mut status, &mut reports, &now);

    status.team = policy.team.clone();
    status.policy = Some(PolicyReference {
        response_policy: policy.response_policy.clone(),
        cluster_response_policies: policy.cluster_policies.clone(),
    });

    if !frozen {
        enrich(&mut status, &observation, policy, &now);
        changes::merge(&mut status, &observation.changes);
        changes::timeline(&mut status, &mut reports);
        findings::apply(&mut status, &mut reports, &now);
    }
    record::apply(incident, frozen, &mut status, &mut reports, &now);
    // After the record, which moves when impact started (a postmortem may
    // move it after the resolution, too).
    changes::mark_suspect(&mut status);
    related::apply(
        incident,
        &observation.related,
        frozen,
        &mut status,
        &mut reports,
        &now,
    );

    let deadline = deadlines::apply(incident, policy, &mut status, &mut reports, &now);
    changes.extend(deadline.escalation);
    changes.extend(aftercare::apply(
        incident,
        policy,
        &mut status,
        &mut reports,
        &now,
    ));

    routing::route(incident, policy, &changes, &mut status, &mut reports, &now);
    outbox::note_errors(&mut status, &observation.delivery_errors);
    let resolve = resolution::apply(incident, policy, frozen, &mut status, &mut reports, &now);
    let deliveries = outbox::begin(&mut status, exact, backoff);

    status.conditions = conditions::build(
        incident,
        policy,
        &observation,
        &previous,
        &status,
        frozen,
        deadline.overdue,
        &now,
    );
    status.overdue = deadline.overdue.then_some(true);
    conditions::prefix_summary(incident, policy, &mut status, deadline.overdue);
    status.brief = Some(brief::build(&status, incident.spec.phase));
    budget::fit(&mut status, budget::MAX_STATUS_BYTES);
    Plan {
        status,
        events: reports.into_inner(),
        deliveries,
        resolve,
    }
}

/// Live enrichment: the observation replaces the previous one.
fn enrich(
    status: &mut IncidentStatus,
    observation: &Observation,
    policy: &EffectivePolicy,
    now: &Time,
) {
    let changed = status.deployments != observation.deployments
        || status.stateful_sets != observation.stateful_sets
        || status.daemon_sets != observation.daemon_sets
        || status.nodes != observation.nodes
        || status.events != observation.events;
    status.deployments = observation.deployments.clone();
    status.stateful_sets = observation.stateful_sets.clone();
    status.daemon_sets = observation.daemon_sets.clone();
    status.nodes = observation.nodes.clone();
    status.events = observation.events.clone();
    if let Some(queries) = &observation.queries {
        status.metrics = queries.clone();
        status.metrics_at = Some(now.clone());
    }
    if policy.queries.is_empty() {
        status.metrics.clear();
        status.metrics_at = None;
    }
    status.summary = Some(enrich::summary(status, observation.warnings));
    if changed || status.enriched_at.is_none() {
        status.enriched_at = Some(now.clone());
    }
}

/// What a resolved incident needs, decided from its cached copy alone
/// (trimmed of its record) and the effective policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Rest {
    /// Nothing: its record is frozen, its spec unchanged since, nothing is
    /// left to deliver or to fall due, and its postmortem state is what
    /// the policy says it should be.
    Settled,
    /// Nothing until then, when a postmortem or follow-up falls due.
    Until(Timestamp),
    /// A pass.
    Work,
}

pub fn rest(incident: &Incident, policy: &EffectivePolicy, now: Timestamp) -> Rest {
    let Some(s) = incident.status.as_ref() else {
        return Rest::Work;
    };
    let quiet = frozen(s)
        && s.observed_generation == incident.metadata.generation
        && !s
            .notifications
            .iter()
            .any(|n| n.state == crate::api::incident::DeliveryState::Pending)
        // A policy changed since (a postmortemWithin added, say), or a
        // record from before postmortems were kept, needs a pass.
        && s.postmortem.as_ref().map(|p| (p.required, p.due.clone()))
            == Some(aftercare::requirement(incident, policy, s));
    match aftercare::next(incident, s) {
        _ if !quiet => Rest::Work,
        None => Rest::Settled,
        Some(at) if at > now => Rest::Until(at),
        Some(_) => Rest::Work,
    }
}

/// When the incident next needs attention without any change: the next
/// delivery retry, its acknowledgement deadline, its auto-resolution, or
/// a postmortem or follow-up falling due.
pub fn next_wakeup(
    status: &IncidentStatus,
    incident: &Incident,
    policy: &EffectivePolicy,
) -> Option<Timestamp> {
    outbox::next_attempt(status)
        .into_iter()
        .chain(deadlines::next(status, incident.spec.phase))
        .chain(resolution::next(status, incident, policy))
        .chain(aftercare::next(incident, status))
        .min()
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
