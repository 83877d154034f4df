//! Published ports across services, in the transaction that stores a
//! service: a port another service publishes is refused in swarmkit's
//! words, naming that service; an ingress port given without a published
//! port gets one, the lowest free in 30000-32767 (or the one it had).
//! Host-mode ports may share a number across services (the node checks
//! them where the tasks land). No I/O: the caller passes the other services.

use crate::model::{ApiError, PortConfig, Service, ServiceSpec};

/// Checks `spec`'s published ports against `others` (every service but the
/// one `spec` is for), then sets the published port of each ingress port
/// without one, keeping a port `previous` (the spec it replaces) was
/// assigned for the same target and protocol.
pub(super) fn publish(
    spec: &mut ServiceSpec,
    previous: Option<&ServiceSpec>,
    others: &[Service],
) -> Result<(), ApiError> {
    let mut by_name: Vec<&Service> = others.iter().collect();
    by_name.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for mine in &spec.ports {
        check_free(mine, &by_name)?;
    }
    for i in 0..spec.ports.len() {
        let port = &spec.ports[i];
        if !port.is_ingress() || port.published.is_some() {
            continue;
        }
        let taken = |n: u16| {
            let same = |p: &PortConfig| p.protocol == port.protocol && p.published == Some(n);
            spec.ports.iter().any(same) || others.iter().flat_map(|s| &s.spec.ports).any(same)
        };
        let again = previous.into_iter().flat_map(|p| &p.ports).find(|p| {
            p.is_ingress()
                && p.protocol == port.protocol
                && p.target == port.target
                && p.published
                    .is_some_and(|n| PortConfig::DYNAMIC.contains(&n) && !taken(n))
        });
        let published = match again {
            Some(p) => p.published,
            None => PortConfig::DYNAMIC.clone().find(|&n| !taken(n)),
        };
        let Some(published) = published else {
            return Err(ApiError::FailedPrecondition(format!(
                "no port is free in 30000-32767 for target port {}/{}: every one is published; give a published port (-p PUBLISHED:{})",
                port.target, port.protocol, port.target
            )));
        };
        spec.ports[i].published = Some(published);
    }
    Ok(())
}

/// A published port of ours against the other services', as swarmkit's
/// `checkPortConflicts`: an ingress port may share its number (and
/// protocol) with no other port; host-mode ports may share it with each
/// other. The first holder by name is named.
fn check_free(mine: &PortConfig, others: &[&Service]) -> Result<(), ApiError> {
    let Some(number) = mine.published else {
        return Ok(());
    };
    for other in others {
        let theirs = other
            .spec
            .ports
            .iter()
            .filter(|p| p.published == Some(number) && p.protocol == mine.protocol);
        for p in theirs {
            let how = match (p.is_ingress(), mine.is_ingress()) {
                (true, _) => "an ingress port",
                (false, true) => "a host-published port",
                (false, false) => continue,
            };
            return Err(ApiError::InvalidArgument(format!(
                "port '{number}' is already in use by service '{}' ({}) as {how}; publish another port, or remove it from '{}' first",
                other.spec.name, other.id, other.spec.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceMode, TaskTemplate, UpdateConfig};

    fn port(published: Option<u16>, target: u16, protocol: &str, mode: &str) -> PortConfig {
        PortConfig::test(published, target, protocol, mode)
    }

    fn spec(name: &str, ports: Vec<PortConfig>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 1 },
            task: TaskTemplate::default(),
            update: UpdateConfig::default(),
            rollback: UpdateConfig::default(),
            endpoint_mode: "vip".into(),
            ports,
        }
    }

    fn service(id: &str, name: &str, ports: Vec<PortConfig>) -> Service {
        Service {
            id: id.into(),
            spec: spec(name, ports),
            previous_spec: None,
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
            update_status: None,
            last_batch_ms: 0,
            virtual_ips: Vec::new(),
        }
    }

    fn published(s: &ServiceSpec) -> Vec<Option<u16>> {
        s.ports.iter().map(|p| p.published).collect()
    }

    fn refusal(mut s: ServiceSpec, others: &[Service]) -> String {
        publish(&mut s, None, others).unwrap_err().to_string()
    }

    #[test]
    fn conflicts_name_the_service_that_holds_the_port() {
        let web = service(
            "abc123",
            "web",
            vec![
                port(Some(8080), 3000, "tcp", "ingress"),
                port(Some(9000), 3000, "tcp", "host"),
            ],
        );
        let others = [web];
        assert_eq!(
            refusal(spec("api", vec![port(Some(8080), 80, "tcp", "ingress")]), &others),
            "port '8080' is already in use by service 'web' (abc123) as an ingress port; publish another port, or remove it from 'web' first"
        );
        assert!(
            refusal(
                spec("api", vec![port(Some(8080), 80, "tcp", "host")]),
                &others
            )
            .starts_with(
                "port '8080' is already in use by service 'web' (abc123) as an ingress port"
            ),
            "a host port cannot take a port the mesh holds on every node"
        );
        assert!(refusal(
            spec("api", vec![port(Some(9000), 80, "tcp", "ingress")]),
            &others
        )
        .starts_with(
            "port '9000' is already in use by service 'web' (abc123) as a host-published port"
        ),);
        let mut fine = spec(
            "api",
            vec![
                port(Some(8080), 80, "udp", "ingress"),
                port(Some(9000), 80, "tcp", "host"),
                port(Some(8081), 80, "tcp", "ingress"),
            ],
        );
        publish(&mut fine, None, &others).unwrap();
        assert_eq!(
            published(&fine),
            [Some(8080), Some(9000), Some(8081)],
            "another protocol, host beside host, another number"
        );
    }

    #[test]
    fn ingress_ports_without_a_number_get_the_lowest_free_from_30000() {
        let others = [
            service("a1", "a", vec![port(Some(30000), 80, "tcp", "ingress")]),
            service("b1", "b", vec![port(Some(30001), 80, "tcp", "host")]),
            service("c1", "c", vec![port(Some(30002), 80, "udp", "ingress")]),
        ];
        let mut s = spec(
            "web",
            vec![
                port(None, 3000, "tcp", "ingress"),
                port(Some(30003), 4000, "tcp", "ingress"),
                port(None, 3001, "tcp", "ingress"),
                port(None, 53, "udp", "ingress"),
                port(None, 22, "tcp", "host"),
            ],
        );
        publish(&mut s, None, &others).unwrap();
        assert_eq!(
            published(&s),
            [Some(30002), Some(30003), Some(30004), Some(30000), None],
            "per protocol, skipping every service's ports and its own; host mode left to the node"
        );
        let first = spec("x", vec![port(None, 80, "tcp", "ingress")]);
        let mut alone = first.clone();
        publish(&mut alone, None, &[]).unwrap();
        assert_eq!(published(&alone), [Some(30000)]);
    }

    #[test]
    fn an_update_keeps_the_port_it_was_given() {
        let before = spec(
            "web",
            vec![
                port(Some(30005), 3000, "tcp", "ingress"),
                port(Some(8080), 4000, "tcp", "ingress"),
            ],
        );
        let mut next = spec(
            "web",
            vec![
                port(None, 3000, "tcp", "ingress"),
                port(None, 4000, "tcp", "ingress"),
            ],
        );
        publish(&mut next, Some(&before), &[]).unwrap();
        assert_eq!(
            published(&next),
            [Some(30005), Some(30000)],
            "an assigned port is kept; an explicit one outside the range is not reused"
        );
        let taken = [service(
            "o1",
            "other",
            vec![port(Some(30005), 1, "tcp", "ingress")],
        )];
        let mut next = spec("web", vec![port(None, 3000, "tcp", "ingress")]);
        publish(&mut next, Some(&before), &taken).unwrap();
        assert_eq!(
            published(&next),
            [Some(30000)],
            "unless another took it since"
        );
    }

    #[test]
    fn a_full_range_is_refused() {
        let all: Vec<PortConfig> = PortConfig::DYNAMIC
            .clone()
            .map(|n| port(Some(n), 80, "tcp", "ingress"))
            .collect();
        let others = [service("f1", "full", all)];
        assert_eq!(
            refusal(spec("web", vec![port(None, 3000, "tcp", "ingress")]), &others),
            "no port is free in 30000-32767 for target port 3000/tcp: every one is published; give a published port (-p PUBLISHED:3000)"
        );
        let mut udp = spec("web", vec![port(None, 53, "udp", "ingress")]);
        publish(&mut udp, None, &others).unwrap();
        assert_eq!(published(&udp), [Some(30000)]);
    }
}
