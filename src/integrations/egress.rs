//! The outbound HTTP clients: one per allow-list, resolving host names
//! through the allow-list (see `domain::egress`), never following a
//! redirect or going through a proxy, so the address checked is the
//! address connected to.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use crate::domain::egress::{Denied, Egress};

/// The resolver of every outbound client: resolves with the system's
/// resolver and keeps only the addresses the namespace's egress allows.
struct Resolver {
    egress: Arc<Egress>,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match egress.address(&host, a.ip()) {
                    Ok(()) => true,
                    Err(denied) => {
                        refused.get_or_insert(denied);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(denied)) => Err(Box::new(denied) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Distinct allow-lists whose clients are kept; past it they are built
/// again (a client is cheap next to a request, and lists are few).
const MAX_CLIENTS: usize = 64;

/// One HTTP client per allow-list, each resolving through [`Resolver`],
/// none following redirects or using a proxy.
pub struct Clients {
    configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    built: Mutex<HashMap<Arc<Egress>, reqwest::Client>>,
}

impl Clients {
    /// `configure` sets timeouts and the like; redirects, proxies and
    /// resolution are set here.
    pub fn new(configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder) -> Self {
        Self {
            configure,
            built: Mutex::default(),
        }
    }

    /// The client for `egress`, after the check before sending to `url`.
    pub fn for_url(
        &self,
        egress: &Arc<Egress>,
        url: &reqwest::Url,
    ) -> Result<reqwest::Client, Denied> {
        egress.check(url)?;
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = built.get(egress) {
            return Ok(client.clone());
        }
        if built.len() >= MAX_CLIENTS {
            built.clear();
        }
        let client = (self.configure)(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver {
                egress: egress.clone(),
            }))
            .build()
            .unwrap_or_default();
        built.insert(egress.clone(), client.clone());
        Ok(client)
    }
}
