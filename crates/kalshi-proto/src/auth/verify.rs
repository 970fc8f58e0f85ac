//! The server side: checking the three headers of a request against registered keys.

use super::*;

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
pub(super) fn verify_pss_any_salt(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
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
pub(super) fn mgf1_sha256_xor(seed: &[u8], out: &mut [u8]) {
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
