//! Kalshi request authentication, client and server side.
//!
//! A request carries three headers: the API key id, a millisecond Unix timestamp and a
//! base64 signature over `timestamp + METHOD + path`, where `path` starts at the API root
//! (`/trade-api/v2/...` or `/trade-api/ws/v2`) and never includes the query string.
//! Kalshi keys are RSA (signed with RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt);
//! newer SDKs also accept Ed25519 keys, which sign the same bytes.
//!
//! `keys` holds key kinds, parsing and generation; `sign` the client side; `verify` the
//! server side.
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

mod keys;
mod sign;
#[cfg(test)]
mod tests;
mod verify;

pub use keys::{generate_account_key, random_key_id, write_private_key, AccountKey, KeyKind, PublicKey};
pub use sign::Signer;
pub use verify::{AuthError, Verifier};

pub(crate) fn present<'a>(value: Option<&'a str>, header: &'static str) -> Result<&'a str, AuthError> {
    value.filter(|v| !v.is_empty()).ok_or(AuthError::MissingHeader(header))
}

pub(crate) fn signing_message(timestamp: &str, method: &str, path: &str) -> Vec<u8> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut m = Vec::with_capacity(timestamp.len() + method.len() + path.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.extend_from_slice(method.as_bytes());
    m.extend_from_slice(path.as_bytes());
    m
}
