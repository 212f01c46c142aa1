#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Conformance of request authentication with Istio `RequestAuthentication` as Envoy's
//! `jwt_authn` enforces it. Every case names the behaviour it pins (`source`); cases marked
//! `Warden` pin a deliberate difference (stricter than Envoy).
//!
//! Every request is decided three ways (pure Rust, emulated host crypto, warm cache) and the
//! three must agree (see `authn/support.rs`).
//!
//! Sources, abbreviated (Envoy 1.40; istio/istio 86c9f01fd73; istio/api b8f8791d9):
//! - `extractor.cc`, `authenticator.cc`, `filter.cc`: Envoy
//!   `source/extensions/filters/http/jwt_authn/`.
//! - `jwt.cc`, `verify.cc`, `check_audience`, `status.cc`: google/jwt_verify_lib `src/`.
//! - `policy_applier.go`: istio `pilot/pkg/security/authn/policy_applier.go`.
//! - `RA proto`: istio/api `security/v1beta1/request_authentication.proto`.
//! - `generator.go`: istio `pilot/pkg/security/authz/model/generator.go`.
//! - Warden's own differences: `docs/compatibility.md#tokens`.

#[path = "authn/support.rs"]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use warden::authn::{
    self, Algorithm, Authenticator, AuthnSettings, FailureReason, Outcome, Policy, RuleProblem,
    SourceId,
};
use warden::config::Problem;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

enum Expect {
    Anonymous,
    Principal(&'static str),
    Reject(FailureReason),
    Wait(Vec<usize>),
    Check(Box<dyn Fn(&Outcome)>),
}

struct Case {
    name: &'static str,
    source: &'static str,
    authn: Authenticator,
    req: Req,
    now: u64,
    store: Store,
    expect: Expect,
}

fn case(name: &'static str, source: &'static str, rules: Value, req: Req, expect: Expect) -> Case {
    Case {
        name,
        source,
        authn: authenticator(rules),
        req,
        now: NOW,
        store: Store::default(),
        expect,
    }
}

impl Case {
    fn store(mut self, store: Store) -> Case {
        self.store = store;
        self
    }

    fn policies(mut self, policies: &[Value]) -> Case {
        self.authn = authenticator_for(policies, &workload());
        self
    }
}

const ALICE: &str = "https://issuer.example.com/alice";

fn default_rules() -> Value {
    json!([rule(json!({}))])
}

fn check(f: impl Fn(&Outcome) + 'static) -> Expect {
    Expect::Check(Box::new(f))
}

fn headers_of(outcome: &Outcome) -> &authn::HeaderOps {
    match outcome {
        Outcome::Authenticated { headers, .. } | Outcome::Anonymous { headers } => headers,
        other => panic!("expected headers, got {other:?}"),
    }
}

fn set_header<'a>(outcome: &'a Outcome, name: &str) -> Option<&'a [u8]> {
    headers_of(outcome).set.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

fn extraction_cases() -> Vec<Case> {
    let t = good();
    let bob = token(Algorithm::Rs256, &claims(ISSUER, "bob"));
    let r = default_rules;
    vec![
        case("no token is anonymous", "policy_applier.go requires_any[P, allow_missing]; authenticator.cc JwtMissed", r(), Req::new(), Expect::Anonymous),
        case("presence REQUIRED refuses a request without a token", "istio/istio manifests/charts/base/files/crd-all.gen.yaml jwtRules.presence (istiod does not act on it yet; Warden enforces it: docs/compatibility.md#validation-parity); Envoy authenticator.cc JwtMissed => 'Jwt is missing'", json!([rule(json!({"presence": "REQUIRED"}))]), Req::new(), Expect::Reject(FailureReason::Missing)),
        case("presence REQUIRED with a valid token", "presence only adds the no-token refusal", json!([rule(json!({"presence": "REQUIRED"}))]), Req::new().bearer(&t), Expect::Principal(ALICE)),
        case("presence OPTIONAL is the default", "crd-all.gen.yaml presence enum OPTIONAL", json!([rule(json!({"presence": "OPTIONAL"}))]), Req::new(), Expect::Anonymous),
        case("Authorization Bearer token", "extractor.cc default Authorization + 'Bearer '", r(), Req::new().bearer(&t), Expect::Principal(ALICE)),
        case("access_token query parameter", "extractor.cc default access_token param", r(), Req::new().path(format!("/api?access_token={t}")), Expect::Principal(ALICE)),
        case("access_token is percent-decoded", "extractor.cc parseAndDecodeQueryString", r(), Req::new().path(format!("/api?x=1&access_token={}", t.replace('.', "%2E"))), Expect::Principal(ALICE)),
        case("lower-case bearer carries the token", "Warden stricter: RFC 7235 §2.1 and RFC 6750 §2.1, the auth scheme is case-insensitive (Envoy's extractor.cc find() is not, and sees no token)", r(), Req::new().header("authorization", format!("bearer {t}")), Expect::Principal(ALICE)),
        case("an invalid token under lower-case bearer is refused", "Warden stricter: RFC 7235 §2.1; never passes as 'no token'", r(), Req::new().header("authorization", "bearer x.y.z"), Expect::Reject(FailureReason::HeaderBadBase64)),
        case("an invalid token under BEARER is refused", "Warden stricter: RFC 7235 §2.1", r(), Req::new().header("authorization", "BEARER abc"), Expect::Reject(FailureReason::BadFormat)),
        case("Basic credentials are no token", "extractor.cc prefix not found => skipped", r(), Req::new().header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"), Expect::Anonymous),
        case("Bearer with nothing after it fails to parse", "extractor.cc extractJWT returns the raw value when nothing JWT-legal follows", r(), Req::new().header("authorization", "Bearer "), Expect::Reject(FailureReason::BadFormat)),
        case("prefix found inside the value", "extractor.cc value_str.find(prefix) anywhere", r(), Req::new().header("authorization", format!("Token Bearer {t}")), Expect::Principal(ALICE)),
        case("spaces after the prefix are skipped", "extractor.cc find_first_of(base64url + '.')", r(), Req::new().header("authorization", format!("Bearer    {t}")), Expect::Principal(ALICE)),
        case("a quoted token keeps its closing quote and fails", "extractor.cc substr(starting): the rest of the value is the token", r(), Req::new().header("authorization", format!("Bearer \"{t}\"")), Expect::Reject(FailureReason::SignatureBadBase64)),
        case("the same token in two Authorization headers", "extractor.cc every occurrence; authenticator.cc all tokens verified", r(), Req::new().bearer(&t).bearer(&t), Expect::Principal(ALICE)),
        case("a good and a bad Authorization header", "authenticator.cc 'If a request has multiple tokens, all of them must be valid'", r(), Req::new().bearer(&t).bearer("x.y.z"), Expect::Reject(FailureReason::MultipleTokens)),
        case("the same token in header and parameter", "extractor.cc header and param locations both extracted", r(), Req::new().bearer(&t).path(format!("/api?access_token={t}")), Expect::Principal(ALICE)),
        case("two different valid tokens", "Warden: Istio leaves the principal undefined (RA proto); refused with 'Found multiple Jwt tokens'", r(), Req::new().bearer(&t).path(format!("/api?access_token={bob}")), Expect::Reject(FailureReason::MultipleTokens)),
        case("two different access_token parameters are refused", "Warden stricter: Envoy's extractor.cc takes params.getFirstValue and ignores the rest; Warden reads them all, as it does repeated headers", r(), Req::new().path(format!("/api?access_token={t}&access_token=garbage")), Expect::Reject(FailureReason::MultipleTokens)),
        case("the same token in two access_token parameters", "one token twice is one token", r(), Req::new().path(format!("/api?access_token={t}&access_token={t}")), Expect::Principal(ALICE)),
        case("a parameter with a longer name is not the token", "extractor.cc exact parameter name", r(), Req::new().path(format!("/api?access_tokens={t}")), Expect::Anonymous),
        case("a token in an unconfigured header is ignored", "extractor.cc extract reads only configured header/param/cookie locations: others are ignored", r(), Req::new().header("x-jwt", &t), Expect::Anonymous),
        case("fromHeaders without prefix takes the whole value", "RA proto fromHeaders; extractor.cc empty value_prefix", json!([rule(json!({"fromHeaders": [{"name": "x-jwt"}]}))]), Req::new().header("x-jwt", &t), Expect::Principal(ALICE)),
        case("fromHeaders replaces the default locations", "extractor.cc defaults only when no location is configured", json!([rule(json!({"fromHeaders": [{"name": "x-jwt"}]}))]), Req::new().bearer(&t), Expect::Anonymous),
        case("fromHeaders names are case-insensitive", "RA proto 'header name'; extractor.cc LowerCaseString", json!([rule(json!({"fromHeaders": [{"name": "X-JWT"}]}))]), Req::new().header("x-jwt", &t), Expect::Principal(ALICE)),
        case("a custom prefix that is absent means no token", "extractor.cc prefix not found => skipped", json!([rule(json!({"fromHeaders": [{"name": "x-jwt", "prefix": "Token "}]}))]), Req::new().header("x-jwt", &t), Expect::Anonymous),
        case("a custom prefix that is present", "extractor.cc value_prefix", json!([rule(json!({"fromHeaders": [{"name": "x-jwt", "prefix": "Token "}]}))]), Req::new().header("x-jwt", format!("Token {t}")), Expect::Principal(ALICE)),
        case("fromParams names a custom parameter", "RA proto fromParams", json!([rule(json!({"fromParams": ["jwt"]}))]), Req::new().path(format!("/api?jwt={t}")), Expect::Principal(ALICE)),
        case("fromParams replaces access_token", "extractor.cc defaults only when no location is configured", json!([rule(json!({"fromParams": ["jwt"]}))]), Req::new().path(format!("/api?access_token={t}")), Expect::Anonymous),
        case("fromCookies reads the cookie", "RA proto fromCookies (Istio 1.21); extractor.cc parseCookies", json!([rule(json!({"fromCookies": ["session"]}))]), Req::new().header("cookie", format!("a=1; session={t}")), Expect::Principal(ALICE)),
        case("a quoted cookie value is unquoted", "Envoy Http::Utility::parseCookies strips one pair of quotes", json!([rule(json!({"fromCookies": ["session"]}))]), Req::new().header("cookie", format!("session=\"{t}\"")), Expect::Principal(ALICE)),
        case("no such cookie is no token", "extractor.cc cookie absent", json!([rule(json!({"fromCookies": ["session"]}))]), Req::new().header("cookie", format!("other={t}")), Expect::Anonymous),
        case("CORS preflight skips verification", "policy_applier.go bypass_cors_preflight; filter.cc isCorsPreflightRequest", r(), Req::new().method("OPTIONS").header("origin", "https://app").header("access-control-request-method", "POST").bearer("not.a.token"), Expect::Anonymous),
        case("OPTIONS without Access-Control-Request-Method is verified", "filter.cc isCorsPreflightRequest needs Origin and ACRM", r(), Req::new().method("OPTIONS").header("origin", "https://app").bearer("not.a.token"), Expect::Reject(FailureReason::HeaderBadBase64)),
        case(
            "output headers are stripped even without a token",
            "extractor.cc sanitizeHeaders (anti-spoofing)",
            json!([rule(json!({"outputPayloadToHeader": "x-jwt-payload", "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}]}))]),
            Req::new().header("x-jwt-payload", "forged").header("x-sub", "admin"),
            check(|o| {
                assert!(matches!(o, Outcome::Anonymous { .. }));
                let strip: Vec<&str> = headers_of(o).removals().collect();
                assert_eq!(strip, ["x-jwt-payload", "x-sub"]);
            }),
        ),
    ]
}

fn parse_cases() -> Vec<Case> {
    let r = default_rules;
    let c = claims(ISSUER, "alice").to_string();
    let reject = |name, source, token: String, reason| {
        case(name, source, r(), Req::new().bearer(&token), Expect::Reject(reason))
    };
    let header = r#"{"alg":"RS256","kid":"rsa"}"#;
    let signed_payload = |payload: &str| raw_token(Algorithm::Rs256, By::Trusted, header, payload);
    let signed_header = |header: &str| raw_token(Algorithm::Rs256, By::Trusted, header, &c);
    let h = b64(header.as_bytes());
    let p = b64(c.as_bytes());
    use FailureReason::*;
    vec![
        reject("one segment", "jwt.cc exactly two dots (JwtBadFormat)", "abc".into(), BadFormat),
        reject("two segments", "jwt.cc exactly two dots", format!("{h}.{p}"), BadFormat),
        reject(
            "an empty middle segment",
            "jwt.cc StrSplit SkipEmpty => 3 sections",
            format!("{h}..c2ln"),
            BadFormat,
        ),
        reject(
            "five segments (JWE)",
            "jwt.cc exactly two dots",
            format!("{h}.{p}.a.b.c"),
            BadFormat,
        ),
        reject(
            "unsecured token with an empty signature",
            "jwt.cc SkipEmpty: 'h.p.' has 2 sections",
            format!("{}.{p}.", b64(br#"{"alg":"none"}"#)),
            BadFormat,
        ),
        reject(
            "header not base64url",
            "jwt.cc JwtHeaderParseErrorBadBase64",
            format!("e30*.{p}.c2ln"),
            HeaderBadBase64,
        ),
        reject(
            "header not JSON",
            "jwt.cc JwtHeaderParseErrorBadJson",
            format!("{}.{p}.c2ln", b64(b"not json")),
            HeaderBadJson,
        ),
        reject(
            "header without alg",
            "jwt.cc JwtHeaderBadAlg",
            signed_header(r#"{"kid":"rsa"}"#),
            HeaderBadAlg,
        ),
        reject(
            "alg not a string",
            "jwt.cc JwtHeaderBadAlg",
            signed_header(r#"{"alg":["RS256"]}"#),
            HeaderBadAlg,
        ),
        reject(
            "alg none with a signature",
            "jwt.cc isImplemented: none is not",
            forge(r#"{"alg":"none"}"#, &c, b"x"),
            HeaderAlgNotSupported,
        ),
        reject(
            "alg NONE",
            "jwt.cc isImplemented (case-sensitive)",
            forge(r#"{"alg":"NONE"}"#, &c, b"x"),
            HeaderAlgNotSupported,
        ),
        reject(
            "alg ES512",
            "Warden: no P-521 (Envoy verifies ES512)",
            forge(r#"{"alg":"ES512"}"#, &c, &[1; 132]),
            HeaderAlgNotSupported,
        ),
        reject(
            "kid not a string",
            "jwt.cc JwtHeaderBadKid",
            signed_header(r#"{"alg":"RS256","kid":1}"#),
            HeaderBadKid,
        ),
        reject(
            "payload not base64url",
            "jwt.cc JwtPayloadParseErrorBadBase64",
            format!("{h}.{}*.c2ln", &p[..p.len() - 1]),
            PayloadBadBase64,
        ),
        reject(
            "payload not JSON",
            "jwt.cc JwtPayloadParseErrorBadJson",
            signed_payload("{\"iss\":"),
            PayloadBadJson,
        ),
        reject(
            "iss not a string",
            "jwt.cc JwtPayloadParseErrorIssNotString",
            signed_payload(&claims_with(json!({"iss": 1})).to_string()),
            IssNotString,
        ),
        reject(
            "sub not a string",
            "jwt.cc JwtPayloadParseErrorSubNotString",
            signed_payload(&claims_with(json!({"sub": {"id": 1}})).to_string()),
            SubNotString,
        ),
        reject(
            "iat not a number",
            "jwt.cc JwtPayloadParseErrorIatNotInteger",
            signed_payload(&claims_with(json!({"iat": "now"})).to_string()),
            IatNotInteger,
        ),
        reject(
            "nbf not a number",
            "jwt.cc JwtPayloadParseErrorNbfNotInteger",
            signed_payload(&claims_with(json!({"nbf": true})).to_string()),
            NbfNotInteger,
        ),
        reject(
            "exp not a number",
            "jwt.cc JwtPayloadParseErrorExpNotInteger",
            signed_payload(&claims_with(json!({"exp": "tomorrow"})).to_string()),
            ExpNotInteger,
        ),
        reject(
            "exp negative",
            "status.cc JwtPayloadParseErrorExpOutOfRange",
            signed_payload(&claims_with(json!({"exp": -1})).to_string()),
            ExpOutOfRange,
        ),
        reject(
            "jti not a string",
            "jwt.cc JwtPayloadParseErrorJtiNotString",
            signed_payload(&claims_with(json!({"jti": 5})).to_string()),
            JtiNotString,
        ),
        reject(
            "aud a number",
            "jwt.cc JwtPayloadParseErrorAudNotString",
            signed_payload(&claims_with(json!({"aud": 5})).to_string()),
            AudNotStringOrList,
        ),
        reject(
            "aud a list with a number",
            "jwt.cc GetStringList",
            signed_payload(&claims_with(json!({"aud": ["a", 5]})).to_string()),
            AudNotStringOrList,
        ),
        reject(
            "signature not base64url",
            "jwt.cc JwtSignatureParseErrorBadBase64",
            format!("{h}.{p}.c2ln*"),
            SignatureBadBase64,
        ),
        reject(
            "no exp",
            "Warden: exp required (Envoy: never expires, jwt.cc verifyTimeConstraint; docs/compatibility.md#tokens)",
            signed_payload(&claims_with(json!({"exp": null})).to_string()),
            ExpMissing,
        ),
        reject(
            "exp 0",
            "Warden: exp 0 is 1970 (Envoy: exp 0 never expires, jwt.cc verifyTimeConstraint)",
            signed_payload(&claims_with(json!({"exp": 0})).to_string()),
            Expired,
        ),
        reject(
            "a negative fractional iat",
            "Warden: NumericDates below 0 are out of range (RFC 7519 §2 allows them; no token issued before 1970 is real)",
            signed_payload(&claims_with(json!({"iat": -0.5})).to_string()),
            IatOutOfRange,
        ),
    ]
}

fn algorithm_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Algorithm::ALL
        .into_iter()
        .map(|alg| {
            let name: &'static str = Box::leak(format!("{alg} with its key").into_boxed_str());
            case(
                name,
                "RA proto/jwt.cc: RS*, PS*, ES256/384, EdDSA, HS* (oct) verified",
                default_rules(),
                Req::new().bearer(&token(alg, &claims(ISSUER, "alice"))),
                Expect::Principal(ALICE),
            )
        })
        .collect();
    let pinned_rs256 = jwks_of(vec![{
        let mut k = rsa_jwk();
        k["alg"] = json!("RS256");
        k
    }]);
    use FailureReason::*;
    cases.extend([
        case("the key's alg decides: PS256 token, RS256 key", "verify.cc 'jwk->alg_ != jwt.alg_' => JwksKidAlgMismatch", json!([rule(json!({"jwks": pinned_rs256}))]), Req::new().bearer(&token(Algorithm::Ps256, &claims(ISSUER, "alice"))), Expect::Reject(KidAlgMismatch)),
        case("HS256 with the RSA key's kid (key confusion)", "Warden: kty decides the family (docs/compatibility.md#tokens; RFC 8725 §3.1)", default_rules(), Req::new().bearer(&token_with(Algorithm::Hs256, By::Trusted, json!({"kid": "rsa"}), &claims(ISSUER, "alice"))), Expect::Reject(KidAlgMismatch)),
        case("RS256 signed by another key", "verify.cc JwtVerificationFail", default_rules(), Req::new().bearer(&token_with(Algorithm::Rs256, By::Stranger, json!({}), &claims(ISSUER, "alice"))), Expect::Reject(VerificationFailed)),
        case("ES256 signed by another key", "verify.cc JwtVerificationFail", default_rules(), Req::new().bearer(&token_with(Algorithm::Es256, By::Stranger, json!({}), &claims(ISSUER, "alice"))), Expect::Reject(VerificationFailed)),
        case("HS256 with another secret", "verify.cc verifySignatureOct", default_rules(), Req::new().bearer(&token_with(Algorithm::Hs256, By::Stranger, json!({}), &claims(ISSUER, "alice"))), Expect::Reject(VerificationFailed)),
        case(
            "a payload changed after signing",
            "verify.cc signature over header.payload",
            default_rules(),
            Req::new().bearer(&{
                let t = good();
                let parts: Vec<&str> = t.split('.').collect();
                format!("{}.{}.{}", parts[0], b64(claims(ISSUER, "admin").to_string().as_bytes()), parts[2])
            }),
            Expect::Reject(VerificationFailed),
        ),
        case("a 4096-bit RSA key", "Warden: RSA 2048..=4096 bits", json!([rule(json!({"jwks": jwks_of(vec![serde_json::from_str(&jwt_simple::prelude::RS256KeyPair::from_der(&keys().rsa_4096_der).unwrap().public_key().with_key_id("big").to_jwk()).unwrap()])}))]), Req::new().bearer(&token_with(Algorithm::Rs256, By::Rsa4096, json!({"kid": "big"}), &claims(ISSUER, "alice"))), Expect::Principal(ALICE)),
    ]);
    cases
}

fn key_selection_cases() -> Vec<Case> {
    let c = claims(ISSUER, "alice");
    let mut no_kid = rsa_jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let rotation = {
        let mut old = serde_json::from_str::<Value>(
            &jwt_simple::prelude::RS256KeyPair::from_der(&keys().rsa_b_der)
                .unwrap()
                .public_key()
                .with_key_id("rsa")
                .to_jwk(),
        )
        .unwrap();
        old.as_object_mut().unwrap().remove("alg");
        jwks_of(vec![old, rsa_jwk()])
    };
    use FailureReason::*;
    vec![
        case(
            "a token without kid tries the keys",
            "verify.cc 'If kid is not specified in JWT, try all JWK'",
            default_rules(),
            Req::new().bearer(&token_with(Algorithm::Rs256, By::Trusted, json!({"kid": null}), &c)),
            Expect::Principal(ALICE),
        ),
        case(
            "an unknown kid finds no key",
            "verify.cc JwksKidAlgMismatch",
            default_rules(),
            Req::new().bearer(&token_with(
                Algorithm::Rs256,
                By::Trusted,
                json!({"kid": "unknown"}),
                &c,
            )),
            Expect::Reject(KidAlgMismatch),
        ),
        case(
            "a key without kid matches any kid",
            "verify.cc kid compared only when both have one",
            json!([rule(json!({"jwks": jwks_of(vec![no_kid])}))]),
            Req::new().bearer(&token_with(
                Algorithm::Rs256,
                By::Trusted,
                json!({"kid": "anything"}),
                &c,
            )),
            Expect::Principal(ALICE),
        ),
        case(
            "an empty kid counts as none",
            "verify.cc jwt.kid_.empty()",
            default_rules(),
            Req::new().bearer(&token_with(Algorithm::Rs256, By::Trusted, json!({"kid": ""}), &c)),
            Expect::Principal(ALICE),
        ),
        case(
            "two keys share a kid: both are tried",
            "verify.cc loops over every candidate",
            json!([rule(json!({"jwks": rotation}))]),
            Req::new().bearer(&token(Algorithm::Rs256, &c)),
            Expect::Principal(ALICE),
        ),
        case(
            "a kid of another family",
            "verify.cc: kid matches but no key of the token's alg",
            default_rules(),
            Req::new().bearer(&token_with(
                Algorithm::Es256,
                By::Trusted,
                json!({"kid": "rsa"}),
                &c,
            )),
            Expect::Reject(KidAlgMismatch),
        ),
    ]
}

fn time_cases() -> Vec<Case> {
    let at = |extra: Value| Req::new().bearer(&token(Algorithm::Es256, &claims_with(extra)));
    let r = default_rules;
    use FailureReason::*;
    vec![
        case(
            "exp 60 s ago is inside the skew",
            "jwt.cc 'now > exp + clock_skew' (skew 60 s, jwt.h kClockSkewInSecond)",
            r(),
            at(json!({"exp": NOW - 60})),
            Expect::Principal(ALICE),
        ),
        case(
            "exp 61 s ago is expired",
            "jwt.cc JwtExpired",
            r(),
            at(json!({"exp": NOW - 61})),
            Expect::Reject(Expired),
        ),
        case(
            "exp == now is valid",
            "jwt.cc verifyTimeConstraint strict '>'",
            r(),
            at(json!({"exp": NOW})),
            Expect::Principal(ALICE),
        ),
        case(
            "nbf 60 s ahead is inside the skew",
            "jwt.cc 'now + clock_skew < nbf'",
            r(),
            at(json!({"nbf": NOW + 60})),
            Expect::Principal(ALICE),
        ),
        case(
            "nbf 61 s ahead is not yet valid",
            "jwt.cc JwtNotYetValid",
            r(),
            at(json!({"nbf": NOW + 61})),
            Expect::Reject(NotYetValid),
        ),
        case(
            "iat beyond the clock skew in the future is refused",
            "Warden stricter (hardening): google/jwt_verify_lib src/jwt.cc verifyTimeConstraint ignores iat; a token issued after now is forged or from a broken clock",
            r(),
            at(json!({"iat": NOW + 61})),
            Expect::Reject(IssuedInFuture),
        ),
        case(
            "iat within the clock skew in the future is accepted",
            "the 60 s skew of google/jwt_verify_lib jwt.h kClockSkewInSecond, applied to iat as to nbf",
            r(),
            at(json!({"iat": NOW + 60})),
            Expect::Principal(ALICE),
        ),
        case(
            "a fractional exp is truncated",
            "RFC 7519 §2 NumericDate is any JSON number; google/jwt_verify_lib src/struct_utils.cc GetUInt64 truncates",
            r(),
            at(json!({"exp": (NOW + 100) as f64 + 0.5})),
            Expect::Principal(ALICE),
        ),
        case(
            "an exponent-form exp",
            "RFC 7519 §2 NumericDate; RFC 8259 §6 number grammar",
            r(),
            at(json!({"exp": 2e9})),
            Expect::Principal(ALICE),
        ),
        case(
            "Istio's demo token exp (year 2118)",
            "istio security/tools/jwt/samples/demo.jwt exp 4685989700",
            r(),
            at(json!({"exp": 4_685_989_700u64})),
            Expect::Principal(ALICE),
        ),
        case(
            "the largest exp",
            "jwt.cc uint64 exp",
            r(),
            at(json!({"exp": u64::MAX})),
            Expect::Principal(ALICE),
        ),
        case("nbf 0", "jwt.cc nbf default 0", r(), at(json!({"nbf": 0})), Expect::Principal(ALICE)),
    ]
}

fn audience_cases() -> Vec<Case> {
    let aud = |configured: Value, token_aud: Value| {
        let claims = if token_aud.is_null() {
            claims(ISSUER, "alice")
        } else {
            claims_with(json!({ "aud": token_aud }))
        };
        (
            json!([rule(json!({ "audiences": configured }))]),
            Req::new().bearer(&token(Algorithm::Rs256, &claims)),
        )
    };
    let mut cases = Vec::new();
    let mut add = |name, source, (rules, req): (Value, Req), expect| {
        cases.push(case(name, source, rules, req, expect))
    };
    use FailureReason::*;
    add(
        "no audiences configured accepts any aud",
        "check_audience: empty config => allowed (CheckAudience::areAudiencesAllowed)",
        aud(json!([]), json!("anything")),
        Expect::Principal(ALICE),
    );
    add(
        "no audiences configured accepts no aud",
        "check_audience: empty config => allowed",
        aud(json!([]), Value::Null),
        Expect::Principal(ALICE),
    );
    add(
        "aud string matches",
        "check_audience areAudiencesAllowed",
        aud(json!(["api"]), json!("api")),
        Expect::Principal(ALICE),
    );
    add(
        "aud list containing a match",
        "check_audience: any aud in the list",
        aud(json!(["api"]), json!(["web", "api"])),
        Expect::Principal(ALICE),
    );
    add(
        "aud mismatch is 403",
        "filter.cc JwtAudienceNotAllowed => 403",
        aud(json!(["api"]), json!("web")),
        Expect::Reject(AudienceNotAllowed),
    );
    add(
        "no aud with audiences configured is 403",
        "check_audience: no aud matches nothing",
        aud(json!(["api"]), Value::Null),
        Expect::Reject(AudienceNotAllowed),
    );
    add(
        "an empty aud list is 403",
        "check_audience",
        aud(json!(["api"]), json!([])),
        Expect::Reject(AudienceNotAllowed),
    );
    add(
        "https:// and a trailing / are ignored in config",
        "check_audience_test TestConfigHttpsPrefixWithTailing",
        aud(json!(["https://api.example.com/"]), json!("api.example.com")),
        Expect::Principal(ALICE),
    );
    add(
        "http:// and a trailing / are ignored in the token",
        "check_audience_test TestConfigNotPrefixNotTailing",
        aud(json!(["api.example.com"]), json!("http://api.example.com/")),
        Expect::Principal(ALICE),
    );
    add(
        "audiences are case-sensitive",
        "check_audience exact compare",
        aud(json!(["api"]), json!("API")),
        Expect::Reject(AudienceNotAllowed),
    );
    add(
        "only one trailing / is ignored",
        "check_audience sanitizeAudience strips one '/'",
        aud(json!(["api"]), json!("api//")),
        Expect::Reject(AudienceNotAllowed),
    );
    cases
}

fn multi_rule_cases() -> Vec<Case> {
    let a = good();
    let b = token(Algorithm::Es256, &claims(OTHER_ISSUER, "bob"));
    let two = || {
        json!([
            rule(json!({})),
            rule(json!({"issuer": OTHER_ISSUER, "fromHeaders": [{"name": "x-b"}]})),
        ])
    };
    use FailureReason::*;
    vec![
        case("another issuer in Authorization", "extractor.cc JwtIssuerChecker => 'Jwt issuer is not configured' (istio#39427)", default_rules(), Req::new().bearer(&token(Algorithm::Rs256, &claims(OTHER_ISSUER, "bob"))), Expect::Reject(UnknownIssuer)),
        case("a token without iss", "extractor.cc: '' is not a configured issuer", default_rules(), Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"iss": null})))), Expect::Reject(UnknownIssuer)),
        case("issuer compared exactly (case)", "RA proto 'must equal iss'", default_rules(), Req::new().bearer(&token(Algorithm::Rs256, &claims("HTTPS://issuer.example.com", "alice"))), Expect::Reject(UnknownIssuer)),
        case("issuer compared exactly (trailing slash)", "RA proto 'must equal iss'", default_rules(), Req::new().bearer(&token(Algorithm::Rs256, &claims("https://issuer.example.com/", "alice"))), Expect::Reject(UnknownIssuer)),
        case("rule A's token at A's location", "extractor.cc JwtIssuerChecker: a location allows the issuers of the rules that name it", two(), Req::new().bearer(&a), Expect::Principal(ALICE)),
        case("rule B's token at B's location", "extractor.cc JwtIssuerChecker: a location allows the issuers of the rules that name it", two(), Req::new().header("x-b", &b), Expect::Principal("https://other.example.com/bob")),
        case("rule B's token at A's location", "extractor.cc JwtIssuerChecker => JwtUnknownIssuer / ISTIO-SECURITY-2021-001 style binding", two(), Req::new().bearer(&b), Expect::Reject(UnknownIssuer)),
        case("rule A's token at B's location", "extractor.cc JwtIssuerChecker => JwtUnknownIssuer", two(), Req::new().header("x-b", &a), Expect::Reject(UnknownIssuer)),
        case("one token at both locations", "Warden: every location must allow the issuer (Envoy: the provider's own locations)", two(), Req::new().bearer(&a).header("x-b", &a), Expect::Reject(UnknownIssuer)),
        case(
            "same issuer, the second rule's audience",
            "policy_applier.go requires_any[P1, P2]: either provider suffices (outterOrList)",
            json!([rule(json!({"audiences": ["one"]})), rule(json!({"audiences": ["two"]}))]),
            Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"aud": "two"})))),
            Expect::Principal(ALICE),
        ),
        case(
            "same issuer, the key is in the second rule's JWKS",
            "policy_applier.go requires_any[P1, P2]",
            json!([rule(json!({"jwks": jwks_of(vec![serde_json::from_str(&keys().es256_other.public_key().with_key_id("x").to_jwk()).unwrap()])})), rule(json!({}))]),
            Req::new().bearer(&a),
            Expect::Principal(ALICE),
        ),
        case(
            "same issuer, every rule refuses: the first rule's reason",
            "Warden: the first failing rule's status (Envoy reports the last completed requirement)",
            json!([rule(json!({"audiences": ["one"]})), rule(json!({"jwks": jwks_of(vec![serde_json::from_str(&keys().es256_other.public_key().with_key_id("x").to_jwk()).unwrap()])}))]),
            Req::new().bearer(&a),
            Expect::Reject(AudienceNotAllowed),
        ),
        case(
            "a rule without issuer accepts any issuer at its location",
            "RA proto issuer optional with jwksUri (Istio 1.27); extractor.cc empty issuer => allow all",
            json!([{"jwksUri": "https://keys.example.com/jwks"}]),
            Req::new().bearer(&token(Algorithm::Rs256, &claims(OTHER_ISSUER, "bob"))),
            Expect::Principal("https://other.example.com/bob"),
        )
        .store(Store::ready(1, &jwks())),
    ]
}

fn output_cases() -> Vec<Case> {
    let t = good();
    let payload = payload_segment(&t).to_string();
    let rich = token(
        Algorithm::Rs256,
        &claims_with(
            json!({"email": "a@example.com", "n": 7, "f": 2.5, "admin": true, "groups": ["x"], "org": {"team": {"name": "core"}}}),
        ),
    );
    vec![
        case(
            "outputPayloadToHeader is the payload segment as received",
            "authenticator.cc forward_payload_header = payload_str_base64url_",
            json!([rule(json!({"outputPayloadToHeader": "x-jwt-payload"}))]),
            Req::new().bearer(&t).header("x-jwt-payload", "forged"),
            check(move |o| {
                assert_eq!(set_header(o, "x-jwt-payload"), Some(payload.as_bytes()));
                assert!(headers_of(o).removals().any(|h| h == "x-jwt-payload"), "the forged copy is stripped first");
            }),
        ),
        case(
            "outputClaimToHeaders formats as Envoy",
            "authenticator.cc addJWTClaimToHeader: string, integer, %f, bool; lists/objects skipped; '.' nesting",
            json!([rule(json!({"outputClaimToHeaders": [
                {"header": "x-email", "claim": "email"}, {"header": "x-n", "claim": "n"}, {"header": "x-f", "claim": "f"},
                {"header": "x-admin", "claim": "admin"}, {"header": "x-groups", "claim": "groups"},
                {"header": "x-team", "claim": "org.team.name"}, {"header": "x-missing", "claim": "nope"}
            ]}))]),
            Req::new().bearer(&rich),
            check(|o| {
                assert_eq!(set_header(o, "x-email"), Some(&b"a@example.com"[..]));
                assert_eq!(set_header(o, "x-n"), Some(&b"7"[..]));
                assert_eq!(set_header(o, "x-f"), Some(&b"2.500000"[..]));
                assert_eq!(set_header(o, "x-admin"), Some(&b"true"[..]));
                assert_eq!(set_header(o, "x-groups"), None);
                assert_eq!(set_header(o, "x-team"), Some(&b"core"[..]));
                assert_eq!(set_header(o, "x-missing"), None);
            }),
        ),
        case(
            "forwardOriginalToken false removes the whole header",
            "RA proto forwardOriginalToken default false; extractor.cc JwtHeaderLocation::removeJwt",
            default_rules(),
            Req::new().bearer(&t),
            check(|o| assert_eq!(headers_of(o).remove, ["authorization"])),
        ),
        case(
            "forwardOriginalToken true keeps it",
            "RA proto forwardOriginalToken",
            json!([rule(json!({"forwardOriginalToken": true}))]),
            Req::new().bearer(&t),
            check(|o| {
                assert!(headers_of(o).remove.is_empty());
                assert!(headers_of(o).path.is_none());
            }),
        ),
        case(
            "a token parameter is removed from :path",
            "extractor.cc JwtParamLocation::removeJwt",
            default_rules(),
            Req::new().path(format!("/api?a=1&access_token={t}&b=2")),
            check(|o| assert_eq!(headers_of(o).path.as_deref(), Some(&b"/api?a=1&b=2"[..]))),
        ),
        case(
            "a token cookie is never removed",
            "extractor.cc JwtCookieLocation::removeJwt is a TODO",
            json!([rule(json!({"fromCookies": ["session"]}))]),
            Req::new().header("cookie", format!("session={t}")),
            check(|o| {
                assert!(headers_of(o).remove.is_empty());
                assert!(headers_of(o).path.is_none());
            }),
        ),
    ]
}

fn identity_cases() -> Vec<Case> {
    let r = default_rules;
    vec![
        case("principal is iss/sub", "Istio authz model: request.auth.principal = iss/sub (generator.go requestPrincipalGenerator)", r(), Req::new().bearer(&good()), Expect::Principal(ALICE)),
        case(
            "a token without sub has no principal",
            "generator.go requestPrincipalGenerator matches iss and sub apart: token without sub never matches requestPrincipals (istio#59541)",
            r(),
            Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"sub": null})))),
            check(|o| {
                let id = identity(o);
                assert_eq!(id.principal(), None);
                assert_eq!(id.issuer, ISSUER);
            }),
        ),
        case(
            "scope and permission are split on spaces",
            "policy_applier.go normalize_payload_in_metadata, buildSpaceDelimitedClaims (scope, permission always)",
            r(),
            Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"scope": "read  write", "permission": "p1 p2", "roles": "a b"})))),
            check(|o| {
                let id = identity(o);
                assert_eq!(id.claim(&["scope"]), Some(&json!(["read", "write"])));
                assert_eq!(id.claim(&["permission"]), Some(&json!(["p1", "p2"])));
                assert_eq!(id.claim(&["roles"]), Some(&json!("a b")));
            }),
        ),
        case(
            "spaceDelimitedClaims splits top-level claims only",
            "RA proto spaceDelimitedClaims (1.28); Envoy top-level keys only",
            json!([rule(json!({"spaceDelimitedClaims": ["roles", "org.scope"]}))]),
            Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"roles": "a b", "org": {"scope": "x y"}})))),
            check(|o| {
                let id = identity(o);
                assert_eq!(id.claim(&["roles"]), Some(&json!(["a", "b"])));
                assert_eq!(id.claim(&["org", "scope"]), Some(&json!("x y")));
            }),
        ),
        case(
            "claims keep their JSON types",
            "generator.go requestClaimGenerator: request.auth.claims on the payload metadata (strings, lists, nested objects)",
            r(),
            Req::new().bearer(&token(Algorithm::Rs256, &claims_with(json!({"groups": ["g1", "g2"], "org": {"team": "core"}, "level": 3})))),
            check(|o| {
                let id = identity(o);
                assert_eq!(id.claim(&["groups"]), Some(&json!(["g1", "g2"])));
                assert_eq!(id.claim(&["org", "team"]), Some(&json!("core")));
                assert_eq!(id.claim(&["level"]), Some(&json!(3)));
            }),
        ),
    ]
}

fn remote_key_cases() -> Vec<Case> {
    let remote =
        || json!([rule(json!({"jwks": null, "jwksUri": "https://keys.example.com/jwks"}))]);
    let t = good();
    vec![
        case("keys still being fetched: the request waits", "authenticator.cc startVerify: remote fetch pauses the request", remote(), Req::new().bearer(&t), Expect::Wait(vec![0])).store(Store(vec![State::Pending])),
        case("keys that could not be fetched: 401", "authenticator.cc onJwksError => JwksFetchFail 'Jwks remote fetch is failed' (fail closed)", remote(), Req::new().bearer(&t), Expect::Reject(FailureReason::JwksFetchFailed)).store(Store(vec![State::Unavailable])),
        case("fetched keys verify", "RA proto jwksUri", remote(), Req::new().bearer(&t), Expect::Principal(ALICE)).store(Store::ready(1, &jwks())),
        case("no token does not wait for keys", "authenticator.cc JwtMissed before any fetch", remote(), Req::new(), Expect::Anonymous).store(Store(vec![State::Pending])),
        case("a bad token does not wait for keys", "jwt.cc parse before keys", remote(), Req::new().bearer("a.b"), Expect::Reject(FailureReason::BadFormat)).store(Store(vec![State::Pending])),
        case(
            "an unknown kid in fetched keys asks for a refetch",
            "Envoy PR #36458 refetch-on-kid-mismatch (reverted; issue #39643): Warden refetches, rate limited",
            remote(),
            Req::new().bearer(&token_with(Algorithm::Rs256, By::Trusted, json!({"kid": "rotated"}), &claims(ISSUER, "alice"))),
            check(|o| match o {
                Outcome::Rejected(f) => {
                    assert_eq!(f.reason(), FailureReason::KidAlgMismatch);
                    assert_eq!(f.refetch(), Some(SourceId(0)));
                }
                other => panic!("{other:?}"),
            }),
        )
        .store(Store::ready(1, &jwks())),
        case(
            "an unknown kid in inline keys asks for nothing",
            "inline keys never change",
            default_rules(),
            Req::new().bearer(&token_with(Algorithm::Rs256, By::Trusted, json!({"kid": "rotated"}), &claims(ISSUER, "alice"))),
            check(|o| match o {
                Outcome::Rejected(f) => assert_eq!(f.refetch(), None),
                other => panic!("{other:?}"),
            }),
        ),
        case(
            "a rule that refuses and one still fetching: wait",
            "Warden: a rule that could still accept is waited for",
            json!([rule(json!({"audiences": ["nope"]})), rule(json!({"jwks": null, "jwksUri": "https://keys.example.com/jwks"}))]),
            Req::new().bearer(&t),
            Expect::Wait(vec![0]),
        )
        .store(Store(vec![State::Pending])),
        case(
            "a rule that accepts needs no fetch",
            "policy_applier.go requires_any short-circuits on the first OK",
            json!([rule(json!({})), rule(json!({"jwks": null, "jwksUri": "https://keys.example.com/jwks"}))]),
            Req::new().bearer(&t),
            Expect::Principal(ALICE),
        )
        .store(Store(vec![State::Pending])),
        case(
            "published symmetric keys are never used",
            "Warden: oct keys in a fetched JWKS are skipped",
            remote(),
            Req::new().bearer(&token(Algorithm::Hs256, &claims(ISSUER, "alice"))),
            Expect::Reject(FailureReason::KidAlgMismatch),
        )
        .store(Store::ready(1, &jwks())),
    ]
}

fn scope_cases() -> Vec<Case> {
    let bad = Req::new().bearer("not.a.token");
    let p = |ns: &str, selector: Option<Value>| policy(ns, "jwt", selector, default_rules());
    vec![
        case(
            "a policy of another namespace does not apply",
            "policyattachment.go namespace scope",
            json!([]),
            bad.clone(),
            Expect::Anonymous,
        )
        .policies(&[p("other", None)]),
        case(
            "a root-namespace policy applies everywhere",
            "policyattachment.go root namespace (istio-system)",
            json!([]),
            bad.clone(),
            Expect::Reject(FailureReason::HeaderBadBase64),
        )
        .policies(&[p("istio-system", None)]),
        case(
            "a selector that does not match",
            "RA proto selector.matchLabels",
            json!([]),
            bad.clone(),
            Expect::Anonymous,
        )
        .policies(&[p("default", Some(json!({"app": "db"})))]),
        case(
            "a selector that matches",
            "RA proto selector.matchLabels",
            json!([]),
            bad.clone(),
            Expect::Reject(FailureReason::HeaderBadBase64),
        )
        .policies(&[p("default", Some(json!({"app": "web"})))]),
        case(
            "rules of several policies combine",
            "policy_applier.go: rules of all selecting policies, sorted by issuer",
            json!([]),
            Req::new().header("x-b", token(Algorithm::Es256, &claims(OTHER_ISSUER, "bob"))),
            Expect::Principal("https://other.example.com/bob"),
        )
        .policies(&[
            p("istio-system", None),
            policy(
                "default",
                "b",
                None,
                json!([rule(json!({"issuer": OTHER_ISSUER, "fromHeaders": [{"name": "x-b"}]}))]),
            ),
        ]),
    ]
}

fn response_cases() -> Vec<Case> {
    let expired = token(Algorithm::Rs256, &claims_with(json!({"exp": NOW - 3600})));
    vec![
        case(
            "a 401 says why, with WWW-Authenticate and details",
            "filter.cc onComplete: body = status string, 'Bearer realm=\"<uri>\", error=\"invalid_token\"', generateRcDetails",
            default_rules(),
            Req::new().bearer(&expired),
            check(|o| match o {
                Outcome::Rejected(f) => {
                    assert_eq!(f.status(), 401);
                    assert_eq!(f.body(), "Jwt is expired");
                    assert_eq!(f.details(), "jwt_authn_access_denied{Jwt_is_expired}");
                    let www = Req::new().with(|r| f.www_authenticate(r));
                    assert_eq!(www.as_deref(), Some(r#"Bearer realm="http://web.default.svc/api", error="invalid_token""#));
                }
                other => panic!("{other:?}"),
            }),
        ),
        case(
            "an audience mismatch is a 403",
            "filter.cc: JwtAudienceNotAllowed => Forbidden",
            json!([rule(json!({"audiences": ["api"]}))]),
            Req::new().bearer(&good()),
            check(|o| match o {
                Outcome::Rejected(f) => {
                    assert_eq!((f.status(), f.body()), (403, "Audiences in Jwt are not allowed"));
                    assert_eq!(f.details(), "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}");
                }
                other => panic!("{other:?}"),
            }),
        ),
    ]
}

#[test]
fn conformance_table() {
    let cases: Vec<Case> = [
        extraction_cases(),
        parse_cases(),
        algorithm_cases(),
        key_selection_cases(),
        time_cases(),
        audience_cases(),
        multi_rule_cases(),
        output_cases(),
        identity_cases(),
        remote_key_cases(),
        scope_cases(),
        response_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    eprintln!("{} conformance cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {:?}", case.name);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decide_with(&case.authn, &case.req, case.now, &case.store)
        }))
        .unwrap_or_else(|_| panic!("case {:?} ({}) panicked", case.name, case.source));
        let context = format!("case {:?} ({})", case.name, case.source);
        match &case.expect {
            Expect::Anonymous => {
                assert!(matches!(outcome, Outcome::Anonymous { .. }), "{context}: {outcome:?}")
            }
            Expect::Principal(p) => match &outcome {
                Outcome::Authenticated { identity, .. } => {
                    assert_eq!(identity.principal().as_deref(), Some(*p), "{context}")
                }
                other => panic!("{context}: expected {p}, got {other:?}"),
            },
            Expect::Reject(reason) => match &outcome {
                Outcome::Rejected(f) => {
                    assert_eq!(f.reason(), *reason, "{context}");
                    assert_eq!(
                        f.status(),
                        if *reason == FailureReason::AudienceNotAllowed { 403 } else { 401 },
                        "{context}"
                    );
                }
                other => panic!("{context}: expected {reason:?}, got {other:?}"),
            },
            Expect::Wait(sources) => match &outcome {
                Outcome::WaitForKeys { sources: got } => {
                    assert_eq!(got.iter().map(|s| s.0).collect::<Vec<_>>(), *sources, "{context}")
                }
                other => panic!("{context}: expected to wait, got {other:?}"),
            },
            Expect::Check(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&outcome)))
                    .unwrap_or_else(|_| panic!("{context}: check failed on {outcome:?}"));
            }
        }
    }
}

/// Validation cases: what Istio's webhook and CRD refuse, and what Warden refuses earlier.
#[test]
fn validation_table() {
    let weak = {
        let mut k = rsa_jwk();
        k["n"] = json!(b64(&[0xc5; 128]));
        jwks_of(vec![k])
    };
    let private = jwks_of(vec![serde_json::from_str(&keys().es256.to_jwk()).unwrap()]);
    type ValidationCase = (&'static str, &'static str, Value, &'static str, fn(&Problem) -> bool);
    let cases: Vec<ValidationCase> = vec![
        (
            "neither issuer nor jwksUri",
            "validation.go 'issuer or jwksUri must be non-empty' (Istio 1.27)",
            json!([{"jwks": jwks()}]),
            "spec.jwtRules[0].issuer",
            |p| *p == Problem::Authn(RuleProblem::IssuerOrJwksUri),
        ),
        (
            "jwks and jwksUri together",
            "RA proto: jwks and jwks_uri are exclusive",
            json!([rule(json!({"jwksUri": "https://k/jwks"}))]),
            "spec.jwtRules[0].jwks",
            |p| *p == Problem::Authn(RuleProblem::JwksAndJwksUri),
        ),
        (
            "jwksUri not http(s)",
            "CRD: jwksUri must be an http(s) URL",
            json!([{"issuer": ISSUER, "jwksUri": "file:///etc/jwks"}]),
            "spec.jwtRules[0].jwksUri",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidJwksUri(_))),
        ),
        (
            "no keys and an issuer that is no URL",
            "jwks_resolver.go discovery needs an URL issuer",
            json!([{"issuer": "issuer-name"}]),
            "spec.jwtRules[0].issuer",
            |p| matches!(p, Problem::Authn(RuleProblem::NoKeySource(_))),
        ),
        (
            "inline jwks not JSON",
            "validation.go jwk.Parse",
            json!([rule(json!({"jwks": "{"}))]),
            "spec.jwtRules[0].jwks",
            |p| matches!(p, Problem::Authn(RuleProblem::Jwks(authn::JwksError::InvalidJson(_)))),
        ),
        (
            "inline jwks with a weak key",
            "Warden: RSA under 2048 bits refused",
            json!([rule(json!({"jwks": weak}))]),
            "spec.jwtRules[0].jwks.keys[0]",
            |p| matches!(p, Problem::Authn(RuleProblem::JwksKey(_))),
        ),
        (
            "inline jwks with a private key",
            "Warden (Istio only warns): private key material refused",
            json!([rule(json!({"jwks": private}))]),
            "spec.jwtRules[0].jwks",
            |p| matches!(p, Problem::Authn(RuleProblem::Jwks(authn::JwksError::PrivateKey { .. }))),
        ),
        (
            "an empty audience",
            "CRD audiences MinLength 1",
            json!([rule(json!({"audiences": [""]}))]),
            "spec.jwtRules[0].audiences[0]",
            |p| *p == Problem::Authn(RuleProblem::Empty),
        ),
        (
            "an empty header name",
            "CRD fromHeaders.name MinLength 1",
            json!([rule(json!({"fromHeaders": [{"name": ""}]}))]),
            "spec.jwtRules[0].fromHeaders[0].name",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidHeaderName(_))),
        ),
        (
            "an empty param name",
            "CRD fromParams MinLength 1",
            json!([rule(json!({"fromParams": [""]}))]),
            "spec.jwtRules[0].fromParams[0]",
            |p| *p == Problem::Authn(RuleProblem::Empty),
        ),
        (
            "a claim header outside [-_A-Za-z0-9]",
            "CRD outputClaimToHeaders.header pattern",
            json!([rule(json!({"outputClaimToHeaders": [{"header": "x:y", "claim": "sub"}]}))]),
            "spec.jwtRules[0].outputClaimToHeaders[0].header",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidHeaderName(_))),
        ),
        (
            "a claim header twice",
            "Warden stricter (validation.go validateJwtRule checks only names): the header's value would depend on rule order; docs/compatibility.md#validation-parity",
            json!([rule(
                json!({"outputClaimToHeaders": [{"header": "x-a", "claim": "sub"}, {"header": "X-A", "claim": "iss"}]})
            )]),
            "spec.jwtRules[0].outputClaimToHeaders[1].header",
            |p| matches!(p, Problem::Authn(RuleProblem::DuplicateHeader(_))),
        ),
        (
            "an output header that is a token location",
            "Warden: it would strip the rule's own tokens",
            json!([rule(json!({"outputPayloadToHeader": "Authorization"}))]),
            "spec.jwtRules[0].outputPayloadToHeader",
            |p| matches!(p, Problem::Authn(RuleProblem::OutputHeaderIsTokenLocation(_))),
        ),
        (
            "a malformed timeout",
            "RA proto timeout is a Duration",
            json!([rule(json!({"timeout": "soon"}))]),
            "spec.jwtRules[0].timeout",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidTimeout(_))),
        ),
        (
            "a timeout under 1ms",
            "validation.go validateJwtRule => agent.ValidateDuration 'duration must be greater than 1ms'",
            json!([rule(json!({"timeout": "0.0005s"}))]),
            "spec.jwtRules[0].timeout",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidTimeout(_))),
        ),
        (
            "a timeout finer than milliseconds",
            "agent.ValidateDuration 'only durations to ms precision are supported'",
            json!([rule(json!({"timeout": "1.0000005s"}))]),
            "spec.jwtRules[0].timeout",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidTimeout(_))),
        ),
        (
            "a jwksUri with a bad percent escape",
            "validation.go validateJwtRule => security.ParseJwksURI (Go url.Parse: invalid URL escape)",
            json!([{"issuer": ISSUER, "jwksUri": "https://keys.example.com/%zz"}]),
            "spec.jwtRules[0].jwksUri",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidJwksUri(_))),
        ),
        (
            "a jwksUri whose host holds a brace",
            "security.ParseJwksURI (Go url.Parse: invalid character in host name)",
            json!([{"issuer": ISSUER, "jwksUri": "https://keys{.example.com/jwks"}]),
            "spec.jwtRules[0].jwksUri",
            |p| matches!(p, Problem::Authn(RuleProblem::InvalidJwksUri(_))),
        ),
        (
            "a presence value outside the enum",
            "crd-all.gen.yaml presence enum [OPTIONAL, REQUIRED]",
            json!([rule(json!({"presence": "MANDATORY"}))]),
            "spec.jwtRules[0]",
            |p| matches!(p, Problem::Schema(_)),
        ),
        (
            "an empty space-delimited claim",
            "CRD spaceDelimitedClaims MinLength 1",
            json!([rule(json!({"spaceDelimitedClaims": [""]}))]),
            "spec.jwtRules[0].spaceDelimitedClaims[0]",
            |p| *p == Problem::Authn(RuleProblem::Empty),
        ),
        (
            "an unknown field",
            "Warden: strict schema (a typo must not widen anything)",
            json!([rule(json!({"jwksURI": "https://k"}))]),
            "spec.jwtRules[0]",
            |p| matches!(p, Problem::Schema(_)),
        ),
    ];
    for (name, source, rules, field, problem) in cases {
        let errors = validate_all(&[policy("default", "jwt", None, rules)])
            .err()
            .unwrap_or_else(|| panic!("{name} ({source}): accepted"));
        assert!(
            errors.iter().any(|e| e.field.starts_with(field) && problem(&e.problem)),
            "{name} ({source}): expected an error at {field}, got {errors:#?}"
        );
        for e in &errors {
            assert!(e.object.is_some(), "{name}: errors name the object");
        }
    }
    // Accepted: Istio's validation has the same shapes.
    for (name, rules) in [
        ("a 1ms timeout", json!([rule(json!({"timeout": "0.001s"}))])),
        (
            "jwks_uri, the proto name",
            json!([{"issuer": ISSUER, "jwks_uri": "https://keys.example.com/jwks"}]),
        ),
    ] {
        validate_all(&[policy("default", "jwt", None, rules)])
            .unwrap_or_else(|e| panic!("{name}: refused: {e:#?}"));
    }
    let mut dry_run = policy("default", "jwt", None, json!([rule(json!({}))]));
    dry_run["metadata"]["annotations"] = json!({"istio.io/dry-run": "true"});
    let errors = validate_all(&[dry_run]).unwrap_err();
    assert!(
        errors.iter().any(|e| e.problem
            == Problem::Annotation(warden::config::AnnotationProblem::DryRunUnsupported)),
        "validation.go checkDryRunAnnotation: RequestAuthentication has no dry-run: {errors:#?}"
    );
    let target_refs = json!({
        "apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}], "jwtRules": [rule(json!({}))]},
    });
    // Valid (Istio accepts it), and ignored by sidecars: it applies to no workload.
    validate_all(std::slice::from_ref(&target_refs)).unwrap();
    let mut both = target_refs;
    both["spec"]["selector"] = json!({"matchLabels": {"app": "a"}});
    let errors = validate_all(&[both]).unwrap_err();
    assert!(
        errors.iter().any(|e| e.problem == Problem::Authn(RuleProblem::SelectorWithTargetRefs)),
        "validation.go validateOneOfSelectorType: selector or targetRefs, not both"
    );
}

#[test]
fn remote_sources_name_uri_cluster_and_timeout() {
    let authn = authenticator(json!([
        {"issuer": ISSUER, "jwksUri": "https://keys.example.com/jwks", "timeout": "2s"},
        {"issuer": "https://z.example.com", "jwksUri": "https://keys.example.com/jwks", "timeout": "7s"},
        {"issuer": OTHER_ISSUER},
    ]));
    let sources = authn.remote_sources();
    assert_eq!(sources.len(), 2, "one source per URI");
    assert_eq!(sources[0].uri, "https://keys.example.com/jwks");
    assert!(!sources[0].discovery);
    assert_eq!(sources[0].cluster, "outbound|443||keys.example.com", "Istio's cluster naming");
    assert_eq!(
        sources[0].timeout,
        Duration::from_secs(7),
        "the longest timeout of the rules sharing it"
    );
    assert_eq!(
        sources[1].uri, "https://other.example.com/.well-known/openid-configuration",
        "jwks_resolver.go OIDC discovery"
    );
    assert!(sources[1].discovery);
    assert_eq!(sources[1].timeout, authn::DEFAULT_TIMEOUT, "RA proto timeout default 5s");

    let mut settings = AuthnSettings::default();
    settings.clusters.insert("https://keys.example.com/jwks".into(), "idp-cluster".into());
    let validated = validate_all(&[policy(
        "default",
        "jwt",
        None,
        json!([{"issuer": ISSUER, "jwksUri": "https://keys.example.com/jwks"}]),
    )])
    .unwrap();
    let policies: Vec<Policy<'_>> = validated
        .iter()
        .map(|(o, rules)| Policy {
            namespace: &o.metadata.namespace,
            name: &o.metadata.name,
            selector: None,
            rules,
        })
        .collect();
    let authn = authn::compile(&policies, &workload(), "istio-system", &settings);
    assert_eq!(authn.remote_sources()[0].cluster, "idp-cluster");
}

#[test]
fn the_accepting_rule_is_named() {
    let authn = authenticator_for(
        &[
            policy("default", "first", None, json!([rule(json!({"issuer": OTHER_ISSUER}))])),
            policy(
                "default",
                "second",
                None,
                json!([rule(json!({"audiences": ["x"]})), rule(json!({}))]),
            ),
        ],
        &workload(),
    );
    let outcome = decide(&authn, &Req::new().bearer(&good()));
    let Outcome::Authenticated { rule, .. } = outcome else { panic!("{outcome:?}") };
    let origin = authn.rule_origin(rule).unwrap();
    assert_eq!((origin.name.as_str(), origin.index), ("second", 1));
    assert_eq!(origin.to_string(), "default/second jwtRules[1]");
}

#[test]
fn the_cache_pays_for_a_signature_once_and_forgets_rotated_keys() {
    use std::cell::Cell;
    use warden::authn::{KeyProvider, Keys, SignatureVerifier, TokenCache, Verified, VerifyingKey};
    struct Counting<'a>(&'a Cell<usize>);
    impl SignatureVerifier for Counting<'_> {
        fn verify(&self, alg: Algorithm, key: &VerifyingKey, input: &[u8], sig: &[u8]) -> Verified {
            self.0.set(self.0.get() + 1);
            authn::PureRust.verify(alg, key, input, sig)
        }
    }
    struct Swappable(std::cell::RefCell<authn::KeySet>);
    impl KeyProvider for Swappable {
        fn keys(&self, _: SourceId) -> Keys<'_> {
            // Leaked for the test's lifetime: the provider hands out a reference.
            Keys::Ready(Box::leak(Box::new(self.0.borrow().clone())))
        }
    }
    let authn = authenticator(json!([rule(
        json!({"jwks": null, "jwksUri": "https://keys.example.com/jwks"})
    )]));
    let store =
        Swappable(std::cell::RefCell::new(authn::parse_fetched_jwks(jwks().as_bytes()).unwrap()));
    let calls = Cell::new(0);
    let mut cache = TokenCache::new(8);
    let req = Req::new().bearer(&good());
    let run = |cache: &mut TokenCache, now| {
        req.with(|r| authn.authenticate(r, now, &store, cache, &Counting(&calls)))
    };
    assert_eq!(principal(&run(&mut cache, NOW)), ALICE);
    assert_eq!(calls.get(), 1);
    for _ in 0..5 {
        assert_eq!(principal(&run(&mut cache, NOW)), ALICE);
    }
    assert_eq!(calls.get(), 1, "hits verify no signature");
    assert_eq!(cache.stats().0, 5);

    // A hit still checks time: one hour and a bit later the token is expired.
    assert!(
        matches!(run(&mut cache, NOW + 3661), Outcome::Rejected(f) if f.reason() == FailureReason::Expired)
    );

    // Rotated keys (another fingerprint) mean a new verification, which fails without the key.
    let mut cache = TokenCache::new(8);
    run(&mut cache, NOW);
    *store.0.borrow_mut() = authn::parse_fetched_jwks(
        jwks_of(vec![serde_json::from_str(
            &keys().es256.public_key().with_key_id("es256").to_jwk(),
        )
        .unwrap()])
        .as_bytes(),
    )
    .unwrap();
    assert!(
        matches!(run(&mut cache, NOW), Outcome::Rejected(f) if f.reason() == FailureReason::KidAlgMismatch)
    );

    // A hit still checks audiences and the issuer's location against the current rules.
    let mut cache = TokenCache::new(8);
    let open = authenticator(default_rules());
    let strict = authenticator(json!([rule(json!({"audiences": ["api"]}))]));
    let elsewhere = authenticator(json!([rule(json!({"fromHeaders": [{"name": "x-jwt"}]}))]));
    let t = good();
    let by_header = Req::new().header("x-jwt", &t);
    let none = Store::default();
    req.with(|r| {
        assert!(matches!(
            open.authenticate(r, NOW, &none, &mut cache, &authn::PureRust),
            Outcome::Authenticated { .. }
        ))
    });
    req.with(|r| assert!(matches!(strict.authenticate(r, NOW, &none, &mut cache, &authn::PureRust), Outcome::Rejected(f) if f.status() == 403)));
    by_header.with(|r| {
        assert!(matches!(
            elsewhere.authenticate(r, NOW, &none, &mut cache, &authn::PureRust),
            Outcome::Authenticated { .. }
        ))
    });
    let other_issuer = authenticator(json!([rule(json!({"issuer": OTHER_ISSUER}))]));
    req.with(|r| assert!(matches!(other_issuer.authenticate(r, NOW, &none, &mut cache, &authn::PureRust), Outcome::Rejected(f) if f.reason() == FailureReason::UnknownIssuer)));
}
