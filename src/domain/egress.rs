//! Where the operator may connect for a namespace: the `egress` allow-lists
//! of the policies that govern it, checked on the address actually
//! connected to.
//!
//! A team writes its Prometheus URL and its receivers' Secrets; the
//! operator connects with its own network identity. So every outbound
//! request of a namespace passes two checks:
//! - before it is sent ([`Egress::check`]): the URL's host and port against
//!   each policy's `hosts`, and, for an IP literal, the address itself;
//! - when its host name is resolved (`integrations::egress`, the only
//!   resolver of every outbound client): each address against the `cidrs` of
//!   the policies whose `hosts` did not match by name, and against the
//!   metadata default. Addresses that fail are never connected to; when
//!   none is left the request fails saying so.
//!
//! Redirects are off on every client and proxies are not used, so the
//! address checked is the address connected to. A URL must pass every
//! policy that sets `egress` (the baselines and the team's), so a team
//! can narrow the organisation's list but never widen it. Link-local and
//! cloud metadata addresses are refused unless every such policy names
//! them in a CIDR, even when no policy sets `egress`.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
};

use ipnet::IpNet;

/// How every error of a refused request begins, in statuses and logs.
pub const DENIED_PREFIX: &str = "egress denied: ";

/// Link-local and cloud metadata ranges, refused unless a CIDR names them.
const METADATA: [&str; 3] = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"];

/// One policy's allow-list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layer {
    /// The policy, as a message names it: `ClusterResponsePolicy org`.
    pub policy: String,
    hosts: Vec<HostPattern>,
    cidrs: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct HostPattern {
    /// `*.example.com`: any subdomain of `name`.
    subdomains: bool,
    /// Lowercase, without a trailing dot or IPv6 brackets.
    name: String,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (subdomains, rest) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let (name, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (address, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (Ipv6Addr::from_str(address).ok()?.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((name, port)) => (name.to_string(), Some(port.parse().ok()?)),
                None => (rest.to_string(), None),
            }
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        (!name.is_empty()).then_some(Self {
            subdomains,
            name,
            port,
        })
    }

    fn matches_name(&self, host: &str) -> bool {
        if self.subdomains {
            host.strip_suffix(self.name.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            host == self.name
        }
    }
}

/// The allow-lists that bound one namespace's outbound requests; empty
/// when no policy sets `egress` (then only the metadata default applies).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Egress {
    layers: Vec<Layer>,
}

/// Why a request was refused; names the host and the policy, never a
/// secret (receiver URLs come from Secrets: only their host is named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The URL has no host the operator could check.
    NoHost,
    /// No host entry of `policy` matches and it has no CIDRs.
    Host { host: String, policy: String },
    /// The host is listed by `policy` for other ports only.
    Port {
        host: String,
        port: u16,
        policy: String,
    },
    /// Every address the host resolved to lies outside `policy`'s CIDRs.
    Address {
        host: String,
        address: IpAddr,
        policy: String,
    },
    /// A link-local or metadata address no CIDR names.
    Metadata { host: String, address: IpAddr },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NoHost => write!(f, "the URL names no host"),
            Denied::Host { host, policy } => {
                write!(f, "host {host} is not in spec.egress of {policy}")
            }
            Denied::Port { host, port, policy } => write!(
                f,
                "port {port} of host {host} is not in spec.egress of {policy}"
            ),
            Denied::Address {
                host,
                address,
                policy,
            } => write!(
                f,
                "host {host} resolves to {address}, outside spec.egress of {policy}"
            ),
            Denied::Metadata { host, address } => write!(
                f,
                "host {host} is a link-local or cloud metadata address ({address}); only an egress CIDR that names it allows it"
            ),
        }
    }
}

impl std::error::Error for Denied {}

impl Egress {
    /// Adds one policy's `egress`. Entries that do not parse (the CRD
    /// rejects them; an old object may still hold one) allow nothing.
    pub fn add(&mut self, policy: String, egress: &crate::api::policy::Egress) {
        self.layers.push(Layer {
            policy,
            hosts: egress
                .hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h))
                .collect(),
            cidrs: egress
                .cidrs
                .iter()
                .filter_map(|c| IpNet::from_str(c.trim()).ok().map(|n| n.trunc()))
                .collect(),
        });
    }

    /// Whether any policy sets `egress`.
    pub fn is_bounded(&self) -> bool {
        !self.layers.is_empty()
    }

    /// The check before a request to `url` is sent: its host and port,
    /// and an IP literal's address (a name's addresses are checked when
    /// the resolver finds them).
    pub fn check(&self, url: &url::Url) -> Result<(), Denied> {
        let port = url.port_or_known_default().unwrap_or(0);
        let (host, literal) = match url.host() {
            None => return Err(Denied::NoHost),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            Some(url::Host::Domain(name)) => {
                (name.trim_end_matches('.').to_ascii_lowercase(), None)
            }
        };
        for layer in &self.layers {
            let named: Vec<&HostPattern> = layer
                .hosts
                .iter()
                .filter(|h| h.matches_name(&host))
                .collect();
            if named.iter().any(|h| h.port.is_none_or(|p| p == port)) {
                continue;
            }
            if !named.is_empty() {
                return Err(Denied::Port {
                    host,
                    port,
                    policy: layer.policy.clone(),
                });
            }
            if layer.cidrs.is_empty() {
                return Err(Denied::Host {
                    host,
                    policy: layer.policy.clone(),
                });
            }
        }
        match literal {
            Some(address) => self.address(&host, address),
            None => Ok(()),
        }
    }

    /// Whether `address`, which `host` resolved to (or is), may be
    /// connected to. A policy whose `hosts` name the host allows any of
    /// its addresses (but for the metadata default); the others need a
    /// CIDR that holds it.
    pub fn address(&self, host: &str, address: IpAddr) -> Result<(), Denied> {
        let address = address.to_canonical();
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let in_cidr = |layer: &Layer| layer.cidrs.iter().any(|c| c.contains(&address));
        if is_metadata(address) && !(self.is_bounded() && self.layers.iter().all(in_cidr)) {
            return Err(Denied::Metadata { host, address });
        }
        for layer in &self.layers {
            if layer.hosts.iter().any(|h| h.matches_name(&host)) || in_cidr(layer) {
                continue;
            }
            return Err(Denied::Address {
                host,
                address,
                policy: layer.policy.clone(),
            });
        }
        Ok(())
    }
}

fn is_metadata(address: IpAddr) -> bool {
    METADATA
        .iter()
        .filter_map(|c| IpNet::from_str(c).ok())
        .any(|net| net.contains(&address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(layers: &[(&str, &[&str], &[&str])]) -> Egress {
        let mut e = Egress::default();
        for (policy, hosts, cidrs) in layers {
            e.add(
                policy.to_string(),
                &crate::api::policy::Egress {
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
                },
            );
        }
        e
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("a URL")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn hosts_match_by_name_port_and_subdomain() {
        let e = egress(&[(
            "ClusterResponsePolicy org",
            &[
                "prometheus.monitoring.svc:9090",
                "*.slack.com",
                "Events.PagerDuty.com",
            ],
            &[],
        )]);
        assert!(
            e.check(&url("http://prometheus.monitoring.svc:9090/api"))
                .is_ok()
        );
        assert!(e.check(&url("https://hooks.slack.com/services/x")).is_ok());
        assert!(e.check(&url("https://a.b.slack.com/")).is_ok());
        assert!(e.check(&url("https://events.pagerduty.com./v2")).is_ok());
        assert_eq!(
            e.check(&url("https://slack.com/")),
            Err(Denied::Host {
                host: "slack.com".into(),
                policy: "ClusterResponsePolicy org".into()
            })
        );
        assert!(matches!(
            e.check(&url("https://evilslack.com/")),
            Err(Denied::Host { .. })
        ));
        assert_eq!(
            e.check(&url("http://prometheus.monitoring.svc:9091/")),
            Err(Denied::Port {
                host: "prometheus.monitoring.svc".into(),
                port: 9091,
                policy: "ClusterResponsePolicy org".into()
            })
        );
        // The default port of the scheme is the port.
        assert!(matches!(
            e.check(&url("http://prometheus.monitoring.svc/")),
            Err(Denied::Port { port: 80, .. })
        ));
    }

    #[test]
    fn ip_literals_are_checked_against_cidrs_before_sending() {
        let e = egress(&[(
            "ClusterResponsePolicy org",
            &["127.0.0.1:9090"],
            &["10.20.0.0/16"],
        )]);
        assert!(e.check(&url("http://127.0.0.1:9090/")).is_ok());
        assert!(e.check(&url("http://10.20.3.4:80/")).is_ok());
        assert_eq!(
            e.check(&url("http://10.21.0.1/")),
            Err(Denied::Address {
                host: "10.21.0.1".into(),
                address: ip("10.21.0.1"),
                policy: "ClusterResponsePolicy org".into()
            })
        );
        // An IPv4-mapped IPv6 literal is the IPv4 address.
        assert!(e.check(&url("http://[::ffff:10.20.0.9]/")).is_ok());
        assert!(e.check(&url("http://[::ffff:10.99.0.9]/")).is_err());
    }

    #[test]
    fn a_resolved_address_needs_a_cidr_unless_the_name_is_listed() {
        let e = egress(&[(
            "ClusterResponsePolicy org",
            &["prom.example"],
            &["10.20.0.0/16"],
        )]);
        // Listed by name: any address it resolves to (but metadata).
        assert!(e.address("prom.example", ip("192.0.2.1")).is_ok());
        // Not listed: only addresses in a CIDR, so DNS that points a name
        // at an internal service gains nothing.
        assert!(e.check(&url("http://other.example/")).is_ok());
        assert!(e.address("other.example", ip("10.20.1.1")).is_ok());
        assert!(matches!(
            e.address("other.example", ip("10.0.0.1")),
            Err(Denied::Address { .. })
        ));
    }

    #[test]
    fn metadata_addresses_are_refused_by_default_even_by_name() {
        for address in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            let unbounded = Egress::default();
            assert!(
                matches!(
                    unbounded.address("metadata.internal", ip(address)),
                    Err(Denied::Metadata { .. })
                ),
                "{address} allowed with no egress"
            );
            let by_name = egress(&[("ClusterResponsePolicy org", &["metadata.internal"], &[])]);
            assert!(
                by_name.address("metadata.internal", ip(address)).is_err(),
                "{address} allowed by a host entry"
            );
        }
        let literal = url("http://169.254.169.254/latest/meta-data/");
        assert!(matches!(
            Egress::default().check(&literal),
            Err(Denied::Metadata { .. })
        ));
        // Named by a CIDR of every policy that sets egress: allowed.
        let named = egress(&[("ClusterResponsePolicy org", &[], &["169.254.169.254/32"])]);
        assert!(named.check(&literal).is_ok());
        // Without egress, everything else stays reachable.
        assert!(
            Egress::default()
                .check(&url("http://10.0.0.1:9090/"))
                .is_ok()
        );
        assert!(
            Egress::default()
                .address("any.example", ip("10.0.0.1"))
                .is_ok()
        );
    }

    #[test]
    fn a_team_narrows_but_cannot_widen() {
        let org = ("ClusterResponsePolicy org", &["*.example.com"][..], &[][..]);
        let team_wider = (
            "ResponsePolicy shop/payments",
            &["*.example.com", "internal.corp"][..],
            &[][..],
        );
        let e = egress(&[org, team_wider]);
        assert_eq!(
            e.check(&url("http://internal.corp/")),
            Err(Denied::Host {
                host: "internal.corp".into(),
                policy: "ClusterResponsePolicy org".into()
            })
        );
        let team_narrower = (
            "ResponsePolicy shop/payments",
            &["prom.example.com"][..],
            &[][..],
        );
        let e = egress(&[org, team_narrower]);
        assert!(e.check(&url("http://prom.example.com/")).is_ok());
        assert_eq!(
            e.check(&url("http://other.example.com/")),
            Err(Denied::Host {
                host: "other.example.com".into(),
                policy: "ResponsePolicy shop/payments".into()
            })
        );
    }

    #[test]
    fn an_unparsable_entry_allows_nothing() {
        let e = egress(&[(
            "ClusterResponsePolicy org",
            &["bad host:port:x", "[zz]"],
            &["10.0.0.0/99"],
        )]);
        assert!(e.check(&url("http://bad/")).is_err());
        assert!(e.address("bad", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn a_denial_names_the_host_not_the_url() {
        let e = egress(&[("ClusterResponsePolicy org", &["ok.example"], &[])]);
        let denied = e
            .check(&url("https://hooks.example/services/T000/B000/XXXXsecret"))
            .expect_err("denied");
        let message = denied.to_string();
        assert!(message.contains("hooks.example"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
