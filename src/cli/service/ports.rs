//! `-p`/`--publish` values as Docker's `PortOpt` reads them: the short
//! `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges allowed) and the long
//! `published=8080,target=3000,protocol=udp,mode=host`. No published port
//! (or 0) is sent as none, as the docker CLI sends it: the daemon assigns one.

use super::flags::parse_uint;
use super::networks::long_syntax;
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
        published_port: (published > 0).then_some(published),
        publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
        ..Default::default()
    }
}

/// `-p` as Docker's `PortOpt`: `[PUBLISHED:]TARGET[/PROTOCOL]` (ranges
/// allowed) or `published=8080,target=3000,protocol=udp,mode=host`.
pub fn parse_port(value: &str) -> Result<Vec<EndpointPortConfig>, String> {
    if long_syntax(value) {
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
            "published" => p.published_port = Some(port_number(&v)?).filter(|&n| n > 0),
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

    fn json(value: &str) -> Result<serde_json::Value, String> {
        parse_port(value).map(|p| serde_json::to_value(p).unwrap())
    }

    #[test]
    fn ports_parse_as_dockers_port_opt() {
        use serde_json::json;
        assert_eq!(
            json("8080:3000").unwrap(),
            json!([{"Protocol":"tcp","TargetPort":3000,"PublishedPort":8080,"PublishMode":"ingress"}])
        );
        assert_eq!(
            json("8080:3000/udp").unwrap(),
            json!([{"Protocol":"udp","TargetPort":3000,"PublishedPort":8080,"PublishMode":"ingress"}])
        );
        assert_eq!(
            json("53/udp").unwrap(),
            json!([{"Protocol":"udp","TargetPort":53,"PublishMode":"ingress"}]),
            "no published port: none sent, as Go's omitempty; the daemon assigns one"
        );
        assert_eq!(
            json("published=5353,target=53,protocol=udp,mode=host").unwrap(),
            json!([{"Protocol":"udp","TargetPort":53,"PublishedPort":5353,"PublishMode":"host"}])
        );
        assert_eq!(
            json("target=3000").unwrap(),
            json!([{"Protocol":"tcp","TargetPort":3000,"PublishMode":"ingress"}])
        );
        assert_eq!(
            json("Published=80,Target=3000,Protocol=UDP").unwrap(),
            json!([{"Protocol":"udp","TargetPort":3000,"PublishedPort":80,"PublishMode":"ingress"}]),
            "keys and values in any case"
        );
        let p = parse_port("8080-8081:80-81").unwrap();
        assert_eq!(p[1].published_port, Some(8081));
        assert_eq!(p[1].target_port, Some(81));
        let p = parse_port("8080-8082:80").unwrap();
        assert_eq!(p.len(), 3, "a range of published ports to one target");
    }

    #[test]
    fn bad_ports_are_refused_in_dockers_words() {
        for (value, words) in [
            ("1.2.3.4:80:80", "hostip is not supported"),
            ("published=80", "missing mandatory field \"target\""),
            ("80/xyz", "Invalid proto: xyz"),
            ("70000:80", "Invalid hostPort: 70000"),
            ("80:x", "Invalid containerPort: x"),
            (
                "8080-8081:80-82",
                "invalid ranges specified for container and host Ports: 80-82 and 8080-8081",
            ),
            ("target=3000,protocol=icmp", "invalid protocol value icmp"),
            ("target=3000,mode=local", "invalid publish mode value local"),
            ("target=3000,colour=red", "invalid field key colour"),
            (
                "target=70000",
                "strconv.ParseUint: parsing \"70000\": value out of range",
            ),
        ] {
            assert_eq!(parse_port(value), Err(words.to_string()), "{value}");
        }
    }
}
