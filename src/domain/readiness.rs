//! Whether a ResponsePolicy or ClusterResponsePolicy is in effect, and
//! why not: the `Ready` condition of a policy, decided from facts the
//! policy controller gathers from its caches. Pure, so every reason has a
//! unit test.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::PolicyStatus,
    domain::conditions::{READY, condition},
};

/// Why a policy is or is not Ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// In effect.
    Applied,
    /// Another ResponsePolicy (the oldest) governs the namespace.
    Conflict,
    /// A team policy loosens the baseline; the baseline alone applies.
    LoosensBaseline,
    /// An alert rule or heartbeat that cannot work; the rest applies.
    InvalidAlertRule,
    /// A receiver's Secret or key is missing; the policy still governs.
    ReceiverSecretMissing,
    /// A baseline's namespaceSelector does not parse.
    InvalidSelector,
    /// A Prometheus or receiver URL lies outside the egress allow-list;
    /// it is never contacted, the rest of the policy governs.
    EgressDenied,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Applied => "Applied",
            Reason::Conflict => "Conflict",
            Reason::LoosensBaseline => "LoosensBaseline",
            Reason::InvalidAlertRule => "InvalidAlertRule",
            Reason::ReceiverSecretMissing => "ReceiverSecretMissing",
            Reason::InvalidSelector => "InvalidSelector",
            Reason::EgressDenied => "EgressDenied",
        }
    }

    /// Whether a policy with this reason still governs its namespaces (and
    /// counts their open incidents).
    pub fn governs(self) -> bool {
        matches!(
            self,
            Reason::Applied
                | Reason::InvalidAlertRule
                | Reason::ReceiverSecretMissing
                | Reason::EgressDenied
        )
    }
}

/// A policy's Ready condition, decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    pub message: String,
}

impl Decision {
    pub fn ready(&self) -> bool {
        self.reason == Reason::Applied
    }
}

/// What the controller knows about a team's ResponsePolicy.
#[derive(Clone, Debug, Default)]
pub struct TeamFacts {
    pub namespace: String,
    /// The ResponsePolicy that governs the namespace instead, when this
    /// one is not the oldest.
    pub governed_by: Option<String>,
    /// How it loosens the baseline, one message per field.
    pub violations: Vec<String>,
    /// The baselines that select the namespace, by name.
    pub baselines: Vec<String>,
    /// Alert rules and heartbeat that cannot work, each naming its field.
    pub invalid_rules: Vec<String>,
    /// Receivers whose Secret cannot be had, each with why.
    pub missing_secrets: Vec<String>,
    /// URLs the egress allow-list refuses, each naming its field and host.
    pub egress_denied: Vec<String>,
}

/// The message of an `EgressDenied` decision.
fn egress_message(denied: &[String]) -> String {
    format!(
        "{}. The operator never connects there; allow the host in spec.egress of the policy named (a team policy can only narrow the organisation's list), or use another URL.",
        denied.join("; ")
    )
}

/// The Ready decision for a team's ResponsePolicy: the first problem wins.
pub fn team(facts: &TeamFacts) -> Decision {
    let namespace = &facts.namespace;
    let decide = |reason, message| Decision { reason, message };
    if let Some(primary) = &facts.governed_by {
        return decide(
            Reason::Conflict,
            format!(
                "ResponsePolicy {primary} already governs namespace {namespace} (the oldest applies); merge this one into it."
            ),
        );
    }
    if !facts.violations.is_empty() {
        let instead = if facts.baselines.is_empty() {
            "no policy applies to this namespace instead (default ladder SEV1..SEV4)".to_string()
        } else {
            format!(
                "the baseline ({}) alone applies to namespace {namespace}",
                facts.baselines.join(", ")
            )
        };
        return decide(
            Reason::LoosensBaseline,
            format!(
                "{}. A team policy may only tighten the baseline; {instead}.",
                facts.violations.join("; ")
            ),
        );
    }
    if !facts.egress_denied.is_empty() {
        return decide(Reason::EgressDenied, egress_message(&facts.egress_denied));
    }
    if !facts.invalid_rules.is_empty() {
        return decide(
            Reason::InvalidAlertRule,
            format!(
                "{}; that rule takes no alert until it is fixed, the rest of the policy applies.",
                facts.invalid_rules.join("; ")
            ),
        );
    }
    if !facts.missing_secrets.is_empty() {
        return decide(
            Reason::ReceiverSecretMissing,
            format!(
                "{}. Notifications to these receivers will fail until the Secret exists in namespace {namespace} with that key.",
                facts.missing_secrets.join("; ")
            ),
        );
    }
    if facts.baselines.is_empty() {
        return decide(
            Reason::Applied,
            format!("Governs namespace {namespace}; no baseline selects it."),
        );
    }
    decide(
        Reason::Applied,
        format!(
            "Governs namespace {namespace} within the baseline {}.",
            facts.baselines.join(", ")
        ),
    )
}

/// What the controller knows about a ClusterResponsePolicy.
#[derive(Clone, Debug, Default)]
pub struct BaselineFacts {
    /// Why its namespaceSelector does not parse.
    pub invalid_selector: Option<String>,
    pub invalid_rules: Vec<String>,
    pub missing_secrets: Vec<String>,
    /// URLs its own egress allow-list refuses.
    pub egress_denied: Vec<String>,
    /// How many namespaces it selects.
    pub selected: usize,
}

/// The Ready decision for a ClusterResponsePolicy.
pub fn baseline(facts: &BaselineFacts) -> Decision {
    let decide = |reason, message| Decision { reason, message };
    if let Some(error) = &facts.invalid_selector {
        return decide(
            Reason::InvalidSelector,
            format!("spec.namespaceSelector: {error}"),
        );
    }
    if !facts.egress_denied.is_empty() {
        return decide(Reason::EgressDenied, egress_message(&facts.egress_denied));
    }
    if !facts.invalid_rules.is_empty() {
        return decide(
            Reason::InvalidAlertRule,
            format!(
                "{}; that rule takes no alert until it is fixed, the rest of the baseline applies.",
                facts.invalid_rules.join("; ")
            ),
        );
    }
    if !facts.missing_secrets.is_empty() {
        return decide(
            Reason::ReceiverSecretMissing,
            format!(
                "{}. Notifications to these receivers will fail until the Secret exists in the operator's namespace with that key.",
                facts.missing_secrets.join("; ")
            ),
        );
    }
    decide(
        Reason::Applied,
        format!("The baseline for {} namespace(s).", facts.selected),
    )
}

/// A policy's status: its Ready condition and the open incidents it
/// governs (none when it does not govern).
pub fn status(
    previous: &PolicyStatus,
    generation: Option<i64>,
    decision: &Decision,
    open_incidents: i32,
    now: &Time,
) -> PolicyStatus {
    PolicyStatus {
        observed_generation: generation,
        conditions: vec![condition(
            &previous.conditions,
            READY,
            decision.ready(),
            decision.reason.as_str(),
            decision.message.clone(),
            generation,
            now,
        )],
        open_incidents: Some(if decision.reason.governs() {
            open_incidents
        } else {
            0
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> TeamFacts {
        TeamFacts {
            namespace: "shop".into(),
            baselines: vec!["org".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_team_policy_is_applied_within_its_baseline_or_alone() {
        let applied = team(&facts());
        assert_eq!(applied.reason, Reason::Applied);
        assert_eq!(
            applied.message,
            "Governs namespace shop within the baseline org."
        );
        let alone = team(&TeamFacts {
            baselines: vec![],
            ..facts()
        });
        assert!(alone.ready());
        assert_eq!(
            alone.message,
            "Governs namespace shop; no baseline selects it."
        );
    }

    #[test]
    fn a_refused_url_is_egress_denied_and_the_policy_still_governs() {
        let denied = team(&TeamFacts {
            egress_denied: vec![
                "spec.enrichment.prometheus.url: host 10.0.0.9 is not in spec.egress of ClusterResponsePolicy org"
                    .into(),
            ],
            missing_secrets: vec!["hook: Secret shop/hooks not found".into()],
            ..facts()
        });
        assert_eq!(denied.reason, Reason::EgressDenied);
        assert!(denied.reason.governs());
        assert!(!denied.ready());
        assert!(
            denied
                .message
                .starts_with("spec.enrichment.prometheus.url: host 10.0.0.9"),
            "{}",
            denied.message
        );
        let baseline = baseline(&BaselineFacts {
            egress_denied: vec!["spec.receivers[pager]: host x is not in spec.egress".into()],
            ..Default::default()
        });
        assert_eq!(baseline.reason, Reason::EgressDenied);
    }

    #[test]
    fn the_first_problem_decides_and_only_some_still_govern() {
        let all = TeamFacts {
            governed_by: Some("older".into()),
            violations: vec![
                "spec.severities[0].name: severity SEV0 is not on the baseline ladder (SEV1)"
                    .into(),
            ],
            invalid_rules: vec!["spec.alerts[0].matchers[0]: bad regex".into()],
            missing_secrets: vec!["hook: Secret shop/hooks not found".into()],
            ..facts()
        };
        let conflict = team(&all);
        assert_eq!(conflict.reason, Reason::Conflict);
        assert!(
            conflict
                .message
                .contains("ResponsePolicy older already governs")
        );

        let loosens = team(&TeamFacts {
            governed_by: None,
            ..all.clone()
        });
        assert_eq!(loosens.reason, Reason::LoosensBaseline);
        assert!(
            loosens
                .message
                .ends_with("the baseline (org) alone applies to namespace shop."),
            "{}",
            loosens.message
        );

        let rules = team(&TeamFacts {
            governed_by: None,
            violations: vec![],
            ..all.clone()
        });
        assert_eq!(rules.reason, Reason::InvalidAlertRule);

        let secrets = team(&TeamFacts {
            governed_by: None,
            violations: vec![],
            invalid_rules: vec![],
            ..all
        });
        assert_eq!(secrets.reason, Reason::ReceiverSecretMissing);
        assert!(!secrets.ready());

        let governing: Vec<Reason> = [
            Reason::Applied,
            Reason::Conflict,
            Reason::LoosensBaseline,
            Reason::InvalidAlertRule,
            Reason::ReceiverSecretMissing,
            Reason::InvalidSelector,
        ]
        .into_iter()
        .filter(|r| r.governs())
        .collect();
        assert_eq!(
            governing,
            [
                Reason::Applied,
                Reason::InvalidAlertRule,
                Reason::ReceiverSecretMissing
            ]
        );
    }

    #[test]
    fn a_loosening_policy_without_a_baseline_falls_back_to_the_default_ladder() {
        let decision = team(&TeamFacts {
            baselines: vec![],
            violations: vec!["x".into()],
            ..facts()
        });
        assert!(
            decision
                .message
                .contains("no policy applies to this namespace instead"),
            "{}",
            decision.message
        );
    }

    #[test]
    fn a_baseline_is_refused_for_its_selector_first() {
        let bad = baseline(&BaselineFacts {
            invalid_selector: Some("operator Foo is not valid".into()),
            invalid_rules: vec!["x".into()],
            ..Default::default()
        });
        assert_eq!(bad.reason, Reason::InvalidSelector);
        assert_eq!(
            bad.message,
            "spec.namespaceSelector: operator Foo is not valid"
        );
        let fine = baseline(&BaselineFacts {
            selected: 3,
            ..Default::default()
        });
        assert_eq!(fine.message, "The baseline for 3 namespace(s).");
    }

    #[test]
    fn a_policy_that_does_not_govern_counts_no_open_incidents() {
        let now = Time(jiff::Timestamp::from_second(1_800_000_000).expect("time"));
        let conflict = Decision {
            reason: Reason::Conflict,
            message: "x".into(),
        };
        let status = status(&PolicyStatus::default(), Some(2), &conflict, 7, &now);
        assert_eq!(status.open_incidents, Some(0));
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].reason, "Conflict");
        let missing = Decision {
            reason: Reason::ReceiverSecretMissing,
            message: "x".into(),
        };
        let status = super::status(&PolicyStatus::default(), Some(2), &missing, 7, &now);
        assert_eq!(status.open_incidents, Some(7));
    }
}
