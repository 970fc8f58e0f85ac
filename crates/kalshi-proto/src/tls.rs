//! TLS as a client of a Kalshi venue sets it up: HTTP/1.1 over ALPN (WebSocket upgrades exist
//! only there, and the REST side needs nothing more), trusting exactly the CA it is given when
//! the venue is a local one. The venue's own certificates are the local exchange's business.

use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// WebSocket upgrades only exist in HTTP/1.1, and the REST side needs nothing more.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

pub fn write_ca(path: &Path, ca_pem: &str) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, ca_pem)
}

/// A client config that trusts only the CA(s) in `ca_pem` (not the system roots, so
/// a test cannot silently reach a real server), offering HTTP/1.1 via ALPN.
pub fn client_config(ca_pem: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("reading CA PEM")?;
    if certs.is_empty() {
        bail!("CA PEM contains no \"-----BEGIN CERTIFICATE-----\" block");
    }
    for cert in certs {
        roots.add(cert).context("adding CA certificate")?;
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_config_needs_a_certificate() {
        assert!(client_config("").is_err());
        assert!(client_config("not pem").is_err());
    }

    #[test]
    fn write_ca_creates_parent_dirs() {
        let dir = std::env::temp_dir().join(format!("kp-tls-test-{}", std::process::id()));
        let path = dir.join("nested").join("ca.pem");
        write_ca(&path, "pem").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "pem");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
