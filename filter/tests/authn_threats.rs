#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Every class of token attack (RFC 8725 §2; what Warden refuses: `docs/compatibility.md#tokens`),
//! with its own cases: algorithm games, signature forms, weak or odd keys, header parameters,
//! structure, time claims, issuer and audience forms, extraction games — and random input.
//! Each case ends in a 401/403 or an accepted token as expected, never a panic; every request
//! is decided by both verification backends and the cache-hit path, which must agree (see
//! `authn/support.rs`).

#[path = "authn/support.rs"]
mod support;

use serde_json::{json, Value};
use support::*;
use warden::authn::{self, Algorithm, Authenticator, FailureReason, Outcome};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn rejects(authn: &Authenticator, req: &Req, reason: FailureReason) {
    match decide(authn, req) {
        Outcome::Rejected(f) => {
            assert_eq!(f.reason(), reason);
            assert_eq!(
                f.status(),
                if reason == FailureReason::AudienceNotAllowed { 403 } else { 401 }
            );
        }
        other => panic!("expected {reason:?}, got {other:?}"),
    }
}

fn accepts(authn: &Authenticator, req: &Req) -> String {
    principal(&decide(authn, req))
}

fn default_authn() -> Authenticator {
    authenticator(json!([rule(json!({}))]))
}

fn bearer(token: &str) -> Req {
    Req::new().bearer(token)
}

fn alice() -> Value {
    claims(ISSUER, "alice")
}

// ---------------------------------------------------------------------------------------
// Algorithm games: the key decides the algorithm; the token never does.

#[test]
fn none_in_any_spelling_is_refused() {
    let authn = default_authn();
    let payload = alice().to_string();
    for alg in ["none", "None", "NONE", "nOnE", "none ", " none"] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        rejects(
            &authn,
            &bearer(&forge(&header, &payload, b"sig")),
            FailureReason::HeaderAlgNotSupported,
        );
        // The unsecured form (empty signature) is not even three segments.
        let unsecured = format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()));
        rejects(&authn, &bearer(&unsecured), FailureReason::BadFormat);
    }
}

#[test]
fn unknown_algorithms_are_refused() {
    let authn = default_authn();
    for alg in [
        "RS1", "HS1", "ES256K", "ES512", "Ed25519", "Ed448", "EdDSA ", "rs256", "RSA-OAEP", "dir",
        "A128KW", "",
    ] {
        let header = json!({"alg": alg, "kid": "rsa"}).to_string();
        rejects(
            &authn,
            &bearer(&forge(&header, &alice().to_string(), &[1; 64])),
            FailureReason::HeaderAlgNotSupported,
        );
    }
}

#[test]
fn an_alg_the_key_does_not_verify_finds_no_key() {
    let authn = default_authn();
    // ES256 claimed with the RSA key's kid, RS256 with the EC key's, and so on.
    for (alg, kid) in [
        (Algorithm::Es256, "rsa"),
        (Algorithm::Rs256, "es256"),
        (Algorithm::EdDsa, "hs"),
        (Algorithm::Hs256, "ed"),
        (Algorithm::Es384, "es256"),
    ] {
        let t = token_with(alg, By::Trusted, json!({"kid": kid}), &alice());
        rejects(&authn, &bearer(&t), FailureReason::KidAlgMismatch);
    }
    // A key pinned to RS256 refuses PS256 even though both are RSA.
    let mut pinned = rsa_jwk();
    pinned["alg"] = json!("RS256");
    let authn = authenticator(json!([rule(json!({"jwks": jwks_of(vec![pinned])}))]));
    rejects(&authn, &bearer(&token(Algorithm::Ps256, &alice())), FailureReason::KidAlgMismatch);
    assert_eq!(
        accepts(&authn, &bearer(&token(Algorithm::Rs256, &alice()))),
        "https://issuer.example.com/alice"
    );
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // CVE-2015-9235 style key confusion: sign HS256 with the RSA public key's encodings.
    let public = jwt_simple::prelude::RS256KeyPair::from_der(&keys().rsa_der).unwrap().public_key();
    let secrets: Vec<Vec<u8>> = vec![
        public.to_der().unwrap(),
        public.to_pem().unwrap().into_bytes(),
        rsa_jwk().to_string().into_bytes(),
        unb64(rsa_jwk()["n"].as_str().unwrap()),
    ];
    let rsa_only = authenticator(json!([rule(json!({"jwks": jwks_of(vec![rsa_jwk()])}))]));
    let everything = default_authn();
    for secret in secrets {
        for kid in [Some("rsa"), None] {
            let mut header = json!({"alg": "HS256", "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(alice().to_string().as_bytes())
            );
            let tag = jwt_simple::prelude::HS256Key::from_bytes(&secret);
            let tag = jwt_simple::prelude::MACLike::authentication_tag(&tag, input.as_bytes());
            let forged = format!("{input}.{}", b64(&tag));
            rejects(&rsa_only, &bearer(&forged), FailureReason::KidAlgMismatch);
            // With an HMAC key in the set, the forged tag is tried against it and fails.
            let expected = if kid.is_some() {
                FailureReason::KidAlgMismatch
            } else {
                FailureReason::VerificationFailed
            };
            rejects(&everything, &bearer(&forged), expected);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signature forms.

fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(signature))
}

#[test]
fn ecdsa_zero_signatures_are_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 verified in Java 15-18.
    let authn = default_authn();
    let es256 = token(Algorithm::Es256, &alice());
    let es384 = token(Algorithm::Es384, &alice());
    rejects(&authn, &bearer(&with_signature(&es256, &[0; 64])), FailureReason::VerificationFailed);
    rejects(&authn, &bearer(&with_signature(&es384, &[0; 96])), FailureReason::VerificationFailed);
    // r = 0 with a real s, and s = 0 with a real r.
    let sig = unb64(es256.rsplit_once('.').unwrap().1);
    let r_zero = [&[0u8; 32][..], &sig[32..]].concat();
    let s_zero = [&sig[..32], &[0u8; 32][..]].concat();
    rejects(&authn, &bearer(&with_signature(&es256, &r_zero)), FailureReason::VerificationFailed);
    rejects(&authn, &bearer(&with_signature(&es256, &s_zero)), FailureReason::VerificationFailed);
    // r = n (the group order), which reduces to 0.
    let n: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    rejects(
        &authn,
        &bearer(&with_signature(&es256, &[n, n].concat())),
        FailureReason::VerificationFailed,
    );
    rejects(
        &authn,
        &bearer(&with_signature(&es256, &[0xff; 64])),
        FailureReason::VerificationFailed,
    );
}

#[test]
fn der_signatures_where_raw_r_s_belongs_are_refused() {
    let authn = default_authn();
    let t = token(Algorithm::Es256, &alice());
    let raw = unb64(t.rsplit_once('.').unwrap().1);
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    rejects(
        &authn,
        &bearer(&with_signature(&t, der.as_bytes())),
        FailureReason::VerificationFailed,
    );
    let t = token(Algorithm::Es384, &alice());
    let raw = unb64(t.rsplit_once('.').unwrap().1);
    let der = p384::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    rejects(
        &authn,
        &bearer(&with_signature(&t, der.as_bytes())),
        FailureReason::VerificationFailed,
    );
}

#[test]
fn high_s_ecdsa_signatures_verify_on_both_backends() {
    // (r, n - s) is as valid as (r, s): BoringSSL and the p256 crate both accept it (neither
    // normalizes S), so the two paths must agree — and they do, by accepting. It is the same
    // claims signed by the same key, not a forgery.
    let authn = default_authn();
    let t = token(Algorithm::Es256, &alice());
    let sig = p256::ecdsa::Signature::from_slice(&unb64(t.rsplit_once('.').unwrap().1)).unwrap();
    let flipped = match sig.normalize_s() {
        normalized if normalized == sig => {
            // Low S: build the high-S twin from -s.
            let (r, s) = sig.split_scalars();
            p256::ecdsa::Signature::from_scalars(*r, -*s).unwrap()
        }
        normalized => normalized,
    };
    assert_ne!(flipped, sig);
    assert_eq!(
        accepts(&authn, &bearer(&with_signature(&t, &flipped.to_bytes()))),
        "https://issuer.example.com/alice"
    );
}

#[test]
fn wrong_lengths_and_truncations_are_refused() {
    let authn = default_authn();
    for alg in Algorithm::ALL {
        let t = token(alg, &alice());
        let sig = unb64(t.rsplit_once('.').unwrap().1);
        for bad in [
            sig[..sig.len() - 1].to_vec(),
            [&sig[..], &[0]].concat(),
            [&[0], &sig[..]].concat(),
            sig[..sig.len() / 2].to_vec(),
            vec![0],
            vec![0; sig.len()],
        ] {
            rejects(&authn, &bearer(&with_signature(&t, &bad)), FailureReason::VerificationFailed);
        }
    }
}

#[test]
fn rsa_signatures_at_or_above_the_modulus_are_refused() {
    let authn = default_authn();
    let t = token(Algorithm::Rs256, &alice());
    let n = unb64(rsa_jwk()["n"].as_str().unwrap());
    rejects(&authn, &bearer(&with_signature(&t, &n)), FailureReason::VerificationFailed);
    rejects(
        &authn,
        &bearer(&with_signature(&t, &vec![0xff; n.len()])),
        FailureReason::VerificationFailed,
    );
    let mut one = vec![0u8; n.len()];
    *one.last_mut().unwrap() = 1;
    rejects(&authn, &bearer(&with_signature(&t, &one)), FailureReason::VerificationFailed);
}

#[test]
fn an_empty_signature_is_no_token_format() {
    let authn = default_authn();
    let t = good();
    let (input, _) = t.rsplit_once('.').unwrap();
    rejects(&authn, &bearer(&format!("{input}.")), FailureReason::BadFormat);
}

// ---------------------------------------------------------------------------------------
// Weak or odd keys: refused when the key set is parsed, so no token can use them.

fn weak_key_sets() -> Vec<(&'static str, Value)> {
    let mut odd = vec![0xc5u8; 128];
    odd[127] |= 1;
    let mut huge = vec![0xc5u8; 1024];
    huge[1023] |= 1;
    let with = |member: &str, value: Value| {
        let mut k = rsa_jwk();
        k[member] = value;
        k
    };
    let mut off_curve: Value =
        serde_json::from_str(&keys().es256.public_key().with_key_id("es256").to_jwk()).unwrap();
    let mut y = unb64(off_curve["y"].as_str().unwrap());
    y[0] ^= 0x40;
    off_curve["y"] = json!(b64(&y));
    vec![
        ("RSA 1024 bits", with("n", json!(b64(&odd)))),
        ("RSA 8192 bits (CPU cost)", with("n", json!(b64(&huge)))),
        ("RSA exponent 1", with("e", json!("AQ"))),
        ("RSA exponent 3", with("e", json!("Aw"))),
        ("RSA even modulus", with("n", json!(b64(&[0xc4; 256])))),
        ("EC point off the curve", off_curve),
        ("no kty", {
            let mut k = rsa_jwk();
            k.as_object_mut().unwrap().remove("kty");
            k
        }),
        ("kty RSA with an EC alg", with("alg", json!("ES256"))),
        ("kty and crv that conflict", {
            let mut k = with("crv", json!("P-256"));
            k["kty"] = json!("EC");
            k
        }),
        ("an encryption key", with("use", json!("enc"))),
        ("an encryption alg", with("alg", json!("RSA-OAEP-256"))),
        ("key_ops without verify", with("key_ops", json!(["sign"]))),
        ("a short HMAC key", json!({"kty": "oct", "kid": "rsa", "k": b64(&[1; 16])})),
        (
            "a P-521 key",
            json!({"kty": "EC", "kid": "rsa", "crv": "P-521", "x": b64(&[1; 66]), "y": b64(&[1; 66])}),
        ),
    ]
}

#[test]
fn weak_keys_are_refused_in_configuration_and_never_used_when_fetched() {
    let t = token(Algorithm::Rs256, &alice());
    for (name, key) in weak_key_sets() {
        let jwks = jwks_of(vec![key.clone()]);
        // Inline: the configuration is refused.
        assert!(
            validate_all(&[policy("default", "jwt", None, json!([rule(json!({"jwks": jwks}))]))])
                .is_err(),
            "{name}: accepted inline"
        );
        // Fetched next to a good key: the weak key is skipped, the good one still works.
        let mixed = authn::parse_fetched_jwks(
            jwks_of(vec![key, {
                let mut k = rsa_jwk();
                k["kid"] = json!("good");
                k
            }])
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(mixed.len(), 1, "{name}");
        assert_eq!(mixed.skipped().len(), 1, "{name}");
        assert_eq!(mixed.keys()[0].kid(), Some("good"), "{name}");
        // Fetched alone: no usable key, so the store has nothing to offer and the token fails.
        assert!(authn::parse_fetched_jwks(jwks.as_bytes()).is_err(), "{name}");
        let remote = authenticator(json!([rule(
            json!({"jwks": null, "jwksUri": "https://keys.example.com/jwks"})
        )]));
        match decide_with(&remote, &bearer(&t), NOW, &Store(vec![State::Unavailable])) {
            Outcome::Rejected(f) => assert_eq!(f.status(), 401, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn keys_without_kid_are_tried_in_turn_up_to_a_bound() {
    let mut key = rsa_jwk();
    key.as_object_mut().unwrap().remove("kid");
    let decoys: Vec<Value> = (0..authn::MAX_KEYS_TRIED)
        .map(|_| {
            let mut k: Value = serde_json::from_str(
                &jwt_simple::prelude::ES256KeyPair::generate().public_key().to_jwk(),
            )
            .unwrap();
            k.as_object_mut().unwrap().remove("kid");
            k.as_object_mut().unwrap().remove("alg");
            k
        })
        .collect();
    let t = token_with(Algorithm::Rs256, By::Trusted, json!({"kid": null}), &alice());
    // EC decoys do not count against RS256: only keys that verify the token's alg are tried.
    let mut keys_ = decoys.clone();
    keys_.push(key.clone());
    let authn = authenticator(json!([rule(json!({"jwks": jwks_of(keys_)}))]));
    accepts(&authn, &bearer(&t));
    // RSA decoys do: the real key after MAX_KEYS_TRIED others is not reached.
    let rsa_decoy = {
        let mut k: Value = serde_json::from_str(
            &jwt_simple::prelude::RS256KeyPair::from_der(&keys().rsa_b_der)
                .unwrap()
                .public_key()
                .to_jwk(),
        )
        .unwrap();
        k.as_object_mut().unwrap().remove("kid");
        k.as_object_mut().unwrap().remove("alg");
        k
    };
    let mut keys_: Vec<Value> = (0..authn::MAX_KEYS_TRIED).map(|_| rsa_decoy.clone()).collect();
    keys_.push(key);
    let authn = authenticator(json!([rule(json!({"jwks": jwks_of(keys_)}))]));
    rejects(&authn, &bearer(&t), FailureReason::VerificationFailed);
}

// ---------------------------------------------------------------------------------------
// Header parameters.

#[test]
fn kid_games_find_no_key() {
    let authn = default_authn();
    for kid in [
        "../../etc/passwd",
        "rsa?x=1",
        "rsa\0",
        "RSA",
        "rsa ",
        "' OR '1'='1",
        "https://evil/jwks#rsa",
        &"k".repeat(4000),
    ] {
        let t = token_with(Algorithm::Rs256, By::Trusted, json!({"kid": kid}), &alice());
        rejects(&authn, &bearer(&t), FailureReason::KidAlgMismatch);
    }
    for kid in [json!(1), json!(["rsa"]), json!({"kid": "rsa"}), json!(true), json!(null)] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        let t = raw_token(Algorithm::Rs256, By::Trusted, &header, &alice().to_string());
        rejects(&authn, &bearer(&t), FailureReason::HeaderBadKid);
    }
}

#[test]
fn key_carrying_and_critical_parameters_are_refused() {
    use authn::HeaderParameter as P;
    let authn = default_authn();
    let attacker_jwk: Value =
        serde_json::from_str(&keys().es256_other.public_key().to_jwk()).unwrap();
    for (extra, parameter) in [
        (json!({"jku": "https://evil.example.com/jwks"}), P::Jku),
        (json!({"x5u": "https://evil.example.com/cert.pem"}), P::X5u),
        (json!({"jwk": attacker_jwk}), P::Jwk),
        (json!({"x5c": ["MIIBszCCAVmgAwIBAgIJ"]}), P::X5c),
        (json!({"crit": ["exp"]}), P::Crit),
        (json!({"crit": []}), P::Crit),
        (json!({"b64": false}), P::B64),
        (json!({"b64": "false"}), P::B64),
        (json!({"salt": "c2FsdA"}), P::Salt),
        (json!({"typ": "JWE"}), P::Typ),
        (json!({"typ": "application/jose+json"}), P::Typ),
        (json!({"typ": 7}), P::Typ),
        (json!({"cty": "JWT"}), P::Cty),
        (json!({"x5t": 1}), P::X5t),
    ] {
        // Signed with the trusted key: the parameters alone are why it fails.
        let t = token_with(Algorithm::Rs256, By::Trusted, extra.clone(), &alice());
        rejects(&authn, &bearer(&t), FailureReason::HeaderParameter(parameter));
    }
    // What is accepted: explicit typing, b64 true, informational x5t.
    for extra in [
        json!({"typ": "at+jwt"}),
        json!({"typ": "jwt"}),
        json!({"typ": "application/jose"}),
        json!({"typ": "JOSE"}),
        json!({"typ": null}),
        json!({"b64": true}),
        json!({"x5t": "abc"}),
        json!({"cty": "text/plain"}),
    ] {
        accepts(&authn, &bearer(&token_with(Algorithm::Rs256, By::Trusted, extra, &alice())));
    }
}

#[test]
fn an_embedded_attacker_key_is_never_used() {
    // The attacker signs with its own key and embeds it as `jwk` (CVE-2018-0114 style).
    let authn = default_authn();
    let attacker_jwk: Value =
        serde_json::from_str(&keys().es256_other.public_key().with_key_id("es256").to_jwk())
            .unwrap();
    let with_jwk =
        token_with(Algorithm::Es256, By::Stranger, json!({"jwk": attacker_jwk}), &alice());
    rejects(
        &authn,
        &bearer(&with_jwk),
        FailureReason::HeaderParameter(authn::HeaderParameter::Jwk),
    );
    let plain = token_with(Algorithm::Es256, By::Stranger, json!({}), &alice());
    rejects(&authn, &bearer(&plain), FailureReason::VerificationFailed);
}

// ---------------------------------------------------------------------------------------
// Structure.

#[test]
fn segment_counts_and_empty_segments() {
    let authn = default_authn();
    let t = good();
    let p: Vec<&str> = t.split('.').collect();
    for bad in [
        p[0].to_string(),
        format!("{}.{}", p[0], p[1]),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], p[2]),
        format!("{}.{}.{}.{}.{}", p[0], p[1], p[2], p[2], p[2]),
        format!(".{}.{}", p[1], p[2]),
        format!("{}..{}", p[0], p[2]),
        format!("{t}."),
        format!(".{t}"),
        "..".into(),
        ".".into(),
    ] {
        rejects(&authn, &bearer(&bad), FailureReason::BadFormat);
    }
}

#[test]
fn non_canonical_base64url_is_refused() {
    let authn = default_authn();
    let t = token(Algorithm::Es256, &alice()); // 64-byte signature: 86 chars, 2 spare bits
    let (input, sig) = t.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    // The same signature bytes with a non-zero spare bit: lenient decoders accept it.
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    assert_eq!(index % 16, 0, "64 bytes leave the last character's low four bits unused");
    let twin = alphabet.chars().nth(index + 1).unwrap();
    let noncanonical = format!("{input}.{}{twin}", &sig[..sig.len() - 1]);
    rejects(&authn, &bearer(&noncanonical), FailureReason::SignatureBadBase64);
    rejects(&authn, &bearer(&format!("{t}==")), FailureReason::SignatureBadBase64);
    rejects(&authn, &bearer(&format!("{h}=.{p}.{sig}")), FailureReason::HeaderBadBase64);
    rejects(&authn, &bearer(&format!("{h}.{p}=.{sig}")), FailureReason::PayloadBadBase64);
    rejects(
        &authn,
        &bearer(&format!("{h}.{}.{sig}", p.replace('-', "+").replace('_', "/") + "+")),
        FailureReason::PayloadBadBase64,
    );
    rejects(
        &authn,
        &bearer(&format!("{h}.{p}.{}+/", &sig[..sig.len() - 2])),
        FailureReason::SignatureBadBase64,
    );
    rejects(&authn, &bearer(&format!("{h}. {p}.{sig}")), FailureReason::PayloadBadBase64);
    rejects(
        &authn,
        &bearer(&format!("{h}.{p}.{}\t{}", &sig[..10], &sig[10..])),
        FailureReason::SignatureBadBase64,
    );
}

#[test]
fn odd_json_is_refused() {
    let authn = default_authn();
    let header = r#"{"alg":"RS256","kid":"rsa"}"#;
    let c = alice();
    let signed = |h: &str, p: &str| raw_token(Algorithm::Rs256, By::Trusted, h, p);
    let payload = c.to_string();
    // Duplicate members: two parsers could pick different ones.
    rejects(
        &authn,
        &bearer(&signed(r#"{"alg":"RS256","alg":"HS256","kid":"rsa"}"#, &payload)),
        FailureReason::HeaderBadJson,
    );
    let dup_sub =
        format!(r#"{{"iss":"{ISSUER}","sub":"alice","sub":"admin","exp":{}}}"#, NOW + 100);
    rejects(&authn, &bearer(&signed(header, &dup_sub)), FailureReason::PayloadBadJson);
    let dup_iss =
        format!(r#"{{"iss":"{OTHER_ISSUER}","iss":"{ISSUER}","sub":"a","exp":{}}}"#, NOW + 100);
    rejects(&authn, &bearer(&signed(header, &dup_iss)), FailureReason::PayloadBadJson);
    // Deep nesting.
    let deep = format!(
        r#"{{"iss":"{ISSUER}","exp":{},"x":{}{}}}"#,
        NOW + 100,
        "[".repeat(200),
        "]".repeat(200)
    );
    rejects(&authn, &bearer(&signed(header, &deep)), FailureReason::PayloadBadJson);
    // Not an object, trailing data, a BOM, a nested JWT as the payload.
    for p in [
        "[]".to_string(),
        "\"text\"".into(),
        format!("{payload} x"),
        format!("\u{feff}{payload}"),
        good(),
    ] {
        rejects(&authn, &bearer(&signed(header, &p)), FailureReason::PayloadBadJson);
    }
    rejects(&authn, &bearer(&signed("[\"RS256\"]", &payload)), FailureReason::HeaderBadJson);
    rejects(
        &authn,
        &bearer(&forge(header, &payload, b"x").replacen(
            &b64(payload.as_bytes()),
            &b64(b"\xff\xfe"),
            1,
        )),
        FailureReason::PayloadBadJson,
    );
    // Escapes are JSON: "\u0068ttps" is "https", and both backends read it so.
    let escaped =
        format!(r#"{{"iss":"\u0068ttps://issuer.example.com","sub":"alice","exp":{}}}"#, NOW + 100);
    assert_eq!(
        accepts(&authn, &bearer(&signed(header, &escaped))),
        "https://issuer.example.com/alice"
    );
}

#[test]
fn huge_tokens_are_refused_before_parsing() {
    let authn = default_authn();
    let big =
        token(Algorithm::Hs256, &claims_with(json!({"pad": "x".repeat(authn::MAX_TOKEN_BYTES)})));
    assert!(big.len() > authn::MAX_TOKEN_BYTES);
    rejects(&authn, &bearer(&big), FailureReason::TooLarge);
    // Just under the limit is fine.
    let mut pad = authn::MAX_TOKEN_BYTES * 3 / 4 - 400;
    loop {
        let t = token(Algorithm::Hs256, &claims_with(json!({"pad": "x".repeat(pad)})));
        if t.len() <= authn::MAX_TOKEN_BYTES {
            assert_eq!(accepts(&authn, &bearer(&t)), "https://issuer.example.com/alice");
            break;
        }
        pad -= 8;
    }
}

// ---------------------------------------------------------------------------------------
// Time claims.

#[test]
fn time_claims_of_every_type() {
    use FailureReason::*;
    let authn = default_authn();
    let with = |extra: Value| bearer(&token(Algorithm::Es256, &claims_with(extra)));
    for (extra, reason) in [
        (json!({"exp": "2100-01-01"}), ExpNotInteger),
        (json!({"exp": true}), ExpNotInteger),
        (json!({"exp": [NOW + 100]}), ExpNotInteger),
        (json!({"exp": -1}), ExpOutOfRange),
        (json!({"exp": 1e300}), ExpOutOfRange),
        (json!({"exp": 0}), Expired),
        (json!({"exp": 1}), Expired),
        (json!({"nbf": "now"}), NbfNotInteger),
        (json!({"nbf": -5}), NbfOutOfRange),
        (json!({"nbf": -1.5}), NbfOutOfRange),
        (json!({"nbf": u64::MAX}), NotYetValid),
        (json!({"iat": false}), IatNotInteger),
        (json!({"iat": -1}), IatOutOfRange),
        (json!({"iat": -0.5}), IatOutOfRange),
        (json!({"iat": NOW + 3600}), IssuedInFuture),
    ] {
        rejects(&authn, &with(extra.clone()), reason);
    }
    for claim in ["exp", "nbf", "iat"] {
        let mut explicit_null = alice();
        explicit_null[claim] = Value::Null;
        let reason = match claim {
            "exp" => ExpNotInteger,
            "nbf" => NbfNotInteger,
            _ => IatNotInteger,
        };
        rejects(&authn, &bearer(&token(Algorithm::Es256, &explicit_null)), reason);
    }
    rejects(
        &authn,
        &bearer(&token(Algorithm::Es256, &json!({"iss": ISSUER, "sub": "alice"}))),
        ExpMissing,
    );
    // Huge values: a far exp is valid, a far iat is a token from the future.
    accepts(&authn, &with(json!({"exp": u64::MAX})));
    rejects(&authn, &with(json!({"iat": u64::MAX})), IssuedInFuture);
    accepts(&authn, &with(json!({"iat": 0, "nbf": 0})));
    // Fractions and exponents are NumericDates too (RFC 7519 §2), truncated.
    accepts(&authn, &with(json!({"exp": (NOW + 100) as f64 + 0.25, "nbf": 1.5, "iat": 0.5})));
}

#[test]
fn the_clock_skew_boundary_is_exactly_60_seconds() {
    let authn = default_authn();
    let t = token(Algorithm::Es256, &claims_with(json!({"exp": NOW, "nbf": NOW})));
    let at = |now| decide_with(&authn, &bearer(&t), now, &Store::default());
    assert!(matches!(at(NOW + 60), Outcome::Authenticated { .. }), "exp + 60 s");
    assert!(
        matches!(at(NOW + 61), Outcome::Rejected(f) if f.reason() == FailureReason::Expired),
        "exp + 61 s"
    );
    assert!(matches!(at(NOW - 60), Outcome::Authenticated { .. }), "nbf - 60 s");
    assert!(
        matches!(at(NOW - 61), Outcome::Rejected(f) if f.reason() == FailureReason::NotYetValid),
        "nbf - 61 s"
    );
}

// ---------------------------------------------------------------------------------------
// Issuer and audience forms.

#[test]
fn issuer_forms() {
    use FailureReason::*;
    let authn = default_authn();
    for iss in [
        "https://issuer.example.com/",
        "HTTPS://issuer.example.com",
        "https://ISSUER.example.com",
        "http://issuer.example.com",
        "issuer.example.com",
        " https://issuer.example.com",
        "https://issuer.example.com\0",
        "https://іssuer.example.com",
        "",
    ] {
        rejects(&authn, &bearer(&token(Algorithm::Rs256, &claims(iss, "alice"))), UnknownIssuer);
    }
    for iss in [json!([ISSUER]), json!({"iss": ISSUER}), json!(1), json!(null)] {
        let mut c = alice();
        c["iss"] = iss;
        rejects(&authn, &bearer(&token(Algorithm::Rs256, &c)), IssNotString);
    }
}

#[test]
fn audience_forms() {
    use FailureReason::*;
    let authn = authenticator(json!([rule(json!({"audiences": ["https://api.example.com/"]}))]));
    let with = |aud: Value| bearer(&token(Algorithm::Rs256, &claims_with(json!({"aud": aud}))));
    for aud in [
        json!("api.example.com"),
        json!("http://api.example.com"),
        json!("https://api.example.com/"),
        json!(["x", "api.example.com/"]),
    ] {
        accepts(&authn, &with(aud));
    }
    for aud in [
        json!("api.example.com//"),
        json!("API.example.com"),
        json!(" api.example.com"),
        json!("ftp://api.example.com"),
        json!("https://api.example.com/v1"),
        json!([]),
        json!(["x"]),
    ] {
        rejects(&authn, &with(aud), AudienceNotAllowed);
    }
    for aud in
        [json!({"aud": "api.example.com"}), json!(7), json!([["api.example.com"]]), json!([null])]
    {
        rejects(&authn, &with(aud), AudNotStringOrList);
    }
    rejects(
        &authn,
        &bearer(&token(Algorithm::Rs256, &claims(ISSUER, "alice"))),
        AudienceNotAllowed,
    );
}

// ---------------------------------------------------------------------------------------
// Extraction games.

#[test]
fn tokens_in_several_locations_must_all_be_the_same_and_allowed() {
    let authn = default_authn();
    let t = good();
    let other = token(Algorithm::Es256, &alice());
    let everywhere = Req::new().bearer(&t).path(format!("/api?access_token={t}"));
    accepts(&authn, &everywhere);
    rejects(&authn, &Req::new().bearer(&t).bearer(&other), FailureReason::MultipleTokens);
    rejects(
        &authn,
        &Req::new().bearer(&t).path(format!("/api?access_token={other}")),
        FailureReason::MultipleTokens,
    );
    rejects(&authn, &Req::new().bearer(&t).bearer(""), FailureReason::MultipleTokens);
    // A valid token does not launder an invalid one next to it.
    rejects(
        &authn,
        &Req::new().bearer(&t).path("/api?access_token=garbage"),
        FailureReason::MultipleTokens,
    );
}

#[test]
fn prefix_case_and_empty_tokens() {
    let authn = default_authn();
    let t = good();
    // RFC 7235 §2.1: the scheme is case-insensitive, so these carry the token.
    for value in [format!("bearer {t}"), format!("BEARER {t}"), format!("bEaReR {t}")] {
        accepts(&authn, &Req::new().header("authorization", value));
    }
    rejects(&authn, &Req::new().header("authorization", "bearer junk"), FailureReason::BadFormat);
    for value in [format!("Bearer{t}"), t.clone(), format!("Token {t}")] {
        assert!(matches!(
            decide(&authn, &Req::new().header("authorization", value)),
            Outcome::Anonymous { .. }
        ));
    }
    rejects(&authn, &Req::new().header("authorization", "Bearer "), FailureReason::BadFormat);
    rejects(&authn, &Req::new().header("authorization", "Bearer \"\""), FailureReason::BadFormat);
    rejects(&authn, &Req::new().path("/api?access_token="), FailureReason::BadFormat);
    rejects(&authn, &Req::new().path("/api?access_token"), FailureReason::BadFormat);
    let custom = authenticator(json!([rule(json!({"fromHeaders": [{"name": "x-jwt"}]}))]));
    rejects(&custom, &Req::new().header("x-jwt", ""), FailureReason::BadFormat);
}

#[test]
fn an_issuer_not_configured_for_the_location_is_refused() {
    // ISTIO-SECURITY-2021-001 style: a token of issuer B must not pass where only A is read.
    let authn = authenticator(json!([
        rule(json!({})),
        rule(
            json!({"issuer": OTHER_ISSUER, "fromHeaders": [{"name": "x-partner"}], "jwks": jwks()})
        ),
    ]));
    let partner = token(Algorithm::Es256, &claims(OTHER_ISSUER, "mallory"));
    rejects(&authn, &bearer(&partner), FailureReason::UnknownIssuer);
    rejects(
        &authn,
        &Req::new().path(format!("/api?access_token={partner}")),
        FailureReason::UnknownIssuer,
    );
    accepts(&authn, &Req::new().header("x-partner", &partner));
    rejects(
        &authn,
        &Req::new().header("x-partner", &partner).bearer(&partner),
        FailureReason::UnknownIssuer,
    );
}

#[test]
fn client_copies_of_output_headers_are_stripped() {
    let authn = authenticator(json!([rule(json!({
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-role", "claim": "role"}],
    }))]));
    let forged = Req::new()
        .header("x-jwt-payload", "e30")
        .header("x-user", "admin")
        .header("x-role", "root");
    for req in [forged.clone(), forged.clone().bearer(&good())] {
        let outcome = decide(&authn, &req);
        let headers = match &outcome {
            Outcome::Anonymous { headers } | Outcome::Authenticated { headers, .. } => headers,
            other => panic!("{other:?}"),
        };
        let removed: Vec<&str> = headers.removals().collect();
        for name in ["x-jwt-payload", "x-user", "x-role"] {
            assert!(removed.contains(&name), "{name} must be stripped: {removed:?}");
        }
        // Only the verified values come back, and no claim is invented: the token has no role.
        assert!(headers.set.iter().all(|(n, v)| n != "x-user" || v == b"alice"));
        assert!(headers.set.iter().all(|(n, _)| n != "x-role"));
    }
}

#[test]
fn claim_values_that_cannot_be_headers_are_dropped() {
    let authn = authenticator(json!([rule(
        json!({"outputClaimToHeaders": [{"header": "x-user", "claim": "name"}]})
    )]));
    for name in ["a\r\nx-admin: true", "a\nb", "a\0b"] {
        let outcome =
            decide(&authn, &bearer(&token(Algorithm::Rs256, &claims_with(json!({"name": name})))));
        let Outcome::Authenticated { headers, .. } = outcome else { panic!() };
        assert!(headers.set.is_empty(), "{name:?}");
    }
}

#[test]
fn header_name_case_and_non_utf8_values() {
    let authn = default_authn();
    // Envoy lower-cases names; a view that did not is still read.
    accepts(&authn, &Req::new().header("Authorization", format!("Bearer {}", good())));
    for value in [
        &b"Bearer \xff\xfe\xfd"[..],
        b"Bearer a.\xffb.c",
        b"\xff\xff Bearer x.y.z",
        b"Bearer \x00.\x00.\x00",
    ] {
        match decide(&authn, &Req::new().header("authorization", value)) {
            Outcome::Rejected(f) => assert_eq!(f.status(), 401),
            other => panic!("{value:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Random input: never a panic, never an accepted token that was not issued.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_header_values_params_and_cookies_never_panic() {
    let authn = authenticator(json!([rule(
        json!({"fromCookies": ["session"], "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}], "fromParams": ["access_token"]})
    )]));
    let mut rng = Rng(0x853c49e6748fea9b);
    let alphabet = b"eyJhbGciOiJSUzI1NiJ9.-_=+/ \"%;\xff\x00Bearer ";
    for _ in 0..1500 {
        let len = rng.below(120);
        let junk: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        let mut path = b"/api?access_token=".to_vec();
        path.extend_from_slice(&junk);
        let junk_str = String::from_utf8_lossy(&junk).to_string();
        for req in [
            Req::new().header("authorization", &junk),
            Req::new().path(&path),
            Req::new().header("cookie", &junk),
            Req::new().header("cookie", format!("session={junk_str}")),
        ] {
            match decide(&authn, &req) {
                Outcome::Anonymous { .. } => {}
                Outcome::Rejected(f) => assert_eq!(f.status(), 401),
                other => panic!("{junk:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn mutated_tokens_are_never_accepted() {
    let authn = default_authn();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for alg in [Algorithm::Hs256, Algorithm::Es256, Algorithm::Rs256, Algorithm::EdDsa] {
        let original = token(alg, &alice());
        let mutations = if alg == Algorithm::Rs256 { 150 } else { 400 };
        for _ in 0..mutations {
            let mut bytes = original.clone().into_bytes();
            match rng.below(4) {
                0 => {
                    let i = rng.below(bytes.len());
                    bytes[i] = alphabet[rng.below(alphabet.len())];
                }
                1 => {
                    let i = rng.below(bytes.len());
                    bytes.remove(i);
                }
                2 => {
                    let i = rng.below(bytes.len());
                    bytes.insert(i, alphabet[rng.below(alphabet.len())]);
                }
                _ => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            if bytes == original.as_bytes() {
                continue;
            }
            let req = Req::new().header("authorization", [&b"Bearer "[..], &bytes].concat());
            match decide(&authn, &req) {
                Outcome::Rejected(f) => assert!(f.status() == 401 || f.status() == 403),
                Outcome::Anonymous { .. } => {
                    // Only possible when the mutation broke the "Bearer " prefix, which it
                    // cannot (it is outside the mutated bytes).
                    panic!("{alg}: anonymous for {:?}", String::from_utf8_lossy(&bytes))
                }
                other => panic!(
                    "{alg}: mutated token accepted: {:?} -> {other:?}",
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
    }
}

#[test]
fn random_key_sets_never_panic_and_random_tokens_never_verify() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let pieces = [
        r#"{"keys":["#,
        r#"{"kty":"RSA","n":""#,
        r#"","e":"AQAB"}"#,
        r#"{"kty":"EC","crv":"P-256","x":""#,
        r#"","y":""#,
        r#""}"#,
        r#"{"kty":"oct","k":""#,
        "]}",
        ",",
        "AQAB",
        "____",
        "AAAA",
    ];
    for _ in 0..2000 {
        let doc: String = (0..rng.below(12)).map(|_| pieces[rng.below(pieces.len())]).collect();
        let _ = authn::parse_jwks(doc.as_bytes());
        let _ = authn::parse_fetched_jwks(doc.as_bytes());
        let _ = authn::parse_openid_configuration(doc.as_bytes());
    }
    let authn = default_authn();
    for _ in 0..300 {
        let kid = ["rsa", "es256", "es384", "ed", "hs"][rng.below(5)];
        let header = json!({"alg": Algorithm::ALL[rng.below(12)].name(), "kid": kid}).to_string();
        let sig: Vec<u8> =
            (0..[32, 48, 64, 96, 256][rng.below(5)]).map(|_| rng.next() as u8).collect();
        match decide(&authn, &bearer(&forge(&header, &alice().to_string(), &sig))) {
            Outcome::Rejected(f) => assert_eq!(f.status(), 401),
            other => panic!("a random signature verified: {other:?}"),
        }
    }
}
