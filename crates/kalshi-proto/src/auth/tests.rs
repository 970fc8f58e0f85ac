use super::keys::*;
use super::sign::*;
use super::verify::*;
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
