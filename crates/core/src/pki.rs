//! Each cluster's certificate authority, made when the cluster is created: DescribeCluster returns
//! it (base64 PEM, as EKS does) and the cluster's Kubernetes API serves a certificate it signs.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub struct ClusterCa {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA's parameters: the same for a cluster every time, so the CA can sign again from its key.
fn ca_params(cluster: &str) -> CertificateParams {
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
    params
}

impl ClusterCa {
    pub fn generate(cluster: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = ca_params(cluster).self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// `certificateAuthority.data`: the PEM, base64-encoded.
    pub fn data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_pem)
    }

    /// A serving certificate and key (PEM) for the cluster's API on `host`, signed by the CA whose
    /// key is `ca_key_pem`.
    pub fn serving_cert(
        cluster: &str,
        ca_key_pem: &str,
        host: &str,
    ) -> Result<(String, String), rcgen::Error> {
        Self::serving_cert_for(cluster, ca_key_pem, host, &[])
    }

    /// [`serving_cert`](Self::serving_cert) also valid for `extra_ips` (the `kubernetes`
    /// Service's ClusterIP, which in-cluster clients connect to).
    pub fn serving_cert_for(
        cluster: &str,
        ca_key_pem: &str,
        host: &str,
        extra_ips: &[IpAddr],
    ) -> Result<(String, String), rcgen::Error> {
        let issuer = Issuer::new(ca_params(cluster), KeyPair::from_pem(ca_key_pem)?);
        let mut names = vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        let host_ip = host.parse::<IpAddr>().ok();
        if host_ip.is_none() {
            names.push(host.to_string());
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        if let Some(ip) = host_ip {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        for ip in extra_ips {
            if Some(*ip) != host_ip {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The certificate authority that signs the HTTPS certificates of the local Application Load
/// Balancers (Ingresses of class `alb`), standing in for ACM. Pure: where it is kept (the data
/// directory, for clients to trust with `curl --cacert`) is the ingress controller's business.
pub struct LoadBalancerCa {
    pub cert_pem: String,
    key_pem: String,
}

fn load_balancer_ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localfargate load balancers");
    dn.push(DnType::OrganizationName, "localfargate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl LoadBalancerCa {
    /// A new CA.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = load_balancer_ca_params().self_signed(&key)?;
        Ok(LoadBalancerCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CA kept earlier, from its certificate and key (PEM); the key must parse.
    pub fn from_pem(cert_pem: String, key_pem: String) -> Result<Self, rcgen::Error> {
        KeyPair::from_pem(&key_pem)?;
        Ok(LoadBalancerCa { cert_pem, key_pem })
    }

    /// Its private key (PEM), for keeping it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate and key (PEM) for `hosts` (DNS names, `*.` wildcards, or IP
    /// addresses), `localhost` and 127.0.0.1.
    pub fn issue(&self, hosts: &[String]) -> Result<(String, String), rcgen::Error> {
        let issuer = Issuer::new(load_balancer_ca_params(), KeyPair::from_pem(&self.key_pem)?);
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().map_or("localhost", String::as_str),
        );
        let mut sans = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.as_str().try_into()?),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
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
        let (cert, key) = ClusterCa::serving_cert("c1", &ca.key_pem, "127.0.0.1").unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
    }

    #[test]
    fn the_load_balancer_ca_issues_for_hosts_and_comes_back_from_its_pem() {
        let ca = LoadBalancerCa::generate().unwrap();
        let again =
            LoadBalancerCa::from_pem(ca.cert_pem.clone(), ca.key_pem().to_string()).unwrap();
        assert_eq!(ca.cert_pem, again.cert_pem);
        assert!(LoadBalancerCa::from_pem(ca.cert_pem.clone(), "not a key".into()).is_err());
        let (cert, key) = ca
            .issue(&[
                "shop.example.com".into(),
                "*.example.org".into(),
                "10.0.0.1".into(),
            ])
            .unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
    }
}
