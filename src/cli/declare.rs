//! `kubectl incident declare`: the Incident a declaration creates.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Api, api::PostParams};

use super::{Error, error::api_error, write::actor_annotations};
use crate::api::{
    Incident, IncidentSpec, Phase,
    incident::{Affected, AffectedDeployment},
};

/// What `declare` was told.
pub struct Declaration {
    pub title: String,
    pub severity: String,
    /// Affected Deployments by name.
    pub deployments: Vec<String>,
    /// Affected Deployments by label, `k=v,k2=v2` each.
    pub selectors: Vec<String>,
    /// Affected StatefulSets and DaemonSets by name.
    pub stateful_sets: Vec<String>,
    pub daemon_sets: Vec<String>,
    pub commander: Option<String>,
    pub summary: Option<String>,
}

/// Creates incident `ns/name`, Triggered, naming `actor` as the author of
/// its first generation.
pub async fn create(
    api: &Api<Incident>,
    ns: &str,
    name: &str,
    declaration: Declaration,
    actor: Option<&str>,
) -> Result<(), Error> {
    let named = |names: Vec<String>| -> Vec<AffectedDeployment> {
        names
            .into_iter()
            .map(|d| AffectedDeployment {
                name: Some(d),
                selector: None,
            })
            .collect()
    };
    let mut affected = named(declaration.deployments);
    for selector in &declaration.selectors {
        affected.push(AffectedDeployment {
            name: None,
            selector: Some(parse_selector(selector)?),
        });
    }
    let mut incident = Incident::new(
        name,
        IncidentSpec {
            title: declaration.title,
            severity: declaration.severity,
            phase: Phase::Triggered,
            summary: declaration.summary,
            commander: declaration.commander,
            affected: Some(Affected {
                deployments: affected,
                stateful_sets: named(declaration.stateful_sets),
                daemon_sets: named(declaration.daemon_sets),
            })
            .filter(|a| a != &Affected::default()),
            ..Default::default()
        },
    );
    if let Some(actor) = actor {
        incident.metadata.annotations = Some(actor_annotations(actor, 1));
    }
    api.create(&PostParams::default(), &incident)
        .await
        .map_err(|e| api_error(e, ns, name))?;
    Ok(())
}

/// `k=v,k2=v2` as matchLabels.
pub fn parse_selector(text: &str) -> Result<LabelSelector, Error> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Error::Input(format!(
                "--selector {text}: expected key=value pairs, e.g. tier=payments"
            ))
        })?;
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    if labels.is_empty() {
        return Err(Error::Input(
            "--selector needs at least one key=value".into(),
        ));
    }
    Ok(LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_is_key_value_pairs() {
        let selector = parse_selector("tier=payments, env = prod").expect("valid");
        assert_eq!(
            selector.match_labels,
            Some(BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("tier".to_string(), "payments".to_string()),
            ]))
        );
        assert!(parse_selector("tier").is_err());
        assert!(parse_selector(",").is_err());
    }
}
