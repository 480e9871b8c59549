use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::Client;

/// HTTP clients bound to distinct loopback source addresses
/// (127.1.0.1, 127.1.0.2, ...), one per virtual user group.
pub struct Crowd {
    clients: Vec<Client>,
}

impl Crowd {
    pub fn new(size: usize) -> anyhow::Result<Crowd> {
        let clients = (0..size.max(1))
            .map(|i| {
                let i = u32::try_from(i).unwrap_or(u32::MAX) + 1;
                let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
                Client::builder()
                    .local_address(IpAddr::V4(address))
                    .timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(64)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Crowd { clients })
    }

    /// The client of virtual user `n` (users share addresses round-robin).
    pub fn client(&self, n: usize) -> &Client {
        &self.clients[n % self.clients.len()]
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }
}
