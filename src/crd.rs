//! The CustomResourceDefinitions, generated from the types in [`crate::api`].
//! `klaxon crds` prints them; `crds/` holds them committed, and a test fails
//! when the two drift apart.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{ClusterResponsePolicy, Incident, ResponsePolicy};

/// Every CRD, with the file name it is kept under in `crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("incidents.yaml", Incident::crd()),
        (
            "responsepolicies.yaml",
            team_only_rules(ResponsePolicy::crd()),
        ),
        ("clusterresponsepolicies.yaml", ClusterResponsePolicy::crd()),
    ]
}

/// ResponsePolicy and ClusterResponsePolicy share their spec's type; what
/// only the organisation may set is refused in a ResponsePolicy here.
fn team_only_rules(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    let spec = crd
        .spec
        .versions
        .iter_mut()
        .filter_map(|v| v.schema.as_mut()?.open_api_v3_schema.as_mut())
        .filter_map(|root| root.properties.as_mut()?.get_mut("spec"));
    for spec in spec {
        spec.x_kubernetes_validations
            .get_or_insert_with(Vec::new)
            .push(ValidationRule {
                rule: "!has(self.enrichment) || !has(self.enrichment.prometheus) || !has(self.enrichment.prometheus.namespaceLabel)".into(),
                message: Some(
                    "enrichment.prometheus.namespaceLabel is the organisation's to set, in a ClusterResponsePolicy: a team's queries are always confined to its namespace".into(),
                ),
                field_path: Some(".enrichment.prometheus.namespaceLabel".into()),
                ..Default::default()
            });
    }
    crd
}

/// The ValidatingAdmissionPolicies, each with its binding, kept beside
/// the CRDs in `crds/` under these file names:
/// - unknown severities are rejected at apply time;
/// - the annotations naming who made a change cannot be forged;
/// - nor a note's author, nor the marks of the operator's own incidents.
pub const ADMISSION: [(&str, &str); 3] = [
    (
        "severity-admission.yaml",
        include_str!("admission/severity-policy.yaml"),
    ),
    (
        "actor-admission.yaml",
        include_str!("admission/actor-policy.yaml"),
    ),
    (
        "authorship-admission.yaml",
        include_str!("admission/authorship-policy.yaml"),
    ),
];

/// One CRD as the YAML committed in `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

/// All CRDs as one multi-document YAML stream, for `kubectl apply -f -`.
pub fn all_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for (_, crd) in all() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    for (_, policy) in ADMISSION {
        out.push_str("---\n");
        out.push_str(policy);
    }
    Ok(out)
}

/// Writes every CRD into `dir`, one file each, as committed in `crds/`.
pub fn write_all(dir: &std::path::Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(WriteError::Io)?;
    for (file, crd) in all() {
        std::fs::write(dir.join(file), to_yaml(&crd).map_err(WriteError::Yaml)?)
            .map_err(WriteError::Io)?;
    }
    for (file, policy) in ADMISSION {
        std::fs::write(dir.join(file), policy).map_err(WriteError::Io)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write the CRDs: {0}")]
    Io(#[source] std::io::Error),
    #[error("cannot serialize a CRD: {0}")]
    Yaml(#[source] serde_saphyr::ser::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/` and the chart's copy are generated from the types; this
    /// fails when someone changes a type and forgets `make crds`.
    #[test]
    fn committed_crds_match_the_types() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["crds", "charts/klaxon/crds"] {
            for (file, crd) in all() {
                let committed =
                    std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
                let generated = to_yaml(&crd).expect("CRD serializes");
                assert!(
                    committed == generated,
                    "{dir}/{file} is out of date with the Rust types: run `make crds` and commit the result"
                );
            }
            for (file, policy) in ADMISSION {
                let committed =
                    std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
                assert!(
                    committed == policy,
                    "{dir}/{file} is out of date: run `make crds`"
                );
            }
        }
    }

    #[test]
    fn every_kind_is_in_the_klaxon_category() {
        for (file, crd) in all() {
            let categories = crd.spec.names.categories.unwrap_or_default();
            assert_eq!(categories, ["klaxon"], "{file}");
        }
    }
}
