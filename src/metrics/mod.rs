//! Prometheus metrics served on `/metrics`: the operator's own, and the
//! learning record's ([`record`]).

pub mod record;

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// webhook or slack.
    pub kind: &'static str,
    /// delivered, failed (an attempt failed, to be retried), gave_up.
    pub outcome: &'static str,
}

/// The operator's own metrics. Cheap to clone: every field is shared.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// accepted, unmatched, refused, unauthorized, malformed
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogLabels {
    /// read, failed
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciliations: Family<ControllerLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram>,
    /// Passes over every namespace's signals.
    pub signal_evaluations: Counter,
    /// Incidents declared from signals.
    pub auto_declared: Counter,
    /// Watch errors, by watched kind.
    pub watch_errors: Family<WatchLabels, Counter>,
    /// Objects skipped because they cannot be read.
    pub unreadable_objects: Counter,
    /// Delivery attempts, by receiver kind and outcome.
    pub notifications: Family<NotificationLabels, Counter>,
    /// Status writes refused because the object changed since it was
    /// read; each is planned again from the fresh object.
    pub status_conflicts: Counter,
    /// Routine triggers of an incident held until its next write slot
    /// (one per incident per interval): the passes coalescing saved.
    pub triggers_deferred: Counter,
    /// Cached objects read by incident reconciles: the work a reconcile
    /// does, which follows its incident, not the cluster.
    pub objects_read: Counter,
    /// Kubernetes Events not published: the queue was full (the status
    /// timeline still records what they said).
    pub events_dropped: Counter,
    /// Alertmanager's alerts and requests, by outcome.
    pub alerts: Family<AlertLabels, Counter>,
    /// Container logs read for incidents, by outcome.
    pub log_reads: Family<LogLabels, Counter>,
    /// Incidents by team and severity: durations, counts, gauges.
    pub record: record::Record,
    /// Shards this replica holds and works on (sharded replicas only).
    pub shards_owned: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciliations: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            }),
            signal_evaluations: Counter::default(),
            auto_declared: Counter::default(),
            watch_errors: Family::default(),
            unreadable_objects: Counter::default(),
            notifications: Family::default(),
            status_conflicts: Counter::default(),
            triggers_deferred: Counter::default(),
            objects_read: Counter::default(),
            events_dropped: Counter::default(),
            alerts: Family::default(),
            log_reads: Family::default(),
            record: record::Record::default(),
            shards_owned: Gauge::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "klaxon_build",
            "The running Klaxon version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "klaxon_reconciliations",
            "Reconciliations started, by controller",
            self.reconciliations.clone(),
        );
        registry.register(
            "klaxon_reconcile_failures",
            "Reconciliations that failed, by controller and error reason",
            self.failures.clone(),
        );
        registry.register(
            "klaxon_signal_evaluations",
            "Passes that evaluated every policy signal against the cluster",
            self.signal_evaluations.clone(),
        );
        registry.register(
            "klaxon_log_reads",
            "Container logs read for incidents' evidence, once per container restart, by outcome (read, failed)",
            self.log_reads.clone(),
        );
        registry.register(
            "klaxon_incidents_auto_declared",
            "Incidents declared from policy signals",
            self.auto_declared.clone(),
        );
        registry.register(
            "klaxon_watch_errors",
            "Watch errors, by watched kind; each is retried within about a second",
            self.watch_errors.clone(),
        );
        registry.register(
            "klaxon_unreadable_objects",
            "Objects skipped because the operator cannot read them (logged with their name)",
            self.unreadable_objects.clone(),
        );
        registry.register(
            "klaxon_alerts",
            "Alertmanager's alerts (accepted into an incident, unmatched by any policy, refused by the API) and refused requests (unauthorized, malformed), by outcome",
            self.alerts.clone(),
        );
        registry.register(
            "klaxon_notifications",
            "Notification delivery attempts, by receiver kind and outcome",
            self.notifications.clone(),
        );
        registry.register(
            "klaxon_status_conflicts",
            "Status writes refused because the object changed since it was read",
            self.status_conflicts.clone(),
        );
        registry.register(
            "klaxon_triggers_deferred",
            "Routine changes of an incident's pods, events and usage held until its next status write slot",
            self.triggers_deferred.clone(),
        );
        registry.register(
            "klaxon_objects_read",
            "Cached objects (Deployments, ReplicaSets, Pods, Events) read by incident reconciles",
            self.objects_read.clone(),
        );
        registry.register(
            "klaxon_events_dropped",
            "Kubernetes Events about incidents not published because the queue was full",
            self.events_dropped.clone(),
        );
        registry.register(
            "klaxon_reconcile_duration_seconds",
            "How long reconciliations took, by controller",
            self.duration.clone(),
        );
        registry.register(
            "klaxon_shards_owned",
            "Shards this replica holds and works on (--shard-leases; 0 otherwise)",
            self.shards_owned.clone(),
        );
        self.record.register(registry);
    }

    pub fn observe(&self, controller: &'static str, took: Duration) {
        let labels = ControllerLabels { controller };
        self.reconciliations.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn watch_error(&self, watch: &'static str) {
        self.watch_errors
            .get_or_create(&WatchLabels { watch })
            .inc();
    }

    pub fn notification(&self, kind: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels { kind, outcome })
            .inc();
    }

    pub fn failed(&self, controller: &'static str, reason: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller,
                reason: reason.to_string(),
            })
            .inc();
    }
}
