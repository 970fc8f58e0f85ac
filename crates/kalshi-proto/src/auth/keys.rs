//! Key kinds, public keys, account keys: parsing PEMs, generating keys and ids, writing a
//! private key where only its owner can read it.

use super::verify::verify_pss_any_salt;
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    RsaPkcs1,
    RsaPkcs8,
    Ed25519,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::RsaPkcs1 => "rsa-pkcs1",
            KeyKind::RsaPkcs8 => "rsa-pkcs8",
            KeyKind::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KeyKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "rsa-pkcs1" => Ok(KeyKind::RsaPkcs1),
            "rsa-pkcs8" => Ok(KeyKind::RsaPkcs8),
            "ed25519" => Ok(KeyKind::Ed25519),
            other => bail!("unknown key kind {other:?}: expected rsa-pkcs1, rsa-pkcs8 or ed25519"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses a public key as a client would upload it (`POST /api_keys`): SPKI
    /// (`BEGIN PUBLIC KEY`, RSA or Ed25519) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> anyhow::Result<PublicKey> {
        let pem = pem.trim();
        if let Ok(key) = RsaPublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Rsa(key));
        }
        if let Ok(key) = RsaPublicKey::from_pkcs1_pem(pem) {
            return Ok(PublicKey::Rsa(key));
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(key));
        }
        bail!(
            "unsupported public key: expected an RSA (\"-----BEGIN PUBLIC KEY-----\" or \
             \"-----BEGIN RSA PUBLIC KEY-----\", at most {RSA_MAX_BITS} bits) or Ed25519 \
             (\"-----BEGIN PUBLIC KEY-----\") PEM"
        )
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`), the form both OpenSSL and the SDKs read.
    pub fn to_pem(&self) -> anyhow::Result<String> {
        let pem = match self {
            PublicKey::Rsa(key) => key.to_public_key_pem(LineEnding::LF)?,
            PublicKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF)?,
        };
        Ok(pem)
    }

    /// Never panics: every malformed or foreign signature is simply `false`.
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(key) => verify_pss_any_salt(key, message, signature),
            PublicKey::Ed25519(key) => match ed25519_dalek::Signature::from_slice(signature) {
                // Strict verification rejects malleated signatures and small-order keys;
                // every mainstream signer (OpenSSL, libsodium, dalek) passes it.
                Ok(sig) => key.verify_strict(message, &sig).is_ok(),
                Err(_) => false,
            },
        }
    }
}

/// A freshly generated API key, as `POST /api_keys/generate` hands it out.
#[derive(Clone)]
pub struct AccountKey {
    pub key_id: String,
    pub kind: KeyKind,
    pub private_pem: String,
    pub public: PublicKey,
}

// Hand-written so that logging an AccountKey can never leak the private key.
impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("private_pem", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// Random UUID v4 text, the shape of Kalshi key ids (clients may validate it).
pub fn random_key_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Generates a key pair with the OS RNG. `rsa_bits` is ignored for Ed25519.
pub fn generate_account_key(kind: KeyKind, rsa_bits: usize) -> anyhow::Result<AccountKey> {
    let (private_pem, public) = match kind {
        KeyKind::RsaPkcs1 | KeyKind::RsaPkcs8 => {
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&rsa_bits) {
                bail!(
                    "RSA key size must be between {RSA_MIN_BITS} and {RSA_MAX_BITS} bits, \
                     got {rsa_bits}"
                );
            }
            let key = RsaPrivateKey::new(&mut OsRng, rsa_bits).context("generating RSA key")?;
            let pem = if kind == KeyKind::RsaPkcs1 {
                key.to_pkcs1_pem(LineEnding::LF)?
            } else {
                key.to_pkcs8_pem(LineEnding::LF)?
            };
            (pem.to_string(), PublicKey::Rsa(key.to_public_key()))
        }
        KeyKind::Ed25519 => {
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            // PKCS#8 v1 (no embedded public key), the shape `openssl genpkey` writes:
            // older OpenSSL-based loaders in client SDKs reject the v2 form.
            let bytes = ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            };
            let pem = bytes.to_pkcs8_pem(LineEnding::LF)?;
            (pem.to_string(), PublicKey::Ed25519(key.verifying_key()))
        }
    };
    Ok(AccountKey {
        key_id: random_key_id(),
        kind,
        private_pem,
        public,
    })
}

/// Writes a private key readable only by its owner, since it grants trading access.
/// `name` is a file name, not a path.
pub fn write_private_key(dir: &Path, name: &str, pem: &str) -> io::Result<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("key file name {name:?} must be a plain file name"),
        ));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    // `mode` only applies when the file is created; tighten a pre-existing file
    // before the secret goes in.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(path)
}
