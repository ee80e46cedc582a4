//! Which template drafts a postmortem, and rendering it.
//!
//! `--template FILE` wins; else the template the incident's ResponsePolicy
//! names (`spec.postmortem.templateConfigMapRef`, a ConfigMap key in the
//! incident's namespace), read with the user's own rights; else the
//! organisation's, built into the plugin (`postmortem.md.j2`).
//!
//! Templates are minijinja (Jinja2 syntax) with `trim_blocks` and
//! `lstrip_blocks` on (a line holding only a `{% ... %}` tag leaves no
//! blank line), no HTML escaping, and undefined names an error: a typo
//! in a field name fails with its line instead of printing nothing.

use std::{fmt, path::PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use super::Context;
use crate::{
    api::{Incident, ResponsePolicy, policy::ConfigMapKeyRef},
    cli::{Error, error::other_error},
};

/// The organisation's template.
pub const BUILTIN: &str = include_str!("postmortem.md.j2");

/// Where a template came from, as its errors name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
    ConfigMap {
        namespace: String,
        name: String,
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("the built-in template"),
            Origin::File(path) => write!(f, "template file {}", path.display()),
            Origin::ConfigMap {
                namespace,
                name,
                key,
            } => write!(f, "template configmap {namespace}/{name} key {key}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Template {
    pub origin: Origin,
    pub text: String,
}

impl Template {
    pub fn builtin() -> Self {
        Template {
            origin: Origin::Builtin,
            text: BUILTIN.to_string(),
        }
    }
}

/// The template to draft `incident` with: `file`, else its policy's, else
/// the built-in one; with a warning to show when the policy its status
/// names is gone.
pub async fn find(
    client: &Client,
    incident: &Incident,
    file: Option<PathBuf>,
) -> Result<(Template, Option<String>), Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Template {
            origin: Origin::File(path.clone()).to_string(),
            message: e.to_string(),
        })?;
        let origin = Origin::File(path);
        return Ok((Template { origin, text }, None));
    }
    let namespace = incident.metadata.namespace.clone().unwrap_or_default();
    let Some(policy) = incident
        .status
        .as_ref()
        .and_then(|s| s.policy.as_ref())
        .and_then(|p| p.response_policy.clone())
    else {
        return Ok((Template::builtin(), None));
    };
    policy_template(client, &namespace, &policy).await
}

/// The template ResponsePolicy `namespace/policy` names, else the built-in
/// one (with a warning when the policy is gone).
async fn policy_template(
    client: &Client,
    namespace: &str,
    policy: &str,
) -> Result<(Template, Option<String>), Error> {
    let named = format!("ResponsePolicy {namespace}/{policy}");
    let policies: Api<ResponsePolicy> = Api::namespaced(client.clone(), namespace);
    let spec = match policies.get(policy).await {
        Ok(found) => found.spec,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let warning = format!(
                "{named}, which the incident's status names, no longer exists; drafting from the built-in template"
            );
            return Ok((Template::builtin(), Some(warning)));
        }
        Err(kube::Error::Api(status)) => {
            return Err(Error::Template {
                origin: named,
                message: status.message,
            });
        }
        Err(other) => return Err(other_error(other)),
    };
    match spec.postmortem.and_then(|p| p.template_config_map_ref) {
        Some(at) => {
            let because = format!("{named} names it in spec.postmortem.templateConfigMapRef");
            let template = configmap_template(client, namespace, &at, &because).await?;
            Ok((template, None))
        }
        None => Ok((Template::builtin(), None)),
    }
}

/// The template in key `at.key` of ConfigMap `namespace/at.name`;
/// `because` says who names it.
async fn configmap_template(
    client: &Client,
    namespace: &str,
    at: &ConfigMapKeyRef,
    because: &str,
) -> Result<Template, Error> {
    let origin = Origin::ConfigMap {
        namespace: namespace.to_string(),
        name: at.name.clone(),
        key: at.key.clone(),
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = match maps.get(&at.name).await {
        Ok(map) => map,
        Err(kube::Error::Api(status)) => {
            let message = if status.code == 404 {
                format!("ConfigMap {namespace}/{} not found ({because})", at.name)
            } else {
                status.message
            };
            return Err(Error::Template {
                origin: origin.to_string(),
                message,
            });
        }
        Err(other) => return Err(other_error(other)),
    };
    let data = map.data.unwrap_or_default();
    match data.get(&at.key) {
        Some(text) => Ok(Template {
            origin,
            text: text.clone(),
        }),
        None => {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            let has = if keys.is_empty() {
                "it has no data".to_string()
            } else {
                format!("it has {}", keys.join(", "))
            };
            Err(Error::Template {
                origin: origin.to_string(),
                message: format!(
                    "ConfigMap {namespace}/{} has no key {} ({has}; {because})",
                    at.name, at.key
                ),
            })
        }
    }
}

/// The draft: `template` rendered over `context`. A template that does not
/// parse or render is an error naming its origin and line.
pub fn render(template: &Template, context: &Context) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("cell", cell);
    let fail = |e: minijinja::Error| Error::Template {
        origin: template.origin.to_string(),
        message: describe(&e, &template.text),
    };
    let compiled = env
        .template_from_named_str("postmortem", &template.text)
        .map_err(fail)?;
    compiled.render(context).map_err(fail)
}

/// The `cell` filter: text that stays inside one cell of a Markdown table
/// (`|` escaped, line breaks as spaces).
fn cell(value: Value) -> String {
    let text = if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    };
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// `line 7: unknown filter "shout"`, and the line itself.
fn describe(error: &minijinja::Error, text: &str) -> String {
    let what = match (error.kind(), error.detail()) {
        (ErrorKind::UnknownFilter, Some(detail)) => unknown("filter", detail),
        (ErrorKind::UnknownTest, Some(detail)) => unknown("test", detail),
        (ErrorKind::UndefinedError, None) => {
            match error.range().and_then(|r| expression(text, r)) {
                Some(expression) => format!("undefined value: {expression}"),
                None => "undefined value".into(),
            }
        }
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    match error.line() {
        Some(line) => {
            let source = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
            format!("line {line}: {what}\n  {line} | {}", source.trim_end())
        }
        None => what,
    }
}

/// The dotted name the failing span is part of: `incident.foo.bar` where
/// the span is `.foo.bar`.
fn expression(text: &str, range: std::ops::Range<usize>) -> Option<&str> {
    let name = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let head = text.get(..range.start)?;
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| name(*c))
        .last()
        .map_or(range.start, |(at, _)| at);
    text.get(start..range.end)
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// `unknown filter "shout"` from minijinja's `filter shout is unknown`.
fn unknown(what: &str, detail: &str) -> String {
    detail
        .strip_prefix(what)
        .and_then(|rest| rest.strip_suffix("is unknown"))
        .map(|name| format!("unknown {what} {:?}", name.trim()))
        .unwrap_or_else(|| format!("unknown {what}: {detail}"))
}
