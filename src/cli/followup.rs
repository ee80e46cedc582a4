//! `kubectl incident followup`: add an action item to an incident, or
//! close one. Follow-ups stay editable after resolution (only the phase is
//! final). The list is keyed by title, so a title is refused when the
//! incident already has it. Items are numbered from 1 in the order the
//! spec holds them, as `show` and `postmortem` number them; `--done`
//! takes that number or the exact title.
//!
//! Parsing `--due` and what the list becomes are pure functions; [`add`]
//! and [`close`] write them as every plugin change is written
//! ([`super::write::update`]).

use jiff::{ToSpan, civil::Date};
use kube::Api;
use serde_json::json;

use super::{
    Error,
    write::{Plan, update},
};
use crate::api::{
    Incident,
    incident::FollowUp,
    limits::{MAX_FOLLOW_UPS, MAX_PERSON},
};

/// Adds `item` to incident `ns/name`, naming `actor`; refused when the
/// incident already has its title. Answers the item's number.
pub async fn add(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    item: FollowUp,
    actor: Option<&str>,
) -> Result<usize, Error> {
    update(api, ns, name, actor, |current| {
        let items =
            with(&current.spec.follow_ups, item.clone()).map_err(|e| refused(ns, name, e))?;
        Ok(Plan::Write {
            spec: json!({"followUps": items}),
            then: items.len(),
        })
    })
    .await
}

/// What closing a follow-up did.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Now { number: usize, title: String },
    Already { number: usize, title: String },
}

/// Marks the follow-up `which` names (its number or exact title) done,
/// naming `actor`.
pub async fn close(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    which: &str,
    actor: Option<&str>,
) -> Result<Closed, Error> {
    update(api, ns, name, actor, |current| {
        let mut items = current.spec.follow_ups.clone();
        let at = find(&items, which).map_err(|e| refused(ns, name, e))?;
        let (number, title) = (at + 1, items[at].title.clone());
        if items[at].done {
            return Ok(Plan::Unchanged(Closed::Already { number, title }));
        }
        items[at].done = true;
        Ok(Plan::Write {
            spec: json!({"followUps": items}),
            then: Closed::Now { number, title },
        })
    })
    .await
}

/// A follow-up refused, said with the incident it is about.
pub fn refused(ns: &str, name: &str, error: FollowUpError) -> Error {
    Error::Input(format!("incident {ns}/{name}: {error}"))
}

/// Why a follow-up cannot be added or closed; said after the incident's
/// name.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpError {
    #[error(
        "--due {0:?} is not a date (YYYY-MM-DD, e.g. 2026-12-10) or a number of days or weeks from today (7d, 2w)"
    )]
    Due(String),
    #[error("--title must be 1 to 200 characters")]
    Title,
    #[error("--owner must be 1 to {MAX_PERSON} characters")]
    Owner,
    #[error("--url {0:?} is not an http:// or https:// address")]
    Url(String),
    #[error("follow-up {number} is already titled {title:?}; titles are unique within an incident")]
    Duplicate { number: usize, title: String },
    #[error("it already has {MAX_FOLLOW_UPS} follow-ups, the most an incident holds")]
    Full,
    #[error("it has no follow-ups")]
    None,
    #[error("it has no follow-up {0} (it has {1})")]
    NoNumber(usize, usize),
    #[error("it has no follow-up titled {0:?}")]
    NoTitle(String),
}

/// The day `--due` names: a date (`2026-12-10`), or a number of days
/// (`7d`) or weeks (`2w`) after `today` (a day in UTC), written as a date.
pub fn parse_due(text: &str, today: Date) -> Result<String, FollowUpError> {
    let invalid = || FollowUpError::Due(text.to_string());
    let text = text.trim();
    if let Ok(date) = text.parse::<Date>()
        && text.len() == 10
    {
        return Ok(date.to_string());
    }
    let Some((last, _)) = text.char_indices().last() else {
        return Err(invalid());
    };
    let (number, unit) = text.split_at(last);
    let count: i64 = match number.parse() {
        Ok(n) if number.chars().all(|c| c.is_ascii_digit()) && n <= 3660 => n,
        _ => return Err(invalid()),
    };
    let days = match unit {
        "d" => count,
        "w" => count * 7,
        _ => return Err(invalid()),
    };
    today
        .checked_add(days.days())
        .map(|d| d.to_string())
        .map_err(|_| invalid())
}

/// The item `followup --title T [--owner O] [--due D] [--url U]` adds,
/// its due day read against `today` (UTC).
pub fn new_item(
    title: &str,
    owner: Option<String>,
    due: Option<&str>,
    url: Option<String>,
    today: Date,
) -> Result<FollowUp, FollowUpError> {
    let due = due.map(|d| parse_due(d, today)).transpose()?;
    item(title, owner, due, url)
}

/// The item to add, checked as the schema would check it, with a message
/// naming the flag.
pub fn item(
    title: &str,
    owner: Option<String>,
    due: Option<String>,
    url: Option<String>,
) -> Result<FollowUp, FollowUpError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(FollowUpError::Title);
    }
    if let Some(owner) = &owner
        && (owner.is_empty() || owner.chars().count() > MAX_PERSON as usize)
    {
        return Err(FollowUpError::Owner);
    }
    if let Some(url) = &url {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.chars().any(char::is_whitespace))
            || url.len() > 2048
        {
            return Err(FollowUpError::Url(url.clone()));
        }
    }
    Ok(FollowUp {
        title: title.to_string(),
        owner,
        url,
        due,
        done: false,
    })
}

/// The follow-ups with `item` appended.
pub fn with(items: &[FollowUp], item: FollowUp) -> Result<Vec<FollowUp>, FollowUpError> {
    if let Some(at) = items.iter().position(|i| i.title == item.title) {
        return Err(FollowUpError::Duplicate {
            number: at + 1,
            title: item.title,
        });
    }
    if items.len() >= MAX_FOLLOW_UPS as usize {
        return Err(FollowUpError::Full);
    }
    let mut items = items.to_vec();
    items.push(item);
    Ok(items)
}

/// Where the item `which` names is in the list: its number (from 1), or
/// else its exact title.
pub fn find(items: &[FollowUp], which: &str) -> Result<usize, FollowUpError> {
    if items.is_empty() {
        return Err(FollowUpError::None);
    }
    let which = which.trim();
    if !which.is_empty() && which.chars().all(|c| c.is_ascii_digit()) {
        return match which.parse::<usize>() {
            Ok(n) if (1..=items.len()).contains(&n) => Ok(n - 1),
            Ok(n) => Err(FollowUpError::NoNumber(n, items.len())),
            Err(_) => Err(FollowUpError::NoNumber(usize::MAX, items.len())),
        };
    }
    items
        .iter()
        .position(|i| i.title == which)
        .ok_or_else(|| FollowUpError::NoTitle(which.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().expect("date")
    }

    fn titled(title: &str) -> FollowUp {
        FollowUp {
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_due_day_is_a_date_or_days_or_weeks_from_today() {
        let today = day("2026-11-24");
        assert_eq!(parse_due("2026-12-10", today).as_deref(), Ok("2026-12-10"));
        assert_eq!(parse_due("7d", today).as_deref(), Ok("2026-12-01"));
        assert_eq!(parse_due("0d", today).as_deref(), Ok("2026-11-24"));
        assert_eq!(parse_due("2w", today).as_deref(), Ok("2026-12-08"));
        assert_eq!(
            parse_due("40d", day("2026-12-01")).as_deref(),
            Ok("2027-01-10")
        );
        for bad in [
            "",
            "d",
            "7",
            "7h",
            "-3d",
            "+3d",
            "2026-02-30",
            "2026-1-5",
            "next week",
            "99999d",
            "7é",
        ] {
            assert_eq!(
                parse_due(bad, today),
                Err(FollowUpError::Due(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_item_is_checked_as_the_schema_checks_it() {
        let ok = item(
            "  Canary for the card processor ",
            Some("bob".into()),
            Some("2026-12-10".into()),
            Some("https://tracker.example/PAY-123".into()),
        )
        .expect("valid");
        assert_eq!(ok.title, "Canary for the card processor");
        assert!(!ok.done);
        assert_eq!(item(" ", None, None, None), Err(FollowUpError::Title));
        assert_eq!(
            item(&"x".repeat(201), None, None, None),
            Err(FollowUpError::Title)
        );
        assert_eq!(
            item("t", Some(String::new()), None, None),
            Err(FollowUpError::Owner)
        );
        for url in ["tracker.example/1", "https://", "https://a b", "ftp://x"] {
            assert_eq!(
                item("t", None, None, Some(url.into())),
                Err(FollowUpError::Url(url.into()))
            );
        }
    }

    #[test]
    fn a_title_is_added_once() {
        let items = with(&[], titled("Canary")).expect("first");
        let items = with(&items, titled("Runbook")).expect("second");
        assert_eq!(items.len(), 2);
        assert_eq!(
            with(&items, titled("Runbook")),
            Err(FollowUpError::Duplicate {
                number: 2,
                title: "Runbook".into()
            })
        );
        let full: Vec<FollowUp> = (0..MAX_FOLLOW_UPS)
            .map(|n| titled(&format!("item {n}")))
            .collect();
        assert_eq!(with(&full, titled("one more")), Err(FollowUpError::Full));
    }

    #[test]
    fn an_item_is_found_by_its_number_from_one_or_its_exact_title() {
        let items = [titled("Canary"), titled("Runbook"), titled("2026 plan")];
        assert_eq!(find(&items, "1"), Ok(0));
        assert_eq!(find(&items, "3"), Ok(2));
        assert_eq!(find(&items, "Runbook"), Ok(1));
        assert_eq!(find(&items, "2026 plan"), Ok(2));
        assert_eq!(find(&items, "0"), Err(FollowUpError::NoNumber(0, 3)));
        assert_eq!(find(&items, "4"), Err(FollowUpError::NoNumber(4, 3)));
        assert_eq!(
            find(&items, "runbook"),
            Err(FollowUpError::NoTitle("runbook".into()))
        );
        assert_eq!(find(&[], "1"), Err(FollowUpError::None));
    }
}
