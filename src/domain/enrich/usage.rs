//! CPU and memory summed over a Deployment's pods, from PodMetrics
//! samples, with ratios to the containers' requests and limits.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pods::PodView;
use crate::{api::incident::Usage, kinds::Container};

/// One pod's sampled usage, per container: (CPU cores, memory bytes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSample {
    /// (container, CPU cores, memory bytes); a pod has one or a few, so a
    /// list (a map would cost ten times the memory, for every sampled pod).
    /// Container names repeat across pods: one shared copy each.
    pub containers: Box<[(std::sync::Arc<str>, f64, f64)]>,
    pub timestamp: Option<Timestamp>,
}

/// One namespace's samples, filed by a 128-bit fingerprint of the pod's
/// name ([`crate::kinds::fingerprint`]) rather than the name itself: every
/// pod of every namespace an open incident links is sampled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSamples(HashMap<u128, PodSample>);

impl PodSamples {
    pub fn get(&self, pod: &str) -> Option<&PodSample> {
        self.0.get(&crate::kinds::fingerprint(pod))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, PodSample)> for PodSamples {
    fn from_iter<I: IntoIterator<Item = (&'a str, PodSample)>>(pods: I) -> Self {
        let mut map: HashMap<u128, PodSample> = pods
            .into_iter()
            .map(|(name, sample)| (crate::kinds::fingerprint(name), sample))
            .collect();
        map.shrink_to_fit();
        PodSamples(map)
    }
}

/// Parses a Kubernetes quantity (`250m`, `1.5`, `12345n`, `128Mi`, `1G`,
/// `1e3`) into a plain number. Returns `None` for anything else.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * factor;
    value.is_finite().then_some(value)
}

pub fn format_cpu(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round() as i64)
}

pub fn format_memory(bytes: f64) -> String {
    let mib = bytes / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{}Mi", mib.round() as i64)
    } else {
        format!("{}Ki", (bytes / 1024.0).round() as i64)
    }
}

fn format_ratio(used: f64, of: f64) -> Option<String> {
    (of > 0.0).then(|| format!("{:.2}", used / of))
}

/// A container's CPU (cores) and memory (bytes) requests and limits, as
/// parsed once when its Pod changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requests {
    /// One shared copy per distinct container name.
    pub name: std::sync::Arc<str>,
    /// CPU request, CPU limit, memory request, memory limit. Single
    /// precision (seven digits) is more than a ratio shown to two needs,
    /// at half the memory of every cached container.
    pub values: [Option<f32>; 4],
}

impl Requests {
    pub fn of(container: &Container) -> Requests {
        let resources = container.resources.as_ref();
        let get = |limits: bool, key: &str| {
            resources
                .and_then(|r| {
                    if limits {
                        r.limits.as_ref()
                    } else {
                        r.requests.as_ref()
                    }
                })
                .and_then(|m| m.get(key))
                .and_then(|q| parse_quantity(&q.0))
                .map(|v| v as f32)
        };
        Requests {
            name: crate::kinds::shared(&container.name),
            values: [
                get(false, "cpu"),
                get(true, "cpu"),
                get(false, "memory"),
                get(true, "memory"),
            ],
        }
    }
}

/// Sums the samples of `pods`. A ratio is given only when every sampled
/// container sets the request or limit it compares with.
pub fn usage(pods: &[&PodView], samples: &PodSamples) -> Option<Usage> {
    let mut cpu = 0.0;
    let mut memory = 0.0;
    let mut totals = [0.0f64; 4]; // cpu request, cpu limit, memory request, memory limit
    let mut complete = [true; 4];
    let mut sampled = false;
    let mut newest: Option<Timestamp> = None;
    for pod in pods {
        let Some(sample) = samples.get(&pod.name) else {
            continue;
        };
        newest = newest.max(sample.timestamp);
        for (container, container_cpu, container_memory) in &sample.containers {
            sampled = true;
            cpu += container_cpu;
            memory += container_memory;
            let requests = pod.containers.iter().find(|c| c.name == *container);
            for (i, value) in requests
                .map(|r| r.values)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match value {
                    Some(v) => totals[i] += f64::from(v),
                    None => complete[i] = false,
                }
            }
        }
    }
    if !sampled {
        return None;
    }
    let ratio = |i: usize, used: f64| {
        if complete[i] {
            format_ratio(used, totals[i])
        } else {
            None
        }
    };
    Some(Usage {
        cpu: Some(format_cpu(cpu)),
        memory: Some(format_memory(memory)),
        cpu_request_ratio: ratio(0, cpu),
        cpu_limit_ratio: ratio(1, cpu),
        memory_request_ratio: ratio(2, memory),
        memory_limit_ratio: ratio(3, memory),
        sampled_at: newest.map(Time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enrich::testing::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert!((parse_quantity("12345678n").unwrap_or_default() - 0.012345678).abs() < 1e-12);
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("5 Mi"), None);
    }

    #[test]
    fn sums_pods_and_gives_ratios_to_requests_and_limits() {
        let pods = [
            pod_with_resources("a", "100m", "500m", "128Mi", "256Mi"),
            pod_with_resources("b", "100m", "500m", "128Mi", "256Mi"),
        ];
        let views: Vec<PodView> = pods.iter().map(PodView::of).collect();
        let refs: Vec<&PodView> = views.iter().collect();
        let samples: PodSamples = [
            ("a", sample("app", 0.05, 100.0 * 1024.0 * 1024.0)),
            ("b", sample("app", 0.15, 156.0 * 1024.0 * 1024.0)),
        ]
        .into_iter()
        .collect();
        let usage = usage(&refs, &samples).expect("sampled");
        assert_eq!(usage.cpu.as_deref(), Some("200m"));
        assert_eq!(usage.memory.as_deref(), Some("256Mi"));
        assert_eq!(usage.cpu_request_ratio.as_deref(), Some("1.00"));
        assert_eq!(usage.cpu_limit_ratio.as_deref(), Some("0.20"));
        assert_eq!(usage.memory_request_ratio.as_deref(), Some("1.00"));
        assert_eq!(usage.memory_limit_ratio.as_deref(), Some("0.50"));
    }

    #[test]
    fn no_samples_no_usage() {
        let pods = [pod_with_resources("a", "100m", "500m", "128Mi", "256Mi")];
        let views: Vec<PodView> = pods.iter().map(PodView::of).collect();
        let refs: Vec<&PodView> = views.iter().collect();
        assert_eq!(usage(&refs, &PodSamples::default()), None);
    }
}
