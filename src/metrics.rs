//! Prometheus metrics served on `/metrics`.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram, info::Info},
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

/// The operator's own metrics. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct Metrics {
    pub reconciliations: Family<ControllerLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram>,
    /// Passes over every namespace's signals.
    pub signal_evaluations: Counter,
    /// Incidents declared from signals.
    pub auto_declared: Counter,
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
            "klaxon_incidents_auto_declared",
            "Incidents declared from policy signals",
            self.auto_declared.clone(),
        );
        registry.register(
            "klaxon_reconcile_duration_seconds",
            "How long reconciliations took, by controller",
            self.duration.clone(),
        );
    }

    pub fn observe(&self, controller: &'static str, took: Duration) {
        let labels = ControllerLabels { controller };
        self.reconciliations.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
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
