//! Bounds on every list and free-text field, shared by the CRD schema (so
//! the API server enforces them and CEL cost estimates stay finite) and the
//! operator (so every status it writes stays small).

/// People: commander, responders, note authors.
pub const MAX_PERSON: u32 = 253;
/// Entries in `spec.affected.deployments`.
pub const MAX_AFFECTED: u32 = 20;
/// Responder notes on one incident.
pub const MAX_NOTES: u32 = 100;
/// Deployments linked in `status.deployments` (selectors may match many).
pub const MAX_LINKED_DEPLOYMENTS: u32 = 50;
/// Deduplicated events in `status.events`; a policy's `maxEvents` may lower it.
pub const MAX_EVENTS: u32 = 100;
/// Pods listed per Deployment; a policy's `maxPods` may lower it.
pub const MAX_PODS: u32 = 50;
/// Unbound claims listed per StatefulSet.
pub const MAX_CLAIMS: u32 = 10;
/// Lines of a log excerpt, and the bytes read for one.
pub const MAX_LOG_LINES: u32 = 20;
pub const MAX_LOG_BYTES: u32 = 2048;
/// Log excerpts the record keeps.
pub const MAX_LOG_RECORDS: u32 = 5;
/// Pods per workload whose logs are read.
pub const MAX_LOG_PODS: u32 = 10;
/// Nodes in trouble an incident lists.
pub const MAX_NODES: u32 = 20;
/// Failing nodes listed per DaemonSet.
pub const MAX_FAILING_NODES: u32 = 20;
/// Distinct failure reasons per Deployment.
pub const MAX_REASONS: u32 = 20;
/// Container images per Deployment.
pub const MAX_IMAGES: u32 = 20;
/// Prometheus query results.
pub const MAX_METRICS: u32 = 50;
/// Timeline entries; the oldest after the first few are dropped first.
pub const MAX_TIMELINE: u32 = 100;
/// Notification delivery records kept before the oldest finished ones are
/// summarised.
pub const MAX_NOTIFICATIONS: u32 = 100;
/// The schema's bound on notification records: room for Pending entries,
/// which are never summarised away, above [`MAX_NOTIFICATIONS`].
pub const MAX_NOTIFICATIONS_STORED: u32 = 400;
/// Finding keys remembered per incident.
pub const MAX_FINDINGS: u32 = 300;
/// Severity levels on a ladder.
pub const MAX_SEVERITIES: u32 = 10;
/// Receivers, routes, signals and queries in one policy.
pub const MAX_POLICY_ITEMS: u32 = 20;
/// Names of receivers, severities, queries: a DNS label's length.
pub const MAX_NAME: u32 = 63;

/// Alerts an incident records (`status.alerts`), firing ones first.
pub const MAX_ALERTS: u32 = 50;
/// Alert groups an alert-flood incident lists (`status.flood.items`);
/// more are counted in `status.flood.groups`.
pub const MAX_FLOOD_GROUPS: u32 = 200;
/// The most `spec.alertLimits.maxOpenIncidents` may be.
pub const MAX_OPEN_ALERT_INCIDENTS: u32 = 500;
/// Labels kept per recorded alert.
pub const MAX_ALERT_LABELS: u32 = 30;

/// Follow-ups on one incident.
pub const MAX_FOLLOW_UPS: u32 = 50;
/// Links to other incidents in `spec.related`.
pub const MAX_RELATED: u32 = 20;
/// Related incidents in the status: the spec's links and the recurrences
/// found.
pub const MAX_RELATED_STATUS: u32 = 30;
/// Rollouts recorded before the declaration.
pub const MAX_ROLLOUTS: u32 = 10;
/// Changes to affected workloads an incident lists, most recent first.
pub const MAX_CHANGES: u32 = 20;
/// The text of one change.
pub const MAX_CHANGE_TEXT: u32 = 512;
/// Deployments whose worst state the record keeps.
pub const MAX_IMPACT: u32 = 20;
/// Failure reasons kept per Deployment in the record.
pub const MAX_IMPACT_REASONS: u32 = 10;
