//! Published ports: what a spec may ask for, in Docker's words where Docker
//! has them (the manager then checks them against the other services and
//! gives an ingress port without a published port one from 30000-32767).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use super::super::ApiError;
use super::{PortConfig, ServiceSpec};

impl PortConfig {
    /// A port as tests write it.
    #[cfg(test)]
    pub fn test(published: Option<u16>, target: u16, protocol: &str, mode: &str) -> PortConfig {
        PortConfig {
            protocol: protocol.into(),
            target,
            published,
            mode: mode.into(),
        }
    }

    /// Where an ingress port given without a published port gets one, as
    /// swarmkit's port allocator assigns them.
    pub const DYNAMIC: RangeInclusive<u16> = 30000..=32767;

    /// Through the routing mesh (on every node), not `mode=host`.
    pub fn is_ingress(&self) -> bool {
        self.mode != "host"
    }

    /// The port as Docker keys it for conflicts: `8080/tcp`.
    pub fn published_key(&self) -> Option<String> {
        self.published.map(|p| format!("{p}/{}", self.protocol))
    }

    /// The refusal of a target port out of 1..=65535.
    pub fn bad_target(port: i64) -> ApiError {
        ApiError::InvalidArgument(format!(
            "invalid target port {port}: give the port the task listens on, from 1 to 65535"
        ))
    }

    /// The refusal of a published port out of 1..=65535 (0 or none: assigned).
    pub fn bad_published(port: i64) -> ApiError {
        ApiError::InvalidArgument(format!(
            "invalid published port {port}: give a port from 1 to 65535, or leave it out to have one assigned from 30000-32767"
        ))
    }

    /// `tcp` and `udp`; sctp and anything else refused, naming the port.
    pub fn check_protocol(protocol: &str, target: i64) -> Result<(), ApiError> {
        match protocol {
            "tcp" | "udp" => Ok(()),
            "sctp" => Err(ApiError::InvalidArgument(format!(
                "protocol sctp (port {target}/sctp) is not supported: swarmnet publishes tcp and udp ports; use protocol=tcp or protocol=udp"
            ))),
            other => Err(ApiError::InvalidArgument(format!(
                "invalid protocol {other:?} for port {target}: use tcp or udp"
            ))),
        }
    }

    /// `ingress` or `host`.
    pub fn check_mode(mode: &str, target: i64) -> Result<(), ApiError> {
        match mode {
            "ingress" | "host" => Ok(()),
            other => Err(ApiError::InvalidArgument(format!(
                "invalid publish mode {other:?} for port {target}: use ingress or host"
            ))),
        }
    }

    /// One port on its own: its numbers, protocol and mode.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.target == 0 {
            return Err(Self::bad_target(0));
        }
        if self.published == Some(0) {
            return Err(Self::bad_published(0));
        }
        Self::check_protocol(&self.protocol, self.target.into())?;
        Self::check_mode(&self.mode, self.target.into())
    }
}

/// A spec's ports: each one, dnsrr without the routing mesh, and no
/// published port (with its protocol) twice.
pub(super) fn check_ports(spec: &ServiceSpec) -> Result<(), ApiError> {
    let mut published = BTreeSet::new();
    for p in &spec.ports {
        p.check()?;
        if spec.endpoint_mode == "dnsrr" && p.is_ingress() {
            return Err(ApiError::InvalidArgument(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode; publish it with mode=host, or use --endpoint-mode vip".into(),
            ));
        }
        if let Some(key) = p.published_key() {
            if !published.insert(key.clone()) {
                return Err(ApiError::InvalidArgument(format!(
                    "EndpointSpec: duplicate published ports provided: {key} is published twice"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceMode, TaskTemplate, UpdateConfig, HOST_IMAGE};

    fn port(published: Option<u16>, target: u16, protocol: &str, mode: &str) -> PortConfig {
        PortConfig::test(published, target, protocol, mode)
    }

    fn spec(endpoint_mode: &str, ports: Vec<PortConfig>) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 1 },
            task: TaskTemplate {
                image: HOST_IMAGE.into(),
                args: vec!["swarmnet".into(), "whoami".into()],
                ..Default::default()
            },
            update: UpdateConfig::default(),
            rollback: UpdateConfig::default(),
            endpoint_mode: endpoint_mode.into(),
            ports,
        }
    }

    fn refusal(s: ServiceSpec) -> String {
        match s.check() {
            Err(ApiError::InvalidArgument(sentence)) => sentence,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn good_ports_pass() {
        let good = spec(
            "vip",
            vec![
                port(Some(8080), 3000, "tcp", "ingress"),
                port(Some(8080), 3000, "udp", "ingress"),
                port(None, 3000, "tcp", "ingress"),
                port(None, 3000, "tcp", "ingress"),
                port(Some(5353), 53, "udp", "host"),
                port(Some(65535), 65535, "tcp", "host"),
                port(Some(1), 1, "tcp", "ingress"),
            ],
        );
        assert_eq!(good.check(), Ok(()));
        let dnsrr = spec("dnsrr", vec![port(Some(5353), 53, "udp", "host")]);
        assert_eq!(
            dnsrr.check(),
            Ok(()),
            "dnsrr with host-mode ports is Docker's"
        );
    }

    #[test]
    fn bad_ports_are_refused_in_one_sentence() {
        let one = |p: PortConfig| refusal(spec("vip", vec![p]));
        assert_eq!(
            one(port(Some(8080), 0, "tcp", "ingress")),
            "invalid target port 0: give the port the task listens on, from 1 to 65535"
        );
        assert_eq!(
            one(port(Some(0), 3000, "tcp", "ingress")),
            "invalid published port 0: give a port from 1 to 65535, or leave it out to have one assigned from 30000-32767"
        );
        assert_eq!(
            one(port(Some(8080), 3000, "sctp", "ingress")),
            "protocol sctp (port 3000/sctp) is not supported: swarmnet publishes tcp and udp ports; use protocol=tcp or protocol=udp"
        );
        assert_eq!(
            one(port(Some(8080), 3000, "icmp", "ingress")),
            "invalid protocol \"icmp\" for port 3000: use tcp or udp"
        );
        assert_eq!(
            one(port(Some(8080), 3000, "tcp", "local")),
            "invalid publish mode \"local\" for port 3000: use ingress or host"
        );
        assert_eq!(
            refusal(spec("dnsrr", vec![port(Some(8080), 3000, "tcp", "ingress")])),
            "EndpointSpec: port published with ingress mode can't be used with dnsrr mode; publish it with mode=host, or use --endpoint-mode vip"
        );
        assert!(
            refusal(spec("dnsrr", vec![port(None, 3000, "tcp", "ingress")]))
                .starts_with("EndpointSpec: port published with ingress mode"),
            "as Docker: any ingress port, published or not"
        );
        let twice = vec![
            port(Some(8080), 3000, "tcp", "ingress"),
            port(Some(8080), 4000, "tcp", "host"),
        ];
        assert_eq!(
            refusal(spec("vip", twice)),
            "EndpointSpec: duplicate published ports provided: 8080/tcp is published twice"
        );
    }

    #[test]
    fn keys_and_modes() {
        assert_eq!(
            port(Some(8080), 3000, "udp", "host").published_key(),
            Some("8080/udp".into())
        );
        assert_eq!(port(None, 3000, "tcp", "ingress").published_key(), None);
        assert!(port(None, 3000, "tcp", "ingress").is_ingress());
        assert!(!port(None, 3000, "tcp", "host").is_ingress());
        assert_eq!(PortConfig::DYNAMIC, 30000..=32767);
    }
}
