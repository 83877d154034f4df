//! `-p`/`--publish` values as Docker's `PortOpt` reads them: the short
//! `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges allowed) and the long
//! `published=8080,target=3000,protocol=udp,mode=host`.

use super::flags::parse_uint;
use crate::api::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
};

fn port_number(s: &str) -> Result<i64, String> {
    match parse_uint(s) {
        Ok(n) if n <= u16::MAX as u64 => Ok(n as i64),
        Ok(_) => Err(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        )),
        Err(e) => Err(e),
    }
}

/// A port range "8080" or "8080-8081" as (first, last).
fn port_range(s: &str, what: &str) -> Result<(i64, i64), String> {
    let bad = || format!("Invalid {what}: {s}");
    let (first, last) = s.split_once('-').unwrap_or((s, s));
    let first = port_number(first).map_err(|_| bad())?;
    let last = port_number(last).map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok((first, last))
}

fn port(
    published: i64,
    target: i64,
    protocol: EndpointPortConfigProtocolEnum,
) -> EndpointPortConfig {
    EndpointPortConfig {
        protocol: Some(protocol),
        target_port: Some(target),
        published_port: Some(published),
        publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
        ..Default::default()
    }
}

/// `-p` as Docker's `PortOpt`: `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges
/// allowed) or `published=8080,target=3000,protocol=udp,mode=host`.
pub fn parse_port(value: &str) -> Result<Vec<EndpointPortConfig>, String> {
    if value.contains('=') {
        return long_port(value).map(|p| vec![p]);
    }
    let (ports, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let protocol = match proto.to_lowercase().as_str() {
        "tcp" => EndpointPortConfigProtocolEnum::TCP,
        "udp" => EndpointPortConfigProtocolEnum::UDP,
        "sctp" => EndpointPortConfigProtocolEnum::SCTP,
        _ => return Err(format!("Invalid proto: {proto}")),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (published, target) = match parts[..] {
        [target] => ("", target),
        [published, target] => (published, target),
        _ => return Err("hostip is not supported".into()),
    };
    let (t1, t2) = port_range(target, "containerPort")?;
    if published.is_empty() {
        return Ok((t1..=t2).map(|t| port(0, t, protocol)).collect());
    }
    let (p1, p2) = port_range(published, "hostPort")?;
    if t1 == t2 {
        return Ok((p1..=p2).map(|p| port(p, t1, protocol)).collect());
    }
    if p2 - p1 != t2 - t1 {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {target} and {published}"
        ));
    }
    Ok((t1..=t2).map(|t| port(p1 + t - t1, t, protocol)).collect())
}

fn long_port(value: &str) -> Result<EndpointPortConfig, String> {
    let mut p = port(0, 0, EndpointPortConfigProtocolEnum::TCP);
    for field in value.split(',') {
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| format!("invalid field {field}"))?;
        let v = v.to_lowercase();
        match key.to_lowercase().as_str() {
            "protocol" => {
                p.protocol = Some(match v.as_str() {
                    "tcp" => EndpointPortConfigProtocolEnum::TCP,
                    "udp" => EndpointPortConfigProtocolEnum::UDP,
                    "sctp" => EndpointPortConfigProtocolEnum::SCTP,
                    _ => return Err(format!("invalid protocol value {v}")),
                })
            }
            "mode" => {
                p.publish_mode = Some(match v.as_str() {
                    "ingress" => EndpointPortConfigPublishModeEnum::INGRESS,
                    "host" => EndpointPortConfigPublishModeEnum::HOST,
                    _ => return Err(format!("invalid publish mode value {v}")),
                })
            }
            "target" => p.target_port = Some(port_number(&v)?),
            "published" => p.published_port = Some(port_number(&v)?),
            other => return Err(format!("invalid field key {other}")),
        }
    }
    if p.target_port == Some(0) {
        return Err("missing mandatory field \"target\"".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_dockers_port_opt() {
        let p = parse_port("8080:3000").unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!([{"Protocol":"tcp","TargetPort":3000,"PublishedPort":8080,"PublishMode":"ingress"}])
        );
        let p = parse_port("53/udp").unwrap();
        assert_eq!(
            (p[0].published_port, p[0].protocol),
            (Some(0), Some(EndpointPortConfigProtocolEnum::UDP))
        );
        let p = parse_port("8080-8081:80-81").unwrap();
        assert_eq!(p[1].published_port, Some(8081));
        assert_eq!(p[1].target_port, Some(81));
        let p = parse_port("published=80,target=3000,mode=host").unwrap();
        assert_eq!(
            p[0].publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(
            parse_port("1.2.3.4:80:80"),
            Err("hostip is not supported".into())
        );
        assert!(parse_port("published=80").is_err());
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("70000:80").is_err());
    }
}
