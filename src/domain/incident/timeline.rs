//! The timeline: what happened, oldest first, bounded; and the Events that
//! report each new entry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{incident::TimelineEntry, limits::MAX_TIMELINE};

/// Timeline entries kept from the start when the timeline is full; the
/// rest are the most recent.
pub const TIMELINE_HEAD: usize = 10;

/// A timeline entry added by this plan, to be reported as an Event.
/// `action` tells apart Events of one reason (the Recorder merges Events
/// with the same reason and action into one series).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub reason: String,
    pub action: String,
    pub message: String,
    /// Reported as a Warning Event.
    pub warning: bool,
}

/// The Events a plan emits, in the order their entries were added.
#[derive(Default)]
pub struct Reports(Vec<Report>);

impl Reports {
    /// Adds a timeline entry and the Event that reports it.
    pub fn add(
        &mut self,
        timeline: &mut Vec<TimelineEntry>,
        time: Time,
        type_: &str,
        message: String,
    ) {
        self.0.push(Report {
            reason: type_.to_string(),
            action: action_of(type_, &message),
            message: message.clone(),
            warning: matches!(
                type_,
                "Escalated" | "NotificationFailed" | "NotificationRefused"
            ),
        });
        push(
            timeline,
            TimelineEntry {
                time,
                type_: type_.to_string(),
                message,
            },
        );
    }

    pub fn into_inner(self) -> Vec<Report> {
        self.0
    }
}

/// The Event action for a timeline entry: the type, narrowed by what the
/// entry is about where one type covers several things.
fn action_of(type_: &str, message: &str) -> String {
    let word = match type_ {
        // "<deployment>: pods show <reason>"
        "PodFailure" => message.rsplit(' ').next(),
        // "<deployment> rolled out revision ..."
        "Rollout" => message.split(' ').next(),
        // "Notified <receiver> (...)", "Gave up notifying <receiver> ..."
        "Notification" => message.split(' ').nth(1),
        "NotificationFailed" => message.split(' ').nth(3),
        _ => None,
    };
    match word {
        Some(word) => format!("{type_}/{word}"),
        None => type_.to_string(),
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
