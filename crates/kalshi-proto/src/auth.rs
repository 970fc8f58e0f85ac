//! Kalshi request authentication, client and server side.
//!
//! A request carries three headers: the API key id, a millisecond Unix timestamp and a
//! base64 signature over `timestamp + METHOD + path`, where `path` starts at the API root
//! (`/trade-api/v2/...` or `/trade-api/ws/v2`) and never includes the query string.
//! Kalshi keys are RSA (signed with RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt);
//! newer SDKs also accept Ed25519 keys, which sign the same bytes.
//!
//! The [`Signer`] is what a client (kmm, tests) uses; the [`Verifier`] is what the
//! simulator uses on every REST request and WebSocket upgrade.
//!
//! Server-side note: verify against the *raw* request path as the client sent it
//! (`Uri::path()`, not percent-decoded), and when routes are nested (e.g. axum `nest`)
//! use the original URI, because the client signed the full path from the API root.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
// rsa 0.9 and ed25519-dalek 2 share pkcs8 0.10, so these traits serve both key types.
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

pub const HEADER_KEY: &str = "KALSHI-ACCESS-KEY";
pub const HEADER_TIMESTAMP: &str = "KALSHI-ACCESS-TIMESTAMP";
pub const HEADER_SIGNATURE: &str = "KALSHI-ACCESS-SIGNATURE";

/// Salt length Kalshi's SDKs use (`PSS.DIGEST_LENGTH`); we sign with it so our
/// signatures are byte-for-byte the kind the real exchange receives.
pub const PSS_SALT_LEN: usize = 32;

/// Below this, 32-byte-salt PSS does not fit (and the key would be unsafe anyway);
/// above the upper bound rsa's public-key parser refuses the key, so a key we
/// generate could not be registered from its PEM.
const RSA_MIN_BITS: usize = 1024;
const RSA_MAX_BITS: usize = 4096;

/// The longest signature we bother decoding: base64 of a 4096-bit RSA signature is
/// 684 characters. Bounding it keeps hostile headers from costing allocation time.
const MAX_SIGNATURE_B64_LEN: usize = 1024;

const ACCEPTED_FORMATS: &str = "accepted formats: \
     RSA PKCS#1 PEM (\"-----BEGIN RSA PRIVATE KEY-----\"), \
     RSA PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\") or \
     Ed25519 PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\")";

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
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
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

enum SigningKey {
    // ring's RSA-PSS (salt = digest length, Kalshi's 32 bytes) is blinded and several times
    // faster than rsa's: a 2048-bit signature in ~0.3 ms against ~2 ms, which decides whether
    // a trading client's presigned stock keeps up with its orders.
    RsaRing(ring::signature::RsaKeyPair, ring::rand::SystemRandom),
    // For keys ring refuses (it wants at least 2048 bits). Blinded so the private-key
    // operation's timing does not depend on the key (rsa 0.9 is otherwise exposed to the
    // Marvin timing attack).
    Rsa(rsa::pss::BlindedSigningKey<Sha256>),
    Ed25519(ed25519_dalek::SigningKey),
}

/// Client-side request signer.
pub struct Signer {
    key: SigningKey,
    kind: KeyKind,
    public: PublicKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads any of the three private-key formats Kalshi users hold; the type is
    /// detected from the PEM, as the official SDKs do.
    pub fn from_pem(pem: &str) -> anyhow::Result<Signer> {
        // Keys pasted from files or env vars often carry stray surrounding whitespace.
        let pem = pem.trim();
        if let Ok(key) = RsaPrivateKey::from_pkcs1_pem(pem) {
            return Self::from_rsa(key, KeyKind::RsaPkcs1);
        }
        if let Ok(key) = RsaPrivateKey::from_pkcs8_pem(pem) {
            return Self::from_rsa(key, KeyKind::RsaPkcs8);
        }
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Signer {
                public: PublicKey::Ed25519(key.verifying_key()),
                key: SigningKey::Ed25519(key),
                kind: KeyKind::Ed25519,
            });
        }
        // Name the format we saw (the label only, never the key body) to make the
        // common mistakes (encrypted, OpenSSH, EC keys) obvious.
        let seen = pem
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .map(|label| format!("got a PEM labelled {label:?}, which is not a supported or valid key"))
            .unwrap_or_else(|| "input is not PEM".to_string());
        Err(anyhow!("unsupported private key ({seen}); {ACCEPTED_FORMATS}"))
    }

    fn from_rsa(key: RsaPrivateKey, kind: KeyKind) -> anyhow::Result<Signer> {
        let bits = key.n().bits();
        if bits < RSA_MIN_BITS {
            bail!("RSA key is {bits} bits; at least {RSA_MIN_BITS} are required");
        }
        let public = PublicKey::Rsa(key.to_public_key());
        let fast = key
            .to_pkcs1_der()
            .ok()
            .and_then(|der| ring::signature::RsaKeyPair::from_der(der.as_bytes()).ok());
        let key = match fast {
            Some(pair) => SigningKey::RsaRing(pair, ring::rand::SystemRandom::new()),
            None => SigningKey::Rsa(rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(key, PSS_SALT_LEN)),
        };
        Ok(Signer { key, kind, public })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Base64 signature for a request. `path` may include a query string; it is cut
    /// at '?' because Kalshi signs the path only.
    pub fn sign(&self, timestamp_ms: i64, method: &str, path: &str) -> String {
        let message = signing_message(&timestamp_ms.to_string(), &method.to_ascii_uppercase(), path);
        let signature = match &self.key {
            SigningKey::RsaRing(pair, rng) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(&ring::signature::RSA_PSS_SHA256, rng, &message, &mut signature)
                    // Cannot fail: the buffer is the modulus length and the key was accepted.
                    .expect("RSA-PSS signing with a validated key");
                signature
            }
            SigningKey::Rsa(key) => key
                .try_sign_with_rng(&mut OsRng, &message)
                // Cannot fail: the modulus size is checked at load so a 32-byte salt
                // fits, and the key was validated by the PEM parser.
                .expect("RSA-PSS signing with a validated key")
                .to_vec(),
            SigningKey::Ed25519(key) => key.sign(&message).to_bytes().to_vec(),
        };
        BASE64.encode(signature)
    }

    pub fn headers(&self, key_id: &str, timestamp_ms: i64, method: &str, path: &str) -> [(&'static str, String); 3] {
        [
            (HEADER_KEY, key_id.to_string()),
            (HEADER_TIMESTAMP, timestamp_ms.to_string()),
            (HEADER_SIGNATURE, self.sign(timestamp_ms, method, path)),
        ]
    }
}

fn present<'a>(value: Option<&'a str>, header: &'static str) -> Result<&'a str, AuthError> {
    value.filter(|v| !v.is_empty()).ok_or(AuthError::MissingHeader(header))
}

fn signing_message(timestamp: &str, method: &str, path: &str) -> Vec<u8> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut m = Vec::with_capacity(timestamp.len() + method.len() + path.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.extend_from_slice(method.as_bytes());
    m.extend_from_slice(path.as_bytes());
    m
}

/// Why a request was refused. Messages tell the client what to fix; none of them
/// echoes signatures or key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("unknown API key: KALSHI-ACCESS-KEY does not name a registered key")]
    UnknownKey,
    #[error("KALSHI-ACCESS-TIMESTAMP must be the Unix time in milliseconds as a decimal integer")]
    BadTimestamp,
    #[error(
        "KALSHI-ACCESS-TIMESTAMP is {skew_ms} ms off the server clock (positive: ahead); \
         send the current Unix time in milliseconds"
    )]
    TimestampOutsideWindow { skew_ms: i64 },
    #[error("KALSHI-ACCESS-SIGNATURE is not valid base64 (standard alphabet, with padding)")]
    BadSignatureEncoding,
    #[error(
        "KALSHI-ACCESS-SIGNATURE does not verify: sign timestamp + uppercase method + path \
         (from /trade-api, without the query string) with RSA-PSS/SHA-256 or Ed25519"
    )]
    BadSignature,
}

/// Server-side check of request signatures against registered public keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: HashMap<String, (u32, PublicKey)>,
    window_ms: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Kalshi does not document a REST tolerance; 30 s matches its FIX logon.
    pub const DEFAULT_WINDOW_MS: u64 = 30_000;

    pub fn new() -> Self {
        Verifier {
            keys: HashMap::new(),
            window_ms: Self::DEFAULT_WINDOW_MS,
        }
    }

    /// Maximum allowed |timestamp - now| in milliseconds.
    pub fn with_window_ms(mut self, window_ms: u64) -> Self {
        self.window_ms = window_ms;
        self
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Registers (or replaces) a key; returns what was registered under that id before.
    pub fn add_key(&mut self, key_id: impl Into<String>, account: u32, public: PublicKey) -> Option<(u32, PublicKey)> {
        self.keys.insert(key_id.into(), (account, public))
    }

    pub fn remove_key(&mut self, key_id: &str) -> Option<(u32, PublicKey)> {
        self.keys.remove(key_id)
    }

    /// The account that owns `key_id`, if registered.
    pub fn account_of(&self, key_id: &str) -> Option<u32> {
        self.keys.get(key_id).map(|(account, _)| *account)
    }

    /// Checks one request's auth headers; returns the account the key belongs to.
    /// Header values are passed raw; absent or empty ones count as missing.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        timestamp: Option<&str>,
        signature_b64: Option<&str>,
        method: &str,
        path_with_or_without_query: &str,
        now_ms: i64,
    ) -> Result<u32, AuthError> {
        let key_id = present(key_id, HEADER_KEY)?;
        let timestamp = present(timestamp, HEADER_TIMESTAMP)?;
        let signature_b64 = present(signature_b64, HEADER_SIGNATURE)?;

        let (account, public) = self.keys.get(key_id).ok_or(AuthError::UnknownKey)?;

        // Digits only: `i64::from_str` would also take "+123"/"-5", which no
        // client should send.
        if !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::BadTimestamp);
        }
        let ts: i64 = timestamp.parse().map_err(|_| AuthError::BadTimestamp)?;
        let skew_ms = ts.saturating_sub(now_ms);
        if skew_ms.unsigned_abs() > self.window_ms {
            return Err(AuthError::TimestampOutsideWindow { skew_ms });
        }

        if signature_b64.len() > MAX_SIGNATURE_B64_LEN {
            return Err(AuthError::BadSignature);
        }
        let signature = BASE64.decode(signature_b64).map_err(|_| AuthError::BadSignatureEncoding)?;

        // The client signed the timestamp text it sent, so use it verbatim rather
        // than re-formatting the parsed number (they differ for e.g. leading zeros).
        let message = signing_message(timestamp, method, path_with_or_without_query);
        if public.verify(&message, &signature) {
            Ok(*account)
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// RSASSA-PSS-VERIFY (RFC 8017 8.1.2 / 9.1.2) with SHA-256 and MGF1-SHA-256 that
/// accepts any salt length. rsa 0.9 only verifies one fixed salt length, but clients
/// differ (Kalshi SDKs use 32, others use the maximum or "auto"), and the salt length
/// is recoverable from the encoding itself.
///
/// Everything here is public data, so there is no need for constant-time code.
fn verify_pss_any_salt(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    const H_LEN: usize = 32;

    let k = key.size();
    if signature.len() != k {
        return false;
    }
    let s = BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return false;
    }
    let m = s.modpow(key.e(), key.n());

    let mod_bits = key.n().bits();
    if mod_bits < 2 {
        return false;
    }
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    // I2OSP(m, emLen): when emBits is a multiple of 8, emLen is k - 1 and a
    // genuine signature's representative fits; anything longer is forged.
    let m_bytes = m.to_bytes_be();
    if m_bytes.len() > em_len {
        return false;
    }
    let mut em = vec![0u8; em_len];
    em[em_len - m_bytes.len()..].copy_from_slice(&m_bytes);

    // Smallest encoding allowed: empty salt.
    if em_len < H_LEN + 2 {
        return false;
    }
    if em[em_len - 1] != 0xbc {
        return false;
    }
    let db_len = em_len - H_LEN - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..H_LEN];

    // Bits of the top byte beyond emBits must be zero.
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8 >> unused_bits;
    if masked_db[0] & !top_mask != 0 {
        return false;
    }

    let mut db = masked_db.to_vec();
    mgf1_sha256_xor(h, &mut db);
    db[0] &= top_mask;

    // DB = PS (zeros) || 0x01 || salt; the separator's position gives sLen.
    let Some(sep) = db.iter().position(|&b| b != 0) else {
        return false;
    };
    if db[sep] != 0x01 {
        return false;
    }
    let salt = &db[sep + 1..];

    let m_hash = Sha256::digest(message);
    let mut hasher = Sha256::new();
    hasher.update([0u8; 8]);
    hasher.update(m_hash);
    hasher.update(salt);
    hasher.finalize().as_slice() == h
}

/// out ^= MGF1-SHA256(seed, out.len())
fn mgf1_sha256_xor(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(32)) {
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        let block = hasher.finalize();
        for (o, b) in chunk.iter_mut().zip(block.iter()) {
            *o ^= b;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const NOW: i64 = 1_703_123_456_789;
    const PATH: &str = "/trade-api/v2/portfolio/orders";

    // RSA key generation dominates test time; every test shares these.
    fn rsa_key() -> &'static AccountKey {
        static KEY: OnceLock<AccountKey> = OnceLock::new();
        KEY.get_or_init(|| generate_account_key(KeyKind::RsaPkcs1, 2048).expect("keygen"))
    }

    fn rsa_private() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs1_pem(&rsa_key().private_pem).expect("pkcs1 pem")
    }

    fn ed_key() -> &'static AccountKey {
        static KEY: OnceLock<AccountKey> = OnceLock::new();
        KEY.get_or_init(|| generate_account_key(KeyKind::Ed25519, 0).expect("keygen"))
    }

    fn verifier_for(key: &AccountKey, account: u32) -> Verifier {
        let mut v = Verifier::new();
        v.add_key(key.key_id.clone(), account, key.public.clone());
        v
    }

    fn verify_with(v: &Verifier, key: &AccountKey, sig: &str, ts: i64, method: &str, path: &str, now: i64) -> Result<u32, AuthError> {
        v.verify(Some(&key.key_id), Some(&ts.to_string()), Some(sig), method, path, now)
    }

    fn pss_sig(salt_len: usize, message: &[u8]) -> Vec<u8> {
        let key = rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(rsa_private(), salt_len);
        key.try_sign_with_rng(&mut OsRng, message).expect("sign").to_vec()
    }

    #[test]
    fn key_kind_names() {
        for kind in [KeyKind::RsaPkcs1, KeyKind::RsaPkcs8, KeyKind::Ed25519] {
            assert_eq!(kind.name().parse::<KeyKind>().unwrap(), kind);
        }
        assert_eq!(KeyKind::RsaPkcs1.name(), "rsa-pkcs1");
        assert_eq!(KeyKind::RsaPkcs8.name(), "rsa-pkcs8");
        assert_eq!(KeyKind::Ed25519.name(), "ed25519");
    }

    #[test]
    fn key_id_is_uuid_v4_shaped() {
        let id = random_key_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4'));
        assert_ne!(id, random_key_id());
    }

    #[test]
    fn pem_labels() {
        assert!(rsa_key().private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(ed_key().private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let pkcs8 = rsa_private().to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn every_kind_round_trips() {
        let pkcs8_pem = rsa_private().to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let cases = [
            (rsa_key().private_pem.clone(), KeyKind::RsaPkcs1, rsa_key()),
            (pkcs8_pem, KeyKind::RsaPkcs8, rsa_key()),
            (ed_key().private_pem.clone(), KeyKind::Ed25519, ed_key()),
        ];
        for (pem, kind, key) in cases {
            let signer = Signer::from_pem(&pem).unwrap();
            assert_eq!(signer.kind(), kind);
            assert_eq!(signer.public_key(), &key.public);
            let v = verifier_for(key, 7);
            let headers = signer.headers(&key.key_id, NOW, "GET", PATH);
            assert_eq!(headers[0], (HEADER_KEY, key.key_id.clone()));
            assert_eq!(headers[1], (HEADER_TIMESTAMP, NOW.to_string()));
            assert_eq!(headers[2].0, HEADER_SIGNATURE);
            let got = v.verify(
                Some(&headers[0].1),
                Some(&headers[1].1),
                Some(&headers[2].1),
                "GET",
                PATH,
                NOW + 1_000,
            );
            assert_eq!(got, Ok(7), "{kind}");
        }
    }

    #[test]
    fn generated_pkcs8_rsa_key_loads() {
        // Small key: only the PKCS#8 encoding path is under test here.
        let key = generate_account_key(KeyKind::RsaPkcs8, 1024).unwrap();
        assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let signer = Signer::from_pem(&key.private_pem).unwrap();
        assert_eq!(signer.kind(), KeyKind::RsaPkcs8);
        let sig = signer.sign(NOW, "POST", PATH);
        assert_eq!(verify_with(&verifier_for(&key, 1), &key, &sig, NOW, "POST", PATH, NOW), Ok(1));
    }

    #[test]
    fn rsa_keys_ring_accepts_sign_with_ring_and_smaller_ones_fall_back() {
        let signer = Signer::from_pem(&rsa_key().private_pem).unwrap();
        assert!(matches!(signer.key, SigningKey::RsaRing(..)), "2048-bit key: ring");
        let small = generate_account_key(KeyKind::RsaPkcs1, 1024).unwrap();
        let signer = Signer::from_pem(&small.private_pem).unwrap();
        assert!(matches!(signer.key, SigningKey::Rsa(_)), "1024-bit key: rsa");
        let sig = signer.sign(NOW, "POST", PATH);
        assert_eq!(verify_with(&verifier_for(&small, 1), &small, &sig, NOW, "POST", PATH, NOW), Ok(1));
    }

    #[test]
    fn query_string_is_ignored() {
        for key in [rsa_key(), ed_key()] {
            let signer = Signer::from_pem(&key.private_pem).unwrap();
            let v = verifier_for(key, 3);
            let signed_with_query = signer.sign(NOW, "GET", "/trade-api/v2/portfolio/orders?limit=5");
            let signed_without = signer.sign(NOW, "GET", PATH);
            for sig in [&signed_with_query, &signed_without] {
                for path in [PATH, "/trade-api/v2/portfolio/orders?limit=5&cursor=abc"] {
                    assert_eq!(verify_with(&v, key, sig, NOW, "GET", path, NOW), Ok(3));
                }
            }
        }
    }

    #[test]
    fn signing_message_matches_protocol_example() {
        assert_eq!(
            signing_message("1703123456789", "GET", "/trade-api/v2/portfolio/orders?limit=5"),
            b"1703123456789GET/trade-api/v2/portfolio/orders"
        );
    }

    #[test]
    fn wrong_method_or_path_fails() {
        for key in [rsa_key(), ed_key()] {
            let signer = Signer::from_pem(&key.private_pem).unwrap();
            let v = verifier_for(key, 3);
            let sig = signer.sign(NOW, "GET", PATH);
            assert_eq!(verify_with(&v, key, &sig, NOW, "POST", PATH, NOW), Err(AuthError::BadSignature));
            assert_eq!(
                verify_with(&v, key, &sig, NOW, "GET", "/trade-api/v2/portfolio/fills", NOW),
                Err(AuthError::BadSignature)
            );
            // Timestamp is part of the message: a replay under a fresh timestamp fails.
            assert_eq!(verify_with(&v, key, &sig, NOW + 1, "GET", PATH, NOW), Err(AuthError::BadSignature));
        }
    }

    #[test]
    fn signer_uppercases_method() {
        let signer = Signer::from_pem(&ed_key().private_pem).unwrap();
        let v = verifier_for(ed_key(), 1);
        let sig = signer.sign(NOW, "delete", PATH);
        assert_eq!(verify_with(&v, ed_key(), &sig, NOW, "DELETE", PATH, NOW), Ok(1));
    }

    #[test]
    fn timestamp_window() {
        let key = ed_key();
        let signer = Signer::from_pem(&key.private_pem).unwrap();
        let v = verifier_for(key, 1);
        let sig = signer.sign(NOW, "GET", PATH);
        assert_eq!(verify_with(&v, key, &sig, NOW, "GET", PATH, NOW + 30_000), Ok(1));
        assert_eq!(verify_with(&v, key, &sig, NOW, "GET", PATH, NOW - 30_000), Ok(1));
        assert_eq!(
            verify_with(&v, key, &sig, NOW, "GET", PATH, NOW + 30_001),
            Err(AuthError::TimestampOutsideWindow { skew_ms: -30_001 })
        );
        assert_eq!(
            verify_with(&v, key, &sig, NOW, "GET", PATH, NOW - 45_000),
            Err(AuthError::TimestampOutsideWindow { skew_ms: 45_000 })
        );
        let narrow = v.clone().with_window_ms(100);
        assert_eq!(narrow.window_ms(), 100);
        assert!(matches!(
            verify_with(&narrow, key, &sig, NOW, "GET", PATH, NOW + 101),
            Err(AuthError::TimestampOutsideWindow { .. })
        ));
        // Seconds instead of milliseconds is the classic client mistake.
        let secs = NOW / 1000;
        let sig = signer.sign(secs, "GET", PATH);
        assert!(matches!(
            verify_with(&v, key, &sig, secs, "GET", PATH, NOW),
            Err(AuthError::TimestampOutsideWindow { .. })
        ));
    }

    #[test]
    fn header_errors() {
        let key = ed_key();
        let v = verifier_for(key, 1);
        let sig = Signer::from_pem(&key.private_pem).unwrap().sign(NOW, "GET", PATH);
        let ts = NOW.to_string();
        let id = key.key_id.as_str();
        let check = |k: Option<&str>, t: Option<&str>, s: Option<&str>| v.verify(k, t, s, "GET", PATH, NOW);
        assert_eq!(check(None, Some(&ts), Some(&sig)), Err(AuthError::MissingHeader(HEADER_KEY)));
        assert_eq!(check(Some(id), None, Some(&sig)), Err(AuthError::MissingHeader(HEADER_TIMESTAMP)));
        assert_eq!(
            check(Some(id), Some(&ts), Some("")),
            Err(AuthError::MissingHeader(HEADER_SIGNATURE))
        );
        assert_eq!(check(Some("nope"), Some(&ts), Some(&sig)), Err(AuthError::UnknownKey));
        for bad in ["abc", "-1703123456789", "+1703123456789", "1.5", "99999999999999999999999"] {
            assert_eq!(check(Some(id), Some(bad), Some(&sig)), Err(AuthError::BadTimestamp), "{bad}");
        }
        assert_eq!(
            check(Some(id), Some(&ts), Some("not base64!")),
            Err(AuthError::BadSignatureEncoding)
        );
        assert_eq!(check(Some(id), Some(&ts), Some("AAAA")), Err(AuthError::BadSignature));
        let huge = "A".repeat(100_000);
        assert_eq!(check(Some(id), Some(&ts), Some(&huge)), Err(AuthError::BadSignature));
        // Extreme timestamps must not overflow the skew arithmetic.
        let max = i64::MAX.to_string();
        assert!(matches!(
            v.verify(Some(id), Some(&max), Some(&sig), "GET", PATH, i64::MIN),
            Err(AuthError::TimestampOutsideWindow { .. })
        ));
        for err in [AuthError::BadSignature, AuthError::TimestampOutsideWindow { skew_ms: 5 }] {
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn pss_accepts_any_salt_length() {
        let key = rsa_key();
        let PublicKey::Rsa(public) = &key.public else { unreachable!() };
        let message = signing_message(&NOW.to_string(), "GET", PATH);
        let em_len = (public.n().bits() - 1).div_ceil(8);
        let max_salt = em_len - 32 - 2;
        assert_eq!(max_salt, 222);
        let v = verifier_for(key, 9);
        for salt in [PSS_SALT_LEN, 0, 1, 20, 64, max_salt] {
            let sig = pss_sig(salt, &message);
            assert!(verify_pss_any_salt(public, &message, &sig), "salt {salt}");
            let b64 = BASE64.encode(&sig);
            assert_eq!(verify_with(&v, key, &b64, NOW, "GET", PATH, NOW), Ok(9), "salt {salt}");
        }
    }

    #[test]
    fn pss_rejects_tampering_and_wrong_key() {
        let key = rsa_key();
        let PublicKey::Rsa(public) = &key.public else { unreachable!() };
        let message = signing_message(&NOW.to_string(), "GET", PATH);
        let other = RsaPrivateKey::new(&mut OsRng, 1024).unwrap().to_public_key();
        for salt in [0, PSS_SALT_LEN, 222] {
            let sig = pss_sig(salt, &message);
            let mut tampered_msg = message.clone();
            tampered_msg[0] ^= 1;
            assert!(!verify_pss_any_salt(public, &tampered_msg, &sig));
            for i in [0, 1, 100, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[i] ^= 0x40;
                assert!(!verify_pss_any_salt(public, &message, &bad), "byte {i}");
            }
            assert!(!verify_pss_any_salt(&other, &message, &sig));
            assert!(!verify_pss_any_salt(public, &message, &sig[1..]));
            let mut longer = vec![0u8];
            longer.extend_from_slice(&sig);
            assert!(!verify_pss_any_salt(public, &message, &longer));
        }
        // Degenerate inputs: zero, one, n - 1, n and all-ones must be rejected quietly.
        let k = public.size();
        let n = public.n().to_bytes_be();
        let mut n_minus_1 = n.clone();
        *n_minus_1.last_mut().unwrap() -= 1;
        let mut one = vec![0u8; k];
        one[k - 1] = 1;
        for sig in [vec![0u8; k], one, n_minus_1, n, vec![0xff; k], Vec::new()] {
            assert!(!verify_pss_any_salt(public, &message, &sig));
        }
    }

    #[test]
    fn pss_with_modulus_bits_a_multiple_of_8_plus_1() {
        // modBits = 1033 makes emBits = 1032 a multiple of 8, so EM is one octet
        // shorter than the signature: the edge where hand-written PSS code breaks.
        let private = RsaPrivateKey::new(&mut OsRng, 1033).unwrap();
        let public = private.to_public_key();
        assert_eq!(public.n().bits(), 1033);
        let message = b"1703123456789GET/trade-api/ws/v2";
        let max_salt = 129 - 32 - 2;
        for salt in [0, PSS_SALT_LEN, max_salt] {
            let signer = rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(private.clone(), salt);
            let sig = signer.try_sign_with_rng(&mut OsRng, message).unwrap().to_vec();
            assert_eq!(sig.len(), 130);
            assert!(verify_pss_any_salt(&public, message, &sig), "salt {salt}");
            assert!(!verify_pss_any_salt(&public, b"other", &sig));
        }
    }

    #[test]
    fn ed25519_rejects_tampering_and_wrong_key() {
        let key = ed_key();
        let signer = Signer::from_pem(&key.private_pem).unwrap();
        let sig = signer.sign(NOW, "GET", PATH);
        let mut raw = BASE64.decode(&sig).unwrap();
        raw[10] ^= 1;
        let v = verifier_for(key, 1);
        assert_eq!(
            verify_with(&v, key, &BASE64.encode(&raw), NOW, "GET", PATH, NOW),
            Err(AuthError::BadSignature)
        );
        let other = generate_account_key(KeyKind::Ed25519, 0).unwrap();
        let mut v = Verifier::new();
        v.add_key(key.key_id.clone(), 1, other.public.clone());
        assert_eq!(verify_with(&v, key, &sig, NOW, "GET", PATH, NOW), Err(AuthError::BadSignature));
        // An RSA-sized signature against an Ed25519 key is just a bad signature.
        let rsa_sig = Signer::from_pem(&rsa_key().private_pem).unwrap().sign(NOW, "GET", PATH);
        assert_eq!(verify_with(&v, key, &rsa_sig, NOW, "GET", PATH, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn key_registry() {
        let mut v = Verifier::default();
        assert_eq!(v.window_ms(), Verifier::DEFAULT_WINDOW_MS);
        assert!(v.add_key("a", 1, ed_key().public.clone()).is_none());
        assert_eq!(v.account_of("a"), Some(1));
        assert!(v.add_key("a", 2, ed_key().public.clone()).is_some());
        assert_eq!(v.account_of("a"), Some(2));
        assert!(v.remove_key("a").is_some());
        assert_eq!(v.account_of("a"), None);
    }

    #[test]
    fn garbage_pem_gives_clear_error() {
        for input in [
            "",
            "hello",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        ] {
            let err = Signer::from_pem(input).unwrap_err().to_string();
            assert!(err.contains("BEGIN RSA PRIVATE KEY"), "{err}");
            assert!(err.contains("BEGIN PRIVATE KEY"), "{err}");
            assert!(err.contains("Ed25519"), "{err}");
            assert!(!err.contains("AAAA"), "error must not echo key material: {err}");
        }
        let err = Signer::from_pem("-----BEGIN EC PRIVATE KEY-----\nxx\n-----END EC PRIVATE KEY-----")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"EC PRIVATE KEY\""), "{err}");
    }

    #[test]
    fn pem_loading_tolerates_surrounding_whitespace_and_crlf() {
        let pem = format!("\n  {}\n\n", ed_key().private_pem.replace('\n', "\r\n"));
        assert_eq!(Signer::from_pem(&pem).unwrap().kind(), KeyKind::Ed25519);
    }

    #[test]
    fn ed25519_pkcs8_v2_with_public_key_loads() {
        let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let signer = Signer::from_pem(&pem).unwrap();
        assert_eq!(signer.public_key(), &PublicKey::Ed25519(sk.verifying_key()));
    }

    #[test]
    fn public_key_pem_round_trip() {
        for key in [rsa_key(), ed_key()] {
            let pem = key.public.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
            assert_eq!(PublicKey::from_pem(&pem).unwrap(), key.public);
        }
        let PublicKey::Rsa(public) = &rsa_key().public else {
            unreachable!()
        };
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(public, LineEnding::LF).unwrap();
        assert_eq!(PublicKey::from_pem(&pkcs1).unwrap(), rsa_key().public);
        assert!(PublicKey::from_pem("garbage").is_err());
    }

    #[test]
    fn debug_output_redacts_private_key() {
        let key = ed_key();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains("PRIVATE KEY"));
        let signer = Signer::from_pem(&key.private_pem).unwrap();
        assert!(!format!("{signer:?}").contains("secret"));
    }

    #[test]
    fn rejects_bad_rsa_sizes() {
        assert!(generate_account_key(KeyKind::RsaPkcs1, 512).is_err());
        assert!(generate_account_key(KeyKind::RsaPkcs1, 8192).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        // Every header comes from the network: no input may panic, and nothing but
        // a real signature may pass.
        #[test]
        fn verify_never_panics(
            use_rsa: bool,
            key_id in proptest::option::of(".{0,40}"),
            ts in proptest::option::of("[0-9+-]{0,25}"),
            sig in proptest::option::of(".{0,400}"),
            raw_sig in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            method in ".{0,8}",
            path in ".{0,60}",
            now in proptest::prelude::any::<i64>(),
        ) {
            let key = if use_rsa { rsa_key() } else { ed_key() };
            let v = verifier_for(key, 1);
            let _ = v.verify(key_id.as_deref(), ts.as_deref(), sig.as_deref(), &method, &path, now);
            let id = Some(key.key_id.as_str());
            let _ = v.verify(id, ts.as_deref(), sig.as_deref(), &method, &path, now);
            let b64 = BASE64.encode(&raw_sig);
            let got = v.verify(id, Some(&NOW.to_string()), Some(&b64), "GET", PATH, NOW);
            proptest::prop_assert_eq!(got, Err(AuthError::BadSignature));
        }
    }

    #[test]
    fn private_key_file_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("le-auth-test-{}", random_key_id()));
        let path = write_private_key(&dir, "k.pem", "secret").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            write_private_key(&dir, "k.pem", "again").unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "again");
        }
        assert!(write_private_key(&dir, "../escape.pem", "x").is_err());
        assert!(write_private_key(&dir, "", "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
