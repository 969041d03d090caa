//! The reverse proxies whose `X-Forwarded-For` is believed.

use std::net::IpAddr;

use ipnet::IpNet;

use super::invalid::Invalid;

/// The proxies in front of Tessera, each an address (`10.0.0.10`) or a range (`10.0.0.0/8`,
/// `fd00::/8`): behind a Kubernetes ingress the controller's pod addresses change with every
/// restart, while the range they come from does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, Invalid> {
        entries
            .iter()
            .map(|entry| parse_entry(entry.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the proxies. An IPv4 peer seen on an IPv6 socket
    /// (`::ffff:10.0.0.1`) is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|range| range.contains(&ip))
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, Invalid> {
    let range = match entry.parse::<IpAddr>() {
        Ok(address) => IpNet::from(address.to_canonical()),
        Err(_) => entry.parse::<IpNet>().map_err(|_| {
            Invalid(format!(
                "{entry:?} is neither an IP address nor a range such as 10.0.0.0/8"
            ))
        })?,
    };
    if range.prefix_len() == 0 {
        return Err(Invalid(format!(
            "{entry:?} trusts every address, so any client could choose the address it is \
             throttled by"
        )));
    }
    Ok(range.trunc())
}

impl<'de> serde::Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        TrustedProxies::parse(&entries).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    #[test]
    fn addresses_and_ranges_of_both_families_are_trusted_and_nothing_else() {
        let proxies = TrustedProxies::parse(&["10.1.0.0/16", "192.0.2.7", "fd00::/8", "::1"])
            .expect("proxies");
        for trusted in ["10.1.0.1", "10.1.255.254", "192.0.2.7", "fd12::3", "::1"] {
            assert!(proxies.contains(ip(trusted)), "{trusted}");
        }
        for outside in ["10.2.0.1", "192.0.2.8", "fe80::1", "::2", "8.8.8.8"] {
            assert!(!proxies.contains(ip(outside)), "{outside}");
        }
        assert!(
            proxies.contains(ip("::ffff:10.1.2.3")),
            "an IPv4 peer on an IPv6 socket is its IPv4 address"
        );
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn a_range_with_host_bits_is_its_network_and_every_address_is_refused() {
        let proxies = TrustedProxies::parse(&["10.1.2.3/16"]).expect("a range");
        assert!(proxies.contains(ip("10.1.200.1")));
        for refused in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/33",
            "proxy.local",
            "10.0.0.0/",
        ] {
            let error = TrustedProxies::parse(&[refused]).expect_err(refused);
            assert!(error.0.contains(refused), "{refused}: {error}");
        }
    }
}
