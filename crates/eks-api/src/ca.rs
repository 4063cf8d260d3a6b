//! Each cluster's certificate authority, made when the cluster is created: DescribeCluster returns
//! it (base64 PEM, as EKS does) and the cluster's Kubernetes API serves a certificate it signs.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct ClusterCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClusterCa {
    pub fn generate(cluster: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kubernetes");
        dn.push(
            DnType::OrganizationalUnitName,
            format!("localfargate cluster {cluster}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// `certificateAuthority.data`: the PEM, base64-encoded.
    pub fn data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_base64_of_a_pem_certificate() {
        let ca = ClusterCa::generate("c1").unwrap();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca.data())
            .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem.contains("PRIVATE KEY"));
    }
}
