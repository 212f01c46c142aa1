//! Parsing a compact JWS (RFC 7515 §7.1) into what verification needs, with every structural,
//! header and claim-type check done here, once, before any signature is looked at.
//!
//! The checks and their order follow Envoy (`jwt_verify_lib/src/jwt.cc` `parseFromString`),
//! so a token is refused with the status string Envoy would give. Warden is stricter where
//! Envoy's leniency weakens security or makes two parsers disagree:
//!
//! - a size limit, [`MAX_TOKEN_BYTES`];
//! - canonical base64url only (see [`super::codec`]);
//! - JSON with duplicate members or deep nesting refused;
//! - header parameters refused: `crit` (nothing is understood), `b64` other than `true`,
//!   `jku`/`x5u`/`jwk`/`x5c` (keys come only from configuration), `salt`, a `typ` that is not
//!   a JWS media type (`JWT`, `JOSE`, `…+jwt`, with or without `application/`), a `cty` of
//!   `JWT` (nested tokens), non-string `x5t`/`x5t#S256`/`cty`;
//! - `exp` required; `iat`/`nbf`/`exp` any JSON number (RFC 7519 §2 NumericDate: fractions
//!   and exponents allowed, truncated to seconds as Envoy does) from 0 up to 2^64;
//! - `nonce` must be a string when present.
//!
//! Neither signature backend parses the token again (`verify.rs`): both are handed the signing
//! input and the signature once these checks pass, so they accept the same tokens.

use std::ops::Range;

use serde_json::{Map, Value};

use super::codec::{base64url_decode, parse_json_object};
use super::failure::{FailureReason, HeaderParameter};
use super::key::Algorithm;

/// Tokens longer than this are refused before any parsing. Envoy's only bound is the
/// request-header limit (60 KiB by default); real access tokens are 1–4 KiB (an Azure AD token
/// with many group claims reaches about 8 KiB). 16 KiB leaves room for those and keeps the
/// parse cost and the verified-token cache's memory small (1024 entries × 16 KiB at worst).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What the header and payload of a token say, once checked.
#[derive(Debug, Clone)]
pub(crate) struct ParsedToken {
    /// The header's `alg`.
    pub(crate) alg: Algorithm,
    /// The header's `kid`; an empty `kid` counts as none (as in Envoy).
    pub(crate) kid: Option<String>,
    /// `token[..signing_input]` is `header.payload`, what the signature covers.
    pub(crate) signing_input: usize,
    /// Where the payload segment is in the token (for `outputPayloadToHeader`).
    pub(crate) payload: Range<usize>,
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
    /// The claims.
    pub(crate) claims: Claims,
}

/// The payload's registered claims, typed, and the whole payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claims {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) aud: Vec<String>,
    pub(crate) exp: u64,
    pub(crate) nbf: Option<u64>,
    pub(crate) iat: Option<u64>,
    pub(crate) payload: Map<String, Value>,
}

/// Parses and checks a token. The error is the reason a 401 gives.
pub(crate) fn parse(token: &[u8]) -> Result<ParsedToken, FailureReason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(FailureReason::TooLarge);
    }
    let mut dots = token.iter().enumerate().filter(|(_, &b)| b == b'.').map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(FailureReason::BadFormat);
    };
    let header_b64 = token.get(..first).unwrap_or_default();
    let payload_b64 = token.get(first + 1..second).unwrap_or_default();
    let signature_b64 = token.get(second + 1..).unwrap_or_default();
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(FailureReason::BadFormat);
    }

    let header = base64url_decode(header_b64).ok_or(FailureReason::HeaderBadBase64)?;
    let header = parse_json_object(&header).map_err(|_| FailureReason::HeaderBadJson)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            Algorithm::from_name(name).ok_or(FailureReason::HeaderAlgNotSupported)?
        }
        _ => return Err(FailureReason::HeaderBadAlg),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()).filter(|k| !k.is_empty()),
        Some(_) => return Err(FailureReason::HeaderBadKid),
    };
    check_header_parameters(&header).map_err(FailureReason::HeaderParameter)?;

    let payload = base64url_decode(payload_b64).ok_or(FailureReason::PayloadBadBase64)?;
    let payload = parse_json_object(&payload).map_err(|_| FailureReason::PayloadBadJson)?;
    let claims = check_claims(payload)?;

    let signature = base64url_decode(signature_b64).ok_or(FailureReason::SignatureBadBase64)?;
    Ok(ParsedToken {
        alg,
        kid,
        signing_input: second,
        payload: first + 1..second,
        signature,
        claims,
    })
}

fn check_header_parameters(header: &Map<String, Value>) -> Result<(), HeaderParameter> {
    let refused = [
        ("crit", HeaderParameter::Crit),
        ("jku", HeaderParameter::Jku),
        ("x5u", HeaderParameter::X5u),
        ("jwk", HeaderParameter::Jwk),
        ("x5c", HeaderParameter::X5c),
        ("salt", HeaderParameter::Salt),
    ];
    for (name, parameter) in refused {
        if header.contains_key(name) {
            return Err(parameter);
        }
    }
    if header.get("b64").is_some_and(|b64| b64 != &Value::Bool(true)) {
        return Err(HeaderParameter::B64);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if is_jws_media_type(typ) => {}
        Some(_) => return Err(HeaderParameter::Typ),
    }
    match header.get("cty") {
        None => {}
        Some(Value::String(cty)) if !cty.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(HeaderParameter::Cty),
    }
    for name in ["x5t", "x5t#S256"] {
        if header.get(name).is_some_and(|v| !v.is_string()) {
            return Err(HeaderParameter::X5t);
        }
    }
    Ok(())
}

/// Whether a `typ` names a compact JWS: `JWT` (RFC 7519 §5.1), `JOSE` (RFC 7515 §4.1.9),
/// or a structured `+jwt` type (`at+jwt`, RFC 9068), compared case-insensitively, with
/// `application/` implied when no `/` is written (RFC 7515 §4.1.9). `JOSE+JSON` (the JSON
/// serialization) and everything else are refused.
fn is_jws_media_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let media = if typ.contains('/') { typ } else { format!("application/{typ}") };
    let Some(subtype) = media.strip_prefix("application/") else { return false };
    subtype == "jwt" || subtype == "jose" || (subtype.ends_with("+jwt") && subtype.len() > 4)
}

/// A time claim (RFC 7519 §2 NumericDate: any JSON number): `None` when absent; the two
/// reasons when it is not a number, or a number out of range. Fractions are truncated to whole
/// seconds, as Envoy's `StructUtils::GetUInt64` does; negative numbers and numbers of 2^64 and
/// more are out of range.
fn time_claim(
    payload: &Map<String, Value>,
    name: &str,
    not_number: FailureReason,
    out_of_range: FailureReason,
) -> Result<Option<u64>, FailureReason> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(value) = number.as_u64() {
                return Ok(Some(value));
            }
            // 2^64 as f64: every finite value below it truncates into a u64.
            const LIMIT: f64 = 18_446_744_073_709_551_616.0;
            match number.as_f64() {
                Some(f) if (0.0..LIMIT).contains(&f) => Ok(Some(f as u64)),
                _ => Err(out_of_range),
            }
        }
        Some(_) => Err(not_number),
    }
}

fn string_claim(
    payload: &Map<String, Value>,
    name: &str,
    reason: FailureReason,
) -> Result<Option<String>, FailureReason> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(reason),
    }
}

fn check_claims(payload: Map<String, Value>) -> Result<Claims, FailureReason> {
    use FailureReason::*;
    let iss = string_claim(&payload, "iss", IssNotString)?;
    let sub = string_claim(&payload, "sub", SubNotString)?;
    let iat = time_claim(&payload, "iat", IatNotInteger, IatOutOfRange)?;
    let nbf = time_claim(&payload, "nbf", NbfNotInteger, NbfOutOfRange)?;
    let exp = time_claim(&payload, "exp", ExpNotInteger, ExpOutOfRange)?.ok_or(ExpMissing)?;
    string_claim(&payload, "jti", JtiNotString)?;
    string_claim(&payload, "nonce", NonceNotString)?;
    let aud = match payload.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string).ok_or(AudNotStringOrList))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(AudNotStringOrList),
    };
    Ok(Claims { iss, sub, aud, exp, nbf, iat, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::codec::base64url_encode;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            base64url_encode(header.as_bytes()),
            base64url_encode(payload.as_bytes()),
            base64url_encode(b"signature")
        )
    }

    const HEADER: &str = r#"{"alg":"RS256","kid":"k1"}"#;
    const PAYLOAD: &str = r#"{"iss":"i","sub":"s","exp":2000000000}"#;

    fn reason(header: &str, payload: &str) -> FailureReason {
        parse(token(header, payload).as_bytes()).unwrap_err()
    }

    #[test]
    fn a_well_formed_token_parses() {
        let raw = token(
            HEADER,
            r#"{"iss":"i","sub":"s","exp":2000000000,"aud":["a","b"],"nbf":1,"iat":0}"#,
        );
        let parsed = parse(raw.as_bytes()).unwrap();
        assert_eq!(parsed.alg, Algorithm::Rs256);
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.signature, b"signature");
        assert_eq!(&raw[..parsed.signing_input], raw.rsplit_once('.').unwrap().0);
        assert_eq!(&raw[parsed.payload.clone()], raw.split('.').nth(1).unwrap());
        assert_eq!(parsed.claims.iss.as_deref(), Some("i"));
        assert_eq!(parsed.claims.aud, ["a", "b"]);
        assert_eq!(
            (parsed.claims.exp, parsed.claims.nbf, parsed.claims.iat),
            (2000000000, Some(1), Some(0))
        );
    }

    #[test]
    fn structure_is_three_non_empty_segments() {
        // jwt_verify_lib jwt.cc: exactly two dots, SkipEmpty split into 3.
        let good = token(HEADER, PAYLOAD);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        for bad in [
            String::new(),
            ".".into(),
            "..".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}."),
            format!("{h}..{s}"),
            format!(".{p}.{s}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}.{p}.{s}.{s}.{s}"), // JWE shape
            format!("{good}."),
        ] {
            assert_eq!(parse(bad.as_bytes()).unwrap_err(), FailureReason::BadFormat, "{bad:?}");
        }
    }

    #[test]
    fn oversized_tokens_are_refused_before_parsing() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(parse(big.as_bytes()).unwrap_err(), FailureReason::TooLarge);
    }

    #[test]
    fn header_checks_follow_envoy_order() {
        assert_eq!(
            parse(format!("e30.{}.c2ln", base64url_encode(PAYLOAD.as_bytes())).as_bytes())
                .unwrap_err(),
            FailureReason::HeaderBadAlg
        ); // {} has no alg
        assert_eq!(parse(b"e30=.e30.c2ln").unwrap_err(), FailureReason::HeaderBadBase64);
        assert_eq!(reason("[1]", PAYLOAD), FailureReason::HeaderBadJson);
        assert_eq!(
            reason(r#"{"alg":"RS256","alg":"none"}"#, PAYLOAD),
            FailureReason::HeaderBadJson
        );
        assert_eq!(reason(r#"{"alg":256}"#, PAYLOAD), FailureReason::HeaderBadAlg);
        assert_eq!(reason(r#"{"alg":"none"}"#, PAYLOAD), FailureReason::HeaderAlgNotSupported);
        assert_eq!(reason(r#"{"alg":"ES512"}"#, PAYLOAD), FailureReason::HeaderAlgNotSupported);
        assert_eq!(reason(r#"{"alg":"RS256","kid":7}"#, PAYLOAD), FailureReason::HeaderBadKid);
    }

    #[test]
    fn refused_header_parameters() {
        use HeaderParameter::*;
        for (header, parameter) in [
            (r#"{"alg":"RS256","crit":["exp"]}"#, Crit),
            (r#"{"alg":"RS256","crit":[]}"#, Crit),
            (r#"{"alg":"RS256","b64":false}"#, B64),
            (r#"{"alg":"RS256","jku":"https://evil/jwks"}"#, Jku),
            (r#"{"alg":"RS256","x5u":"https://evil/cert"}"#, X5u),
            (r#"{"alg":"RS256","jwk":{"kty":"oct","k":"AAAA"}}"#, Jwk),
            (r#"{"alg":"RS256","x5c":["MIIB"]}"#, X5c),
            (r#"{"alg":"RS256","salt":"AAAA"}"#, Salt),
            (r#"{"alg":"RS256","typ":"JWE"}"#, Typ),
            (r#"{"alg":"RS256","typ":1}"#, Typ),
            (r#"{"alg":"RS256","typ":"JOSE+JSON"}"#, Typ),
            (r#"{"alg":"RS256","typ":"text/jwt"}"#, Typ),
            (r#"{"alg":"RS256","typ":"+jwt"}"#, Typ),
            (r#"{"alg":"RS256","typ":""}"#, Typ),
            (r#"{"alg":"RS256","cty":"JWT"}"#, Cty),
            (r#"{"alg":"RS256","cty":["x"]}"#, Cty),
            (r#"{"alg":"RS256","x5t":1}"#, X5t),
            (r#"{"alg":"RS256","x5t#S256":{}}"#, X5t),
        ] {
            assert_eq!(
                reason(header, PAYLOAD),
                FailureReason::HeaderParameter(parameter),
                "{header}"
            );
        }
        for header in [
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"jwt"}"#,
            r#"{"alg":"RS256","typ":"at+jwt"}"#,
            // RFC 7515 §4.1.9 and RFC 7519 §5.1: JWS media types, `application/` optional.
            r#"{"alg":"RS256","typ":"JOSE"}"#,
            r#"{"alg":"RS256","typ":"application/jwt"}"#,
            r#"{"alg":"RS256","typ":"application/JOSE"}"#,
            r#"{"alg":"RS256","typ":"application/at+jwt"}"#,
            r#"{"alg":"RS256","b64":true}"#,
            r#"{"alg":"RS256","cty":"application/example"}"#,
            r#"{"alg":"RS256","x5t":"abc"}"#,
            r#"{"alg":"RS256","kid":""}"#,
        ] {
            assert!(parse(token(header, PAYLOAD).as_bytes()).is_ok(), "{header}");
        }
    }

    #[test]
    fn claim_types_are_checked() {
        use FailureReason::*;
        for (payload, expected) in [
            (r#"{"iss":1,"exp":1}"#, IssNotString),
            (r#"{"iss":null,"exp":1}"#, IssNotString),
            (r#"{"sub":[],"exp":1}"#, SubNotString),
            (r#"{"iat":"1","exp":1}"#, IatNotInteger),
            (r#"{"iat":-1,"exp":1}"#, IatOutOfRange),
            (r#"{"nbf":true,"exp":1}"#, NbfNotInteger),
            (r#"{"nbf":-5,"exp":1}"#, NbfOutOfRange),
            (r#"{"exp":"2000000000"}"#, ExpNotInteger),
            (r#"{"exp":null}"#, ExpNotInteger),
            (r#"{"exp":-1}"#, ExpOutOfRange),
            (r#"{"exp":-0.5}"#, ExpOutOfRange),
            (r#"{"exp":1.8446744073709552e19}"#, ExpOutOfRange),
            (r#"{"exp":18446744073709551616}"#, ExpOutOfRange),
            (r#"{"iss":"i"}"#, ExpMissing),
            (r#"{"exp":1,"jti":5}"#, JtiNotString),
            (r#"{"exp":1,"nonce":5}"#, NonceNotString),
            (r#"{"exp":1,"aud":5}"#, AudNotStringOrList),
            (r#"{"exp":1,"aud":["a",5]}"#, AudNotStringOrList),
            (r#"{"exp":1,"aud":{"a":1}}"#, AudNotStringOrList),
            (r#"[]"#, PayloadBadJson),
            (r#"{"exp":1,"exp":2}"#, PayloadBadJson),
        ] {
            assert_eq!(reason(HEADER, payload), expected, "{payload}");
        }
        let parsed = parse(token(HEADER, r#"{"exp":0,"aud":[]}"#).as_bytes()).unwrap();
        assert_eq!((parsed.claims.exp, parsed.claims.aud.len()), (0, 0));
        let parsed = parse(token(HEADER, r#"{"exp":18446744073709551615}"#).as_bytes()).unwrap();
        assert_eq!(parsed.claims.exp, u64::MAX);
    }

    #[test]
    fn numeric_dates_are_any_json_number() {
        // RFC 7519 §2: "A JSON numeric value representing the number of seconds from
        // 1970-01-01T00:00:00Z UTC until the specified UTC date/time". Envoy's
        // jwt_verify_lib reads them as doubles and truncates.
        for (payload, exp, iat) in [
            (r#"{"exp":2000000000.9,"iat":1.5}"#, 2_000_000_000, Some(1)),
            (r#"{"exp":2e9}"#, 2_000_000_000, None),
            (r#"{"exp":1E10,"iat":0.0}"#, 10_000_000_000, Some(0)),
            (r#"{"exp":2000000000e0}"#, 2_000_000_000, None),
        ] {
            let parsed = parse(token(HEADER, payload).as_bytes()).unwrap();
            assert_eq!((parsed.claims.exp, parsed.claims.iat), (exp, iat), "{payload}");
        }
    }

    #[test]
    fn segments_must_be_canonical_base64url() {
        let good = token(HEADER, PAYLOAD);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        assert_eq!(
            parse(format!("{h}=.{p}.{s}").as_bytes()).unwrap_err(),
            FailureReason::HeaderBadBase64
        );
        assert_eq!(
            parse(format!("{h}.{p} .{s}").as_bytes()).unwrap_err(),
            FailureReason::PayloadBadBase64
        );
        assert_eq!(
            parse(format!("{h}.{p}.{s}=").as_bytes()).unwrap_err(),
            FailureReason::SignatureBadBase64
        );
        assert_eq!(
            parse(format!("{h}.{p}.+/+/").as_bytes()).unwrap_err(),
            FailureReason::SignatureBadBase64
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Biased towards the JWT alphabet so some inputs get deep into parsing.
        let alphabet = b"eyJhbGciOiJSUzI1NiJ9.-_\xff\x00{}";
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..400 {
            let bytes = crate::authn::codec::random_bytes(&mut seed, alphabet, len);
            let _ = parse(&bytes);
        }
    }
}
