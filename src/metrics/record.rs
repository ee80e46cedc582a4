//! The learning record's series on `/metrics`, labelled by team and
//! severity, never by incident:
//! - counters and histograms observed once per transition, when the
//!   status write that first records it succeeds ([`Record::observe`]);
//! - gauges computed from the cluster's incidents at each scrape
//!   ([`Open`]), so they are right from the first scrape after a restart.

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    api::{Incident, IncidentStatus, Phase, incident::PostmortemState},
    domain::incident::{aftercare, record},
};

/// Histogram buckets from 30 s to 7 days.
pub const BUCKETS: [f64; 16] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0,
    86400.0, 172800.0, 345600.0, 604800.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamSeverity {
    pub team: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Declared {
    pub team: String,
    pub severity: String,
    /// manual, signal, alert, heartbeat
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct TeamLabel {
    pub team: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct OpenLabels {
    pub team: String,
    pub severity: String,
    pub phase: String,
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Family<L, Histogram> {
    Family::new_with_constructor(|| Histogram::new(BUCKETS))
}

/// The counters and histograms. Cheap to clone.
#[derive(Clone)]
pub struct Record {
    pub declared: Family<Declared, Counter>,
    pub resolved: Family<TeamSeverity, Counter>,
    pub detect: Family<TeamSeverity, Histogram>,
    pub acknowledge: Family<TeamSeverity, Histogram>,
    pub mitigate: Family<TeamSeverity, Histogram>,
    pub resolve: Family<TeamSeverity, Histogram>,
    pub recovery: Family<TeamLabel, Histogram>,
    /// The incidents the gauges count, once their cache is synced.
    pub incidents: Arc<OnceLock<Store<Incident>>>,
    /// Which namespaces' incidents the gauges count (all when unset): a
    /// sharded replica counts only its own.
    pub scope: Arc<OnceLock<Scope>>,
}

/// Whether the gauges count a namespace's incidents.
pub type Scope = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl Default for Record {
    fn default() -> Self {
        Self {
            declared: Family::default(),
            resolved: Family::default(),
            detect: histograms(),
            acknowledge: histograms(),
            mitigate: histograms(),
            resolve: histograms(),
            recovery: histograms(),
            incidents: Arc::default(),
            scope: Arc::default(),
        }
    }
}

impl Record {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "klaxon_incidents_declared",
            "Incidents declared, by team, severity and source (manual, signal, alert, heartbeat)",
            self.declared.clone(),
        );
        registry.register(
            "klaxon_incidents_resolved",
            "Incidents resolved, by team and severity",
            self.resolved.clone(),
        );
        for (name, help, family) in [
            (
                "klaxon_incident_detect_seconds",
                "Time to detect: impact start to declaration",
                &self.detect,
            ),
            (
                "klaxon_incident_acknowledge_seconds",
                "Time to acknowledge: declaration to acknowledgement",
                &self.acknowledge,
            ),
            (
                "klaxon_incident_mitigate_seconds",
                "Time to mitigate: impact start to mitigation",
                &self.mitigate,
            ),
            (
                "klaxon_incident_resolve_seconds",
                "Time to resolve: impact start to resolution",
                &self.resolve,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "klaxon_deployment_recovery_seconds",
            "Failed deployment recovery time: a rollout of an affected workload before the declaration, to resolution",
            self.recovery.clone(),
        );
        registry.register_collector(Box::new(Open {
            incidents: self.incidents.clone(),
            scope: self.scope.clone(),
        }));
    }

    /// Observes what a status write recorded first: `written` is the
    /// incident as written, `before` the status the write replaced.
    pub fn observe(&self, written: &Incident, before: &IncidentStatus) {
        let incident = written;
        let empty = IncidentStatus::default();
        let after = written.status.as_ref().unwrap_or(&empty);
        let seen = record::observed(before, after);
        let team = after.team.clone().unwrap_or_default();
        let labels = TeamSeverity {
            team: team.clone(),
            severity: incident.spec.severity.clone(),
        };
        if seen.declared {
            self.declared
                .get_or_create(&Declared {
                    team: team.clone(),
                    severity: labels.severity.clone(),
                    source: record::source(incident).as_str().to_string(),
                })
                .inc();
        }
        if seen.resolved {
            self.resolved.get_or_create(&labels).inc();
        }
        for (family, value) in [
            (&self.detect, seen.detect),
            (&self.acknowledge, seen.acknowledge),
            (&self.mitigate, seen.mitigate),
            (&self.resolve, seen.resolve),
        ] {
            if let Some(value) = value {
                family.get_or_create(&labels).observe(value);
            }
        }
        if let Some(value) = seen.recover {
            self.recovery
                .get_or_create(&TeamLabel { team })
                .observe(value);
        }
    }
}

/// What the gauges show at one instant.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub open: Vec<(OpenLabels, i64)>,
    pub follow_ups_open: Vec<(TeamLabel, i64)>,
    pub follow_ups_overdue: Vec<(TeamLabel, i64)>,
    pub postmortems_overdue: Vec<(TeamLabel, i64)>,
}

/// Counts the open incidents, the open and overdue follow-ups and the
/// overdue postmortems among `incidents`, as of `now`. Every team with an
/// incident has its follow-up and postmortem gauges, zero included, so a
/// dashboard shows 0 rather than no data; open incidents are listed only
/// where there are some.
pub fn tally<'a>(incidents: impl IntoIterator<Item = &'a Incident>, now: Timestamp) -> Tally {
    use std::collections::BTreeMap;
    let mut open: BTreeMap<OpenLabels, i64> = BTreeMap::new();
    let mut follow_ups_open: BTreeMap<TeamLabel, i64> = BTreeMap::new();
    let mut follow_ups_overdue: BTreeMap<TeamLabel, i64> = BTreeMap::new();
    let mut postmortems_overdue: BTreeMap<TeamLabel, i64> = BTreeMap::new();
    for incident in incidents {
        let status = incident.status.as_ref();
        let team = TeamLabel {
            team: status.and_then(|s| s.team.clone()).unwrap_or_default(),
        };
        for gauge in [
            &mut follow_ups_open,
            &mut follow_ups_overdue,
            &mut postmortems_overdue,
        ] {
            gauge.entry(team.clone()).or_default();
        }
        if incident.spec.phase != Phase::Resolved {
            *open
                .entry(OpenLabels {
                    team: team.team.clone(),
                    severity: incident.spec.severity.clone(),
                    phase: incident.spec.phase.to_string(),
                })
                .or_default() += 1;
        }
        for item in incident.spec.follow_ups.iter().filter(|f| !f.done) {
            *follow_ups_open.entry(team.clone()).or_default() += 1;
            if item
                .due
                .as_deref()
                .and_then(aftercare::overdue_at)
                .is_some_and(|at| at <= now)
            {
                *follow_ups_overdue.entry(team.clone()).or_default() += 1;
            }
        }
        let overdue = status.and_then(|s| s.postmortem.as_ref()).is_some_and(|p| {
            incident.spec.postmortem.is_none()
                && (p.state == PostmortemState::Overdue
                    || p.state == PostmortemState::Pending
                        && p.due.as_ref().is_some_and(|d| d.0 <= now))
        });
        if overdue {
            *postmortems_overdue.entry(team.clone()).or_default() += 1;
        }
    }
    Tally {
        open: open.into_iter().collect(),
        follow_ups_open: follow_ups_open.into_iter().collect(),
        follow_ups_overdue: follow_ups_overdue.into_iter().collect(),
        postmortems_overdue: postmortems_overdue.into_iter().collect(),
    }
}

/// The gauges, computed from the Incident cache at each scrape. Until the
/// cache is synced (and on a replica standing by) they are absent rather
/// than zero, and a sharded replica counts only the namespaces it owns, so
/// a sum over replicas counts each incident once.
struct Open {
    incidents: Arc<OnceLock<Store<Incident>>>,
    scope: Arc<OnceLock<Scope>>,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("synced", &self.incidents.get().is_some())
            .field("scoped", &self.scope.get().is_some())
            .finish()
    }
}

fn gauge<L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(L, i64)],
) -> Result<(), std::fmt::Error>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug,
{
    let family: Family<L, Gauge> = Family::default();
    for (labels, value) in values {
        family.get_or_create(labels).set(*value);
    }
    let metric = encoder.encode_descriptor(name, help, None, family.metric_type())?;
    family.encode(metric)
}

impl Collector for Open {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = self.incidents.get() else {
            return Ok(());
        };
        let incidents = store.state();
        let scope = self.scope.get();
        let counted = incidents.iter().map(|i| i.as_ref()).filter(|i| {
            scope.is_none_or(|owns| owns(i.metadata.namespace.as_deref().unwrap_or_default()))
        });
        let tally = tally(counted, Timestamp::now());
        gauge(
            &mut encoder,
            "klaxon_incidents_open",
            "Incidents not resolved, by team, severity and phase",
            &tally.open,
        )?;
        gauge(
            &mut encoder,
            "klaxon_follow_ups_open",
            "Follow-ups not done, of every incident, by team",
            &tally.follow_ups_open,
        )?;
        gauge(
            &mut encoder,
            "klaxon_follow_ups_overdue",
            "Follow-ups not done past their due day, by team",
            &tally.follow_ups_overdue,
        )?;
        gauge(
            &mut encoder,
            "klaxon_postmortems_overdue",
            "Required postmortems past their due time and not linked, by team",
            &tally.postmortems_overdue,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::incident::{FollowUp, PostmortemStatus},
        domain::incident::testing::{at, incident},
    };

    fn owned(mut inc: Incident, team: &str) -> Incident {
        inc.status.get_or_insert_with(Default::default).team = Some(team.into());
        inc
    }

    #[test]
    fn the_gauges_count_open_incidents_follow_ups_and_overdue_postmortems_per_team() {
        let open = owned(incident(Phase::Acknowledged, "SEV2"), "payments");
        let mut resolved = owned(incident(Phase::Resolved, "SEV1"), "payments");
        resolved.spec.follow_ups = vec![
            FollowUp {
                title: "late".into(),
                due: Some("2026-11-30".into()),
                ..Default::default()
            },
            FollowUp {
                title: "later".into(),
                due: Some("2026-12-30".into()),
                ..Default::default()
            },
            FollowUp {
                title: "done".into(),
                done: true,
                ..Default::default()
            },
        ];
        if let Some(status) = resolved.status.as_mut() {
            status.postmortem = Some(PostmortemStatus {
                required: true,
                due: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
                    "2026-12-01T00:00:00Z",
                ))),
                state: PostmortemState::Pending,
            });
        }
        let other = owned(incident(Phase::Triggered, "SEV2"), "search");
        let tally = tally([&open, &resolved, &other], at("2026-12-03T10:00:00Z"));
        let labels = |team: &str, severity: &str, phase: &str| OpenLabels {
            team: team.into(),
            severity: severity.into(),
            phase: phase.into(),
        };
        let team = |t: &str| TeamLabel { team: t.into() };
        assert_eq!(
            tally.open,
            [
                (labels("payments", "SEV2", "Acknowledged"), 1),
                (labels("search", "SEV2", "Triggered"), 1)
            ]
        );
        assert_eq!(
            tally.follow_ups_open,
            [(team("payments"), 2), (team("search"), 0)]
        );
        assert_eq!(
            tally.follow_ups_overdue,
            [(team("payments"), 1), (team("search"), 0)]
        );
        assert_eq!(
            tally.postmortems_overdue,
            [(team("payments"), 1), (team("search"), 0)],
            "past due, even before a pass marked it Overdue"
        );
    }

    #[test]
    fn a_sharded_replica_counts_only_the_namespaces_it_owns() {
        let mut registry = Registry::default();
        let record = Record::default();
        record.register(&mut registry);
        let (store, mut writer) = kube::runtime::reflector::store::<Incident>();
        for (uid, namespace, team) in [("u1", "shop", "payments"), ("u2", "search", "search")] {
            let mut inc = owned(incident(Phase::Triggered, "SEV2"), team);
            inc.metadata.uid = Some(uid.into());
            inc.metadata.name = Some(uid.into());
            inc.metadata.namespace = Some(namespace.into());
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(inc));
        }
        let _ = record.incidents.set(store);
        let _ = record
            .scope
            .set(Arc::new(|namespace: &str| namespace == "shop"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"klaxon_incidents_open{team="payments""#),
            "{text}"
        );
        assert!(!text.contains(r#"team="search""#), "{text}");
    }

    #[test]
    fn the_gauges_are_absent_until_the_incidents_are_known() {
        let mut registry = Registry::default();
        let record = Record::default();
        record.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(!text.contains("klaxon_incidents_open"), "{text}");
        let (store, mut writer) = kube::runtime::reflector::store::<Incident>();
        let mut inc = owned(incident(Phase::Triggered, "SEV2"), "payments");
        inc.metadata.uid = Some("u1".into());
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(inc));
        let _ = record.incidents.set(store);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"klaxon_incidents_open{team="payments",severity="SEV2",phase="Triggered"} 1"#
            ),
            "{text}"
        );
    }
}
