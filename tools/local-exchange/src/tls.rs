//! Throw-away TLS material for the simulator, generated at every start-up.
//!
//! Clients reach the simulator over `https://` / `wss://` like the real exchange,
//! trusting a CA that exists only for this run: its private key never leaves memory,
//! so trusting the written CA certificate cannot be abused after the process exits.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use kalshi_proto::tls::ALPN_HTTP11;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Names every local client uses without configuration.
const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub struct TlsMaterial {
    /// PEM of the CA that signed the server certificate; hand it to clients.
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

/// Generates a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and
/// `extra_hosts` (IP literals, optionally bracketed, become IP SANs; anything else a
/// DNS SAN).
pub fn generate(extra_hosts: &[String]) -> anyhow::Result<TlsMaterial> {
    let now = time::OffsetDateTime::now_utc();
    // A day of slack covers clients in containers or VMs whose clocks lag; a year
    // outlives any simulator run, since the material is regenerated at start-up.
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(365);

    let ca_key = KeyPair::generate().context("generating CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        // Unique per run: a client holding a previous run's CA then fails with a plain
        // "unknown issuer" instead of a confusing signature error on a same-named CA.
        format!("kmm local-exchange CA {} {:08x}", now.unix_timestamp(), rand::random::<u32>()),
    );
    // Path length 0: this CA can sign the server certificate and nothing that signs.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key).context("self-signing CA")?;

    let mut leaf_params = CertificateParams::default();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    leaf_params.subject_alt_names = subject_alt_names(extra_hosts)?;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf_key = KeyPair::generate().context("generating server key")?;
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .context("signing server certificate")?;

    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut server_config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key_der)
        .context("building TLS server config")?;
    server_config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];

    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(server_config),
    })
}

fn subject_alt_names(extra_hosts: &[String]) -> anyhow::Result<Vec<SanType>> {
    let mut seen = HashSet::new();
    let mut sans = Vec::new();
    let hosts = DEFAULT_HOSTS.iter().copied().chain(extra_hosts.iter().map(String::as_str));
    for host in hosts {
        let host = host.trim();
        // "[::1]" is how IPv6 hosts appear in URLs; the SAN wants the bare address.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            continue;
        }
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                if host.contains([':', '/']) || host.chars().any(char::is_whitespace) {
                    bail!(
                        "TLS host {host:?} is neither an IP address nor a DNS name \
                         (omit ports and schemes)"
                    );
                }
                let name = host.to_ascii_lowercase();
                SanType::DnsName(
                    name.as_str()
                        .try_into()
                        .with_context(|| format!("TLS host {host:?} is not a valid DNS name"))?,
                )
            }
        };
        if seen.insert(san.clone()) {
            sans.push(san);
        }
    }
    Ok(sans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalshi_proto::tls::client_config;
    use rustls::pki_types::ServerName;
    use rustls::ClientConfig;
    use std::io;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// Serves one echo-style exchange per accepted connection until the test ends.
    async fn spawn_server(material: &TlsMaterial) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(material.server_config.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Failed handshakes are the point of some tests; just drop them.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4];
                    if tls.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                        let _ = tls.write_all(b"pong").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    }

    async fn ping(addr: std::net::SocketAddr, config: Arc<ClientConfig>, name: &str) -> io::Result<Option<Vec<u8>>> {
        let tcp = TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        Ok(alpn)
    }

    #[tokio::test]
    async fn handshake_for_every_default_and_extra_name() {
        let extra = vec!["sim.internal".to_string(), "10.1.2.3".to_string(), "[fd00::7]".to_string()];
        let material = generate(&extra).unwrap();
        assert!(material.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let addr = spawn_server(&material).await;
        let config = client_config(&material.ca_pem).unwrap();
        // The certificate check uses the name the client asks for, not the address it
        // dialled, so IPv6 and foreign names can be checked over IPv4 loopback.
        for name in ["localhost", "127.0.0.1", "::1", "sim.internal", "10.1.2.3", "fd00::7"] {
            let alpn = ping(addr, config.clone(), name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(alpn.as_deref(), Some(ALPN_HTTP11), "{name}");
        }
    }

    #[tokio::test]
    async fn name_not_in_certificate_is_rejected() {
        let material = generate(&[]).unwrap();
        let addr = spawn_server(&material).await;
        let config = client_config(&material.ca_pem).unwrap();
        let err = ping(addr, config, "example.com").await.unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn client_trusting_another_ca_fails() {
        let material = generate(&[]).unwrap();
        let other = generate(&[]).unwrap();
        assert_ne!(material.ca_pem, other.ca_pem);
        let addr = spawn_server(&material).await;
        let config = client_config(&other.ca_pem).unwrap();
        let err = ping(addr, config, "localhost").await.unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn bad_inputs() {
        assert!(generate(&["localhost:8443".to_string()]).is_err());
        assert!(generate(&["https://x".to_string()]).is_err());
        // Duplicates and case variants of the defaults are harmless.
        assert!(generate(&["LOCALHOST".to_string(), "127.0.0.1".to_string(), " ".to_string()]).is_ok());
    }

    #[test]
    fn sans_are_deduplicated() {
        let sans = subject_alt_names(&["LocalHost".into(), "[::1]".into(), "a.b".into()]).unwrap();
        assert_eq!(sans.len(), 4);
    }
}
