//! The timeline: what happened, oldest first, bounded; and the Events that
//! report each new entry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{incident::TimelineEntry, limits::MAX_TIMELINE};

/// Timeline entries kept from the start when the timeline is full; the
/// rest are the most recent.
pub const TIMELINE_HEAD: usize = 10;

/// What a timeline entry records: its `type` in the status, and the reason
/// of the Event that reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Declared,
    /// What the signal or alert that declared the incident said.
    Signal,
    PhaseChanged,
    SeverityChanged,
    Note,
    /// A rollout of an affected Deployment.
    Rollout,
    /// The first pods of a Deployment showing a failure reason.
    PodFailure,
    Escalated,
    Notification,
    NotificationFailed,
    NotificationRefused,
    AutoResolved,
    AlertFiring,
    AlertResolved,
    /// When impact started moved earlier (`spec.impactStartedAt`).
    ImpactStarted,
    /// A follow-up added or done.
    FollowUp,
    FollowUpOverdue,
    PostmortemOverdue,
    /// An earlier incident of the same workload, found or linked.
    Related,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Declared => "Declared",
            Kind::Signal => "Signal",
            Kind::PhaseChanged => "PhaseChanged",
            Kind::SeverityChanged => "SeverityChanged",
            Kind::Note => "Note",
            Kind::Rollout => "Rollout",
            Kind::PodFailure => "PodFailure",
            Kind::Escalated => "Escalated",
            Kind::Notification => "Notification",
            Kind::NotificationFailed => "NotificationFailed",
            Kind::NotificationRefused => "NotificationRefused",
            Kind::AutoResolved => "AutoResolved",
            Kind::AlertFiring => "AlertFiring",
            Kind::AlertResolved => "AlertResolved",
            Kind::ImpactStarted => "ImpactStarted",
            Kind::FollowUp => "FollowUp",
            Kind::FollowUpOverdue => "FollowUpOverdue",
            Kind::PostmortemOverdue => "PostmortemOverdue",
            Kind::Related => "Related",
        }
    }

    /// Whether its Event is a Warning: something a human should look at.
    pub fn warning(self) -> bool {
        matches!(
            self,
            Kind::Escalated
                | Kind::NotificationFailed
                | Kind::NotificationRefused
                | Kind::FollowUpOverdue
                | Kind::PostmortemOverdue
        )
    }

    /// Whether its entry is also published as a Kubernetes Event. Events
    /// are for whoever watches `kubectl get events`: the lifecycle, who
    /// was paged, and what needs a human. The evidence (rollouts, pod
    /// failures, alerts, notes, links) stays in the timeline, which
    /// `kubectl describe` prints: an Event each would triple the writes a
    /// new incident costs, and compete with the status writes responders
    /// wait for.
    pub fn narrated(self) -> bool {
        match self {
            Kind::Declared
            | Kind::PhaseChanged
            | Kind::SeverityChanged
            | Kind::Escalated
            | Kind::Notification
            | Kind::NotificationFailed
            | Kind::NotificationRefused
            | Kind::AutoResolved
            | Kind::FollowUpOverdue
            | Kind::PostmortemOverdue => true,
            Kind::Signal
            | Kind::Note
            | Kind::Rollout
            | Kind::PodFailure
            | Kind::AlertFiring
            | Kind::AlertResolved
            | Kind::ImpactStarted
            | Kind::FollowUp
            | Kind::Related => false,
        }
    }

    /// An entry of this kind about one thing (a Deployment, a receiver, a
    /// failure reason), which tells its Event apart from others of the
    /// same kind.
    pub fn about(self, subject: &str) -> Entry {
        Entry {
            kind: self,
            about: Some(subject.to_string()),
        }
    }
}

/// A timeline entry's kind, and what it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub about: Option<String>,
}

impl From<Kind> for Entry {
    fn from(kind: Kind) -> Self {
        Entry { kind, about: None }
    }
}

impl Entry {
    /// The Event action: the kind, narrowed by what the entry is about
    /// (the Recorder merges Events of one reason and action into a series).
    fn action(&self) -> String {
        let kind = self.kind.as_str();
        match &self.about {
            Some(about) => crate::domain::enrich::truncate(&format!("{kind}/{about}"), 128),
            None => kind.to_string(),
        }
    }
}

/// A timeline entry added by this plan, and the Event that may report it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub reason: String,
    pub action: String,
    pub message: String,
    /// Reported as a Warning Event.
    pub warning: bool,
    /// Published as an Event at all (see [`Kind::narrated`]).
    pub narrated: bool,
}

/// The Events a plan emits, in the order their entries were added.
#[derive(Default)]
pub struct Reports(Vec<Report>);

impl Reports {
    /// Adds a timeline entry and the report of it.
    pub fn add(
        &mut self,
        timeline: &mut Vec<TimelineEntry>,
        time: Time,
        entry: impl Into<Entry>,
        message: String,
    ) {
        let entry = entry.into();
        self.0.push(Report {
            reason: entry.kind.as_str().to_string(),
            action: entry.action(),
            message: message.clone(),
            warning: entry.kind.warning(),
            narrated: entry.kind.narrated(),
        });
        push(
            timeline,
            TimelineEntry {
                time,
                type_: entry.kind.as_str().to_string(),
                message,
            },
        );
    }

    pub fn into_inner(self) -> Vec<Report> {
        self.0
    }
}

/// Inserts in time order (stable for equal times) and keeps the timeline
/// bounded: the first entries and the most recent ones.
pub fn push(timeline: &mut Vec<TimelineEntry>, entry: TimelineEntry) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(second: i64, message: &str) -> TimelineEntry {
        TimelineEntry {
            time: Time(jiff::Timestamp::from_second(second).expect("time")),
            type_: "Note".into(),
            message: message.into(),
        }
    }

    #[test]
    fn keeps_time_order_and_sheds_the_middle_when_full() {
        let mut timeline = Vec::new();
        for i in 0..(MAX_TIMELINE as i64 + 5) {
            push(&mut timeline, entry(1000 + i, &i.to_string()));
        }
        push(&mut timeline, entry(999, "early"));
        assert_eq!(timeline.len(), MAX_TIMELINE as usize);
        assert_eq!(timeline[0].message, "early");
        assert_eq!(
            timeline.last().map(|e| e.message.as_str()),
            Some((MAX_TIMELINE + 4).to_string().as_str())
        );
        assert!(timeline.windows(2).all(|w| w[0].time.0 <= w[1].time.0));
    }
}
