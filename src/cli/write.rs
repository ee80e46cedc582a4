//! How the plugin changes an incident: a merge patch of its spec that
//! carries the resourceVersion it was planned from (so a change made in
//! between is never overwritten; it is read again and planned again), and
//! names who made it, for the generation it makes, in the annotations
//! `klaxon.dev/actor` and `klaxon.dev/actor-generation` (an admission
//! policy holds them to the truth).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::authentication::v1::SelfSubjectReview, apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{Error, error::api_error, error::other_error};
use crate::api::{
    Incident, Phase,
    incident::{ACTOR_ANNOTATION, ACTOR_GENERATION_ANNOTATION, Note},
};

/// How often a write is planned again after a conflict.
const ATTEMPTS: usize = 5;

/// Who the cluster knows the caller as (a SelfSubjectReview). `None` when
/// the cluster cannot say (older than 1.28, or the API is off): the change
/// is then made without naming anyone.
pub async fn whoami(client: &Client) -> Result<Option<String>, Error> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match api.create(&PostParams::default(), &review).await {
        Ok(review) => Ok(review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())),
        Err(kube::Error::Api(status)) if matches!(status.code, 403..=405) => Ok(None),
        Err(error) => Err(other_error(error)),
    }
}

/// The annotations naming `actor` as the author of `generation`.
pub fn actor_annotations(actor: &str, generation: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ACTOR_ANNOTATION.to_string(), actor.to_string()),
        (
            ACTOR_GENERATION_ANNOTATION.to_string(),
            generation.to_string(),
        ),
    ])
}

/// What a write planned from the incident as read does.
pub enum Plan<T> {
    /// Merge `spec` into the spec, then answer `then`.
    Write { spec: serde_json::Value, then: T },
    /// Nothing to write (it already says so): answer this.
    Unchanged(T),
}

/// Reads incident `ns/name`, asks `plan` what to change, and writes that
/// as a merge patch conditional on the version read, naming `actor` for
/// the generation the change makes. A conflict (someone changed it in
/// between) reads and plans again, a few times.
pub async fn update<T>(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    actor: Option<&str>,
    mut plan: impl FnMut(&Incident) -> Result<Plan<T>, Error>,
) -> Result<T, Error> {
    for _ in 0..ATTEMPTS {
        let current = api.get(name).await.map_err(|e| api_error(e, ns, name))?;
        let (spec, then) = match plan(&current)? {
            Plan::Unchanged(answer) => return Ok(answer),
            Plan::Write { spec, then } => (spec, then),
        };
        let mut body = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": spec,
        });
        if let Some(actor) = actor {
            let next = current.metadata.generation.unwrap_or(0) + 1;
            body["metadata"]["annotations"] = json!(actor_annotations(actor, next));
        }
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            Ok(_) => return Ok(then),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(api_error(error, ns, name)),
        }
    }
    Err(Error::Conflict {
        namespace: ns.into(),
        name: name.into(),
    })
}

/// Merges `spec` into the incident's spec, naming `actor`, unless the spec
/// already says so. `Some(text)` says why nothing was changed. A phase
/// change away from Resolved is refused: Resolved is final.
pub async fn change(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
    actor: Option<&str>,
) -> Result<Option<&'static str>, Error> {
    update(api, ns, name, actor, |current| {
        let before = serde_json::to_value(&current.spec).map_err(|e| Error::Api(e.to_string()))?;
        let mut after = before.clone();
        merge(&mut after, &spec);
        if after == before {
            return Ok(Plan::Unchanged(Some("unchanged: it already says so")));
        }
        if current.spec.phase == Phase::Resolved
            && spec.get("phase").is_some_and(|p| p != "Resolved")
        {
            return Err(Error::Input(format!(
                "incident {ns}/{name} is resolved, which is final; declare a new incident instead"
            )));
        }
        Ok(Plan::Write {
            spec: spec.clone(),
            then: None,
        })
    })
    .await
}

/// Appends a note by `author`, written now.
pub async fn add_note(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    text: String,
    author: Option<String>,
) -> Result<(), Error> {
    let note = Note {
        author,
        text,
        time: Some(Time(jiff::Timestamp::now())),
    };
    update(api, ns, name, None, |current| {
        let mut notes = current.spec.notes.clone();
        notes.push(note.clone());
        Ok(Plan::Write {
            spec: json!({"notes": notes}),
            then: (),
        })
    })
    .await
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(
                        target.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_replaces_lists_and_removes_nulls() {
        let mut spec = json!({"phase": "Triggered", "commander": "bob", "notes": [1, 2]});
        merge(
            &mut spec,
            &json!({"phase": "Acknowledged", "commander": null, "notes": [3]}),
        );
        assert_eq!(spec, json!({"phase": "Acknowledged", "notes": [3]}));
    }
}
