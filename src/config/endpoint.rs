//! Where PBXes send their HTTP event reports (`--events.listen-address`,
//! `--events.advertise-url`): one receiver for every target, checked once, and what each
//! target's login registers there.

use super::error::{ConfigError, invalid};

/// Where PBXes send their HTTP event reports: what login and heartbeat register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsEndpoint {
    /// The receiver's port as registered.
    pub port: u16,
    /// `HOST:PORT` of `--events.advertise-url` (registered as an absolute URL).
    pub advertised: Option<String>,
    /// The advertised host when it is an IP address (the heartbeat's `ipaddr`).
    pub ipaddr: Option<String>,
}

impl Default for EventsEndpoint {
    fn default() -> Self {
        Self {
            port: 8260,
            advertised: None,
            ipaddr: None,
        }
    }
}

impl EventsEndpoint {
    /// From `--events.listen-address` and `--events.advertise-url`.
    pub fn new(listen: &str, advertise: Option<&str>) -> Result<Self, ConfigError> {
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| {
                invalid(
                    "--events.listen-address",
                    format!("{listen:?} has no port (use :8260 or HOST:PORT)"),
                )
            })?;
        let Some(url) = advertise.filter(|u| !u.trim().is_empty()) else {
            return Ok(Self {
                port,
                advertised: None,
                ipaddr: None,
            });
        };
        let field = "--events.advertise-url";
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            invalid(
                field,
                format!(
                    "{url:?} must be http://HOST:PORT (the PBX posts its reports in plain HTTP)"
                ),
            )
        })?;
        let hostport = rest.trim_end_matches('/');
        let (host, p) = hostport
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| invalid(field, format!("{url:?} must name a host and a port")))?;
        let advertised_port = p
            .parse::<u16>()
            .map_err(|_| invalid(field, format!("{url:?}: {p:?} is not a port")))?;
        if hostport.contains('/') {
            return Err(invalid(
                field,
                format!("{url:?} must not have a path (each PBX gets /events/<target>)"),
            ));
        }
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            port: advertised_port,
            advertised: Some(hostport.to_string()),
            ipaddr: ip
                .parse::<std::net::IpAddr>()
                .is_ok()
                .then(|| ip.to_string()),
        })
    }

    /// What `target` registers: `events/<target>` (each login adds its secret), relative or
    /// behind the advertised address; its reports may also come from `sources` (NAT).
    pub fn registration(
        &self,
        target: &str,
        sources: Vec<std::net::IpAddr>,
    ) -> Result<crate::pbx::EventsRegistration, ConfigError> {
        let path = format!("events/{target}");
        Ok(crate::pbx::EventsRegistration {
            port: self.port,
            url: match &self.advertised {
                Some(hp) => format!("{hp}/{path}"),
                None => path,
            },
            absolute: self.advertised.is_some(),
            ipaddr: self.ipaddr.clone(),
            source_addresses: sources,
        })
    }
}
