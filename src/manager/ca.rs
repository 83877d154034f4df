//! The cluster CA made at `swarm init`: it signs every node's certificate, in
//! which the node's ID (CN) and role (OU, Docker's `swarm-manager` /
//! `swarm-worker`) are written by the manager, never taken from the request.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::model::NodeRole;

/// The name every manager certificate carries; clients verify the manager by it.
pub use crate::proto::client::MANAGER_SERVER_NAME;
const CA_NAME: &str = "swarm-ca";
/// Node certificates last 90 days, as Docker's default.
const NODE_CERT_DAYS: i64 = 90;
const CA_CERT_DAYS: i64 = 20 * 365;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("certificate is not a swarm node certificate: {0}")]
    NotANodeCert(String),
}

/// The CA, able to sign node certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

/// A node's certificate and key, PEM encoded.
#[derive(Debug, Clone)]
pub struct NodeCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed CA for the cluster `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<Ca, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(CA_CERT_DAYS);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Ca {
            cert,
            key,
            cert_pem,
        })
    }

    /// The CA as stored in the manager's store.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert,
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Signs a node's CSR; the subject and role are ours, not the CSR's.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: NodeRole,
    ) -> Result<String, CaError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        csr.params = node_params(node_id, role, false);
        Ok(csr.signed_by(&self.cert, &self.key)?.pem())
    }

    /// A key and certificate for the node made here: the leader, the one
    /// manager that serves the API, so the only one named `swarm-manager`.
    pub fn issue(&self, node_id: &str, role: NodeRole) -> Result<NodeCert, CaError> {
        let key = KeyPair::generate()?;
        let cert = node_params(node_id, role, true).signed_by(&key, &self.cert, &self.key)?;
        Ok(NodeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// `serves_api`: the certificate may answer as `swarm-manager`. Joined
/// managers do not serve (the leader holds the store), so a joined or removed
/// manager cannot pose as the leader to agents and joining nodes.
fn node_params(node_id: &str, role: NodeRole, serves_api: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, node_id);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.cert_ou());
    let name = match (role, serves_api) {
        (NodeRole::Manager, true) => MANAGER_SERVER_NAME,
        (NodeRole::Manager, false) => "swarm-manager-member",
        (NodeRole::Worker, _) => "swarm-worker",
    };
    params.subject_alt_names = vec![SanType::DnsName(
        name.try_into().expect("static DNS name is valid"),
    )];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(NODE_CERT_DAYS);
    params
}

/// A key and a CSR for a joining node; the CSR's subject is a placeholder the CA replaces.
pub fn new_csr() -> Result<(String, String), CaError> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::default().serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// The node ID and role written in a certificate (DER).
pub fn identity(cert_der: &[u8]) -> Result<(String, NodeRole), CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| CaError::NotANodeCert(e.to_string()))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|v| v.as_str().ok())
        .ok_or_else(|| CaError::NotANodeCert("no common name".into()))?;
    let role = subject
        .iter_organizational_unit()
        .next()
        .and_then(|v| v.as_str().ok())
        .and_then(NodeRole::from_cert_ou)
        .ok_or_else(|| CaError::NotANodeCert("no swarm role".into()))?;
    Ok((cn.to_string(), role))
}

/// DER of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_csr_carries_the_role_the_ca_chose() {
        let ca = Ca::generate("cluster1").unwrap();
        let (csr, _key) = new_csr().unwrap();
        let cert = ca.sign_csr(&csr, "node1", NodeRole::Worker).unwrap();
        let der = pem_to_der(&cert).unwrap();
        assert_eq!(
            identity(&der).unwrap(),
            ("node1".to_string(), NodeRole::Worker)
        );
    }

    #[test]
    fn a_reloaded_ca_signs_certificates_its_original_verifies() {
        let ca = Ca::generate("cluster1").unwrap();
        let reloaded = Ca::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        let issued = reloaded.issue("node2", NodeRole::Manager).unwrap();
        let der = pem_to_der(&issued.cert_pem).unwrap();
        assert_eq!(identity(&der).unwrap().1, NodeRole::Manager);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_der = pem_to_der(ca.cert_pem()).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .unwrap();
    }

    fn dns_names(pem: &str) -> Vec<String> {
        let der = pem_to_der(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_the_leader_is_named_swarm_manager() {
        let ca = Ca::generate("cluster1").unwrap();
        let leader = ca.issue("n1", NodeRole::Manager).unwrap();
        assert_eq!(dns_names(&leader.cert_pem), vec![MANAGER_SERVER_NAME]);
        let (csr, _key) = new_csr().unwrap();
        let joined = ca.sign_csr(&csr, "n2", NodeRole::Manager).unwrap();
        assert!(!dns_names(&joined).contains(&MANAGER_SERVER_NAME.to_string()));
    }

    #[test]
    fn a_certificate_without_a_role_is_refused() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(identity(cert.der()).is_err());
    }
}
