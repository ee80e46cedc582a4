//! `kubectl incident timeline`: every entry, oldest first.

use crate::api::Incident;

/// `kubectl incident timeline`: every entry, oldest first, with its date.
pub fn timeline(incident: &Incident) -> String {
    let mut out = String::new();
    let entries = incident
        .status
        .as_ref()
        .map(|s| s.timeline.as_slice())
        .unwrap_or_default();
    if entries.is_empty() {
        return "(no timeline yet: the operator has not seen this incident)\n".into();
    }
    let width = entries.iter().map(|e| e.type_.len()).max().unwrap_or(0);
    for e in entries {
        out.push_str(&format!(
            "{}  {:<width$}  {}\n",
            e.time.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
            e.type_,
            e.message.replace('\n', " ")
        ));
    }
    out
}
