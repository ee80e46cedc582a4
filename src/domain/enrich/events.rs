//! Warning events of the affected objects, deduplicated by
//! (reason, object, message), most recent first.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::truncate;
use crate::{
    api::incident::EventSummary,
    kinds::{Event, shared},
};

pub const MESSAGE_EXCERPT: usize = 256;

/// When an event was last seen, whichever field its reporter filled.
pub fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(event.last_timestamp.as_ref().map(|t| t.0))
        .or(event.event_time.as_ref().map(|t| t.0))
        .or(event.first_timestamp.as_ref().map(|t| t.0))
        .or(event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn first_seen(event: &Event) -> Option<Timestamp> {
    event
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(event.event_time.as_ref().map(|t| t.0))
        .or_else(|| last_seen(event))
}

fn count(event: &Event) -> i32 {
    event
        .series
        .as_ref()
        .and_then(|s| s.count)
        .or(event.count)
        .unwrap_or(1)
        .max(1)
}

/// A Warning Event as the cache keeps it: what a summary shows of it, in
/// about a third of the Event's size (the cluster has many more Events
/// than anything else the operator caches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Warning {
    /// The namespace, kind and name of the object it is about.
    pub namespace: Arc<str>,
    pub kind: Arc<str>,
    pub object: Box<str>,
    pub reason: Arc<str>,
    /// Trimmed, at most [`MESSAGE_EXCERPT`] bytes.
    pub message: Box<str>,
    /// Occurrences, series included (at least 1).
    pub count: i32,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// A Normal event (of a node: `NodeNotReady` is one), not a Warning.
    pub normal: bool,
}

/// A node's Normal events that speak of trouble; its Warnings all do.
pub const NODE_TROUBLE: &[&str] = &[
    "NodeNotReady",
    "NodeNotSchedulable",
    "NodeHasDiskPressure",
    "NodeHasInsufficientMemory",
    "NodeHasInsufficientPID",
    "Rebooted",
];

impl Warning {
    /// Whether a summary of a node's events shows it.
    pub fn troubles_a_node(&self) -> bool {
        !self.normal || NODE_TROUBLE.contains(&&*self.reason)
    }

    pub fn of(event: &Event) -> Warning {
        let object = &event.involved_object;
        let last = last_seen(event);
        Warning {
            namespace: shared(
                object
                    .namespace
                    .as_deref()
                    .or(event.metadata.namespace.as_deref())
                    .unwrap_or_default(),
            ),
            kind: shared(object.kind.as_deref().unwrap_or_default()),
            object: object.name.as_deref().unwrap_or_default().into(),
            reason: shared(event.reason.as_deref().unwrap_or_default()),
            message: truncate(
                event.message.as_deref().unwrap_or_default().trim(),
                MESSAGE_EXCERPT,
            )
            .into_boxed_str(),
            count: count(event),
            first_seen: first_seen(event).or(last),
            last_seen: last,
            normal: event.type_.as_deref() == Some("Normal"),
        }
    }
}

/// Deduplicated events about `objects` (`(kind, name)`), last seen at or
/// after `since`, most recent first, at most `max`. Also returns how many
/// Warning events were seen in all, counts included.
pub fn summarize<'a>(
    events: impl IntoIterator<Item = &'a Warning>,
    objects: &HashSet<(String, String)>,
    since: Timestamp,
    max: usize,
) -> (Vec<EventSummary>, i64) {
    let mut merged: HashMap<(String, String, String), EventSummary> = HashMap::new();
    let mut total: i64 = 0;
    for event in events {
        let key = (event.kind.to_string(), event.object.to_string());
        if key.0.is_empty() || key.1.is_empty() || !objects.contains(&key) {
            continue;
        }
        let Some(last) = event.last_seen else {
            continue;
        };
        if last < since {
            continue;
        }
        let first = event.first_seen.unwrap_or(last);
        let reason = event.reason.to_string();
        let message = event.message.to_string();
        let object = format!("{}/{}", key.0, key.1);
        let n = event.count;
        if !event.normal {
            total += i64::from(n);
        }
        let type_ = if event.normal { "Normal" } else { "Warning" };
        let entry = merged
            .entry((reason.clone(), object.clone(), message.clone()))
            .or_insert_with(|| EventSummary {
                type_: type_.to_string(),
                reason,
                object,
                message,
                count: 0,
                first_seen: Some(Time(first)),
                last_seen: Some(Time(last)),
            });
        entry.count = entry.count.saturating_add(n);
        if entry.first_seen.as_ref().is_none_or(|t| first < t.0) {
            entry.first_seen = Some(Time(first));
        }
        if entry.last_seen.as_ref().is_none_or(|t| last > t.0) {
            entry.last_seen = Some(Time(last));
        }
    }
    let mut list: Vec<EventSummary> = merged.into_values().collect();
    list.sort_by(|a, b| {
        let key = |e: &EventSummary| e.last_seen.as_ref().map(|t| t.0);
        key(b)
            .cmp(&key(a))
            .then(b.count.cmp(&a.count))
            .then(a.object.cmp(&b.object))
            .then(a.reason.cmp(&b.reason))
            .then(a.message.cmp(&b.message))
    });
    list.truncate(max);
    (list, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enrich::testing::*;

    #[test]
    fn deduplicates_filters_and_orders_most_recent_first() {
        let objects: HashSet<(String, String)> = [
            ("Pod".to_string(), "checkout-1".to_string()),
            ("Deployment".to_string(), "checkout".to_string()),
        ]
        .into();
        let events = [
            warning(
                "Pod",
                "checkout-1",
                "BackOff",
                "Back-off restarting",
                3,
                "2026-11-24T14:05:00Z",
            ),
            warning(
                "Pod",
                "checkout-1",
                "BackOff",
                "Back-off restarting",
                2,
                "2026-11-24T14:07:00Z",
            ),
            warning(
                "Deployment",
                "checkout",
                "ProgressDeadlineExceeded",
                "too slow",
                1,
                "2026-11-24T14:06:00Z",
            ),
            // another object, and an event older than the lookback
            warning(
                "Pod",
                "other-1",
                "BackOff",
                "Back-off restarting",
                9,
                "2026-11-24T14:08:00Z",
            ),
            warning(
                "Pod",
                "checkout-1",
                "Failed",
                "old news",
                1,
                "2026-11-24T10:00:00Z",
            ),
        ];
        let since: Timestamp = "2026-11-24T13:00:00Z".parse().expect("time");
        let events: Vec<Warning> = events.iter().map(Warning::of).collect();
        let (list, total) = summarize(&events, &objects, since, 10);
        assert_eq!(total, 6);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].reason, "BackOff");
        assert_eq!(list[0].object, "Pod/checkout-1");
        assert_eq!(list[0].count, 5);
        assert_eq!(
            list[0]
                .first_seen
                .as_ref()
                .map(|t| t.0.to_string())
                .as_deref(),
            Some("2026-11-24T14:05:00Z")
        );
        assert_eq!(
            list[0]
                .last_seen
                .as_ref()
                .map(|t| t.0.to_string())
                .as_deref(),
            Some("2026-11-24T14:07:00Z")
        );
        assert_eq!(list[1].reason, "ProgressDeadlineExceeded");

        let (capped, _) = summarize(&events, &objects, since, 1);
        assert_eq!(capped.len(), 1);
    }
}
