//! Why a token was refused, and the one place that turns it into an HTTP answer.
//!
//! The vocabulary is Envoy's (`jwt_verify_lib/src/status.cc`): the body of a 401/403 is the
//! status string, the response-code details are `jwt_authn_access_denied{<string with spaces
//! as _>}` (`source/extensions/filters/http/jwt_authn/filter.cc` `generateRcDetails`), and
//! `WWW-Authenticate` is `Bearer realm="<scheme>://<host><path, at most 256 bytes>",
//! error="invalid_token"` (RFC 6750 §3). Warden's stricter checks add a few strings of their
//! own, worded in the same style; each is marked below.

use std::fmt;

use crate::request::Request;

use super::SourceId;

/// Envoy's `MaximumUriLength` for the realm.
const REALM_PATH_LIMIT: usize = 256;

/// A header parameter Warden refuses (Envoy ignores them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderParameter {
    /// `crit`: extensions the verifier must understand; Warden understands none (RFC 7515 §4.1.11).
    Crit,
    /// `b64` other than `true`: an unencoded payload (RFC 7797).
    B64,
    /// `jku`: a URL to fetch keys from. Keys come only from configuration.
    Jku,
    /// `x5u`: a URL to fetch a certificate from.
    X5u,
    /// `jwk`: a key embedded by the sender.
    Jwk,
    /// `x5c`: a certificate chain embedded by the sender.
    X5c,
    /// `salt`: a jwt-simple extension that no issuer Warden serves uses.
    Salt,
    /// `typ` that is not a string, or neither `JWT` nor `…+jwt` (RFC 8725 §3.11).
    Typ,
    /// `cty` that is not a string, or `JWT` (a nested token).
    Cty,
    /// `x5t` or `x5t#S256` that is not a string.
    X5t,
}

/// Why a present token was refused. `label()` is a stable snake_case name for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Not three non-empty segments separated by two dots (JWE and unsecured forms included).
    BadFormat,
    /// Longer than Warden's token size limit (Warden).
    TooLarge,
    /// The header segment is not canonical base64url.
    HeaderBadBase64,
    /// The header is not a JSON object (or has duplicate or deeply nested members).
    HeaderBadJson,
    /// `alg` is missing or not a string.
    HeaderBadAlg,
    /// `alg` is not one Warden verifies (`none` included, in any spelling).
    HeaderAlgNotSupported,
    /// `kid` is not a string.
    HeaderBadKid,
    /// A header parameter Warden refuses (Warden).
    HeaderParameter(HeaderParameter),
    /// The payload segment is not canonical base64url.
    PayloadBadBase64,
    /// The payload is not a JSON object (or has duplicate or deeply nested members).
    PayloadBadJson,
    /// `iss` is not a string.
    IssNotString,
    /// `sub` is not a string.
    SubNotString,
    /// `iat` is not a number.
    IatNotInteger,
    /// `iat` is a number out of range (negative, or 2^64 and beyond).
    IatOutOfRange,
    /// `nbf` is not a number.
    NbfNotInteger,
    /// `nbf` is a number out of range (negative, or 2^64 and beyond).
    NbfOutOfRange,
    /// `exp` is not a number.
    ExpNotInteger,
    /// `exp` is a number out of range (negative, or 2^64 and beyond).
    ExpOutOfRange,
    /// `exp` is absent: Warden requires it (Envoy treats such a token as never expiring).
    ExpMissing,
    /// `jti` is not a string.
    JtiNotString,
    /// `nonce` is not a string (Warden).
    NonceNotString,
    /// `aud` is neither a string nor a list of strings.
    AudNotStringOrList,
    /// The signature segment is not canonical base64url.
    SignatureBadBase64,
    /// The token's issuer is not configured for a location the token was found in.
    UnknownIssuer,
    /// No configured audience matches the token's `aud` (the one 403).
    AudienceNotAllowed,
    /// `nbf` is more than the clock skew in the future.
    NotYetValid,
    /// `iat` is more than the clock skew in the future: the token claims to be issued later
    /// than now (Warden; Envoy does not look at `iat`).
    IssuedInFuture,
    /// `exp` is more than the clock skew in the past.
    Expired,
    /// The request carries two or more different tokens (Warden; Istio leaves the principal
    /// undefined).
    MultipleTokens,
    /// No key of the issuer's key set fits the token's `kid` and `alg`.
    KidAlgMismatch,
    /// Keys fit, but none verifies the signature.
    VerificationFailed,
    /// The issuer's key set could not be fetched.
    JwksFetchFailed,
    /// No token, where a rule with `presence: REQUIRED` applies (Envoy's `JwtMissed`).
    Missing,
    /// A certificate-bound rule's token has no `cnf` claim with a string `x5t#S256` (Warden;
    /// RFC 8705 §3.1).
    CertificateBindingMissing,
    /// The token's `cnf.x5t#S256` is not the thumbprint of the connection's client
    /// certificate, or the connection has none (Warden; RFC 8705 §3).
    CertificateBindingMismatch,
}

impl FailureReason {
    /// The HTTP status: 403 for an audience mismatch, 401 for everything else (Envoy
    /// `filter.cc` `onComplete`).
    pub fn status(self) -> u16 {
        match self {
            FailureReason::AudienceNotAllowed => 403,
            _ => 401,
        }
    }

    /// Envoy's status string (`jwt_verify_lib` `getStatusString`), or Warden's for its own checks.
    pub fn message(self) -> &'static str {
        use FailureReason::*;
        match self {
            BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            TooLarge => "Jwt is too large",
            HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            HeaderBadJson => "Jwt header is an invalid JSON",
            HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            HeaderAlgNotSupported => "Jwt header [alg] is not supported",
            HeaderBadKid => "Jwt header [kid] field is not a string",
            HeaderParameter(p) => match p {
                self::HeaderParameter::Crit => "Jwt header [crit] is not accepted",
                self::HeaderParameter::B64 => "Jwt header [b64] is not accepted",
                self::HeaderParameter::Jku => "Jwt header [jku] is not accepted",
                self::HeaderParameter::X5u => "Jwt header [x5u] is not accepted",
                self::HeaderParameter::Jwk => "Jwt header [jwk] is not accepted",
                self::HeaderParameter::X5c => "Jwt header [x5c] is not accepted",
                self::HeaderParameter::Salt => "Jwt header [salt] is not accepted",
                self::HeaderParameter::Typ => "Jwt header [typ] is not accepted",
                self::HeaderParameter::Cty => "Jwt header [cty] is not accepted",
                self::HeaderParameter::X5t => "Jwt header [x5t] is not accepted",
            },
            PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            PayloadBadJson => "Jwt payload is an invalid JSON",
            IssNotString => "Jwt payload [iss] field is not a string",
            SubNotString => "Jwt payload [sub] field is not a string",
            IatNotInteger => "Jwt payload [iat] field is not an integer",
            IatOutOfRange => "Jwt payload [iat] field is not a positive 64 bit integer",
            NbfNotInteger => "Jwt payload [nbf] field is not an integer",
            NbfOutOfRange => "Jwt payload [nbf] field is not a positive 64 bit integer",
            ExpNotInteger => "Jwt payload [exp] field is not an integer",
            ExpOutOfRange => "Jwt payload [exp] field is not a positive 64 bit integer",
            ExpMissing => "Jwt payload [exp] field is required",
            JtiNotString => "Jwt payload [jti] field is not a string",
            NonceNotString => "Jwt payload [nonce] field is not a string",
            AudNotStringOrList => "Jwt payload [aud] field is not a string or string list",
            SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            UnknownIssuer => "Jwt issuer is not configured",
            AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Missing => "Jwt is missing",
            NotYetValid => "Jwt not yet valid",
            IssuedInFuture => "Jwt issued in the future",
            Expired => "Jwt is expired",
            MultipleTokens => "Found multiple Jwt tokens",
            KidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            VerificationFailed => "Jwt verification fails",
            JwksFetchFailed => "Jwks remote fetch is failed",
            CertificateBindingMissing => "Jwt is not bound to a certificate",
            CertificateBindingMismatch => "Jwt is bound to another certificate",
        }
    }

    /// A stable snake_case name for counters and logs.
    pub fn label(self) -> &'static str {
        use FailureReason::*;
        match self {
            BadFormat => "bad_format",
            TooLarge => "too_large",
            HeaderBadBase64 => "header_bad_base64",
            HeaderBadJson => "header_bad_json",
            HeaderBadAlg => "header_bad_alg",
            HeaderAlgNotSupported => "header_alg_not_supported",
            HeaderBadKid => "header_bad_kid",
            HeaderParameter(p) => match p {
                self::HeaderParameter::Crit => "header_crit",
                self::HeaderParameter::B64 => "header_b64",
                self::HeaderParameter::Jku => "header_jku",
                self::HeaderParameter::X5u => "header_x5u",
                self::HeaderParameter::Jwk => "header_jwk",
                self::HeaderParameter::X5c => "header_x5c",
                self::HeaderParameter::Salt => "header_salt",
                self::HeaderParameter::Typ => "header_typ",
                self::HeaderParameter::Cty => "header_cty",
                self::HeaderParameter::X5t => "header_x5t",
            },
            PayloadBadBase64 => "payload_bad_base64",
            PayloadBadJson => "payload_bad_json",
            IssNotString => "iss_not_string",
            SubNotString => "sub_not_string",
            IatNotInteger => "iat_not_integer",
            IatOutOfRange => "iat_out_of_range",
            NbfNotInteger => "nbf_not_integer",
            NbfOutOfRange => "nbf_out_of_range",
            ExpNotInteger => "exp_not_integer",
            ExpOutOfRange => "exp_out_of_range",
            ExpMissing => "exp_missing",
            JtiNotString => "jti_not_string",
            NonceNotString => "nonce_not_string",
            AudNotStringOrList => "aud_not_string_or_list",
            SignatureBadBase64 => "signature_bad_base64",
            UnknownIssuer => "unknown_issuer",
            AudienceNotAllowed => "audience_not_allowed",
            Missing => "missing",
            NotYetValid => "not_yet_valid",
            IssuedInFuture => "issued_in_future",
            Expired => "expired",
            MultipleTokens => "multiple_tokens",
            KidAlgMismatch => "kid_alg_mismatch",
            VerificationFailed => "verification_failed",
            JwksFetchFailed => "jwks_fetch_failed",
            CertificateBindingMissing => "certificate_binding_missing",
            CertificateBindingMismatch => "certificate_binding_mismatch",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A refused token: the reason, and whether a refetch of the issuer's keys could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    reason: FailureReason,
    refetch: Option<SourceId>,
}

impl Failure {
    pub(crate) fn new(reason: FailureReason) -> Self {
        Failure { reason, refetch: None }
    }

    pub(crate) fn with_refetch(reason: FailureReason, source: SourceId) -> Self {
        Failure { reason, refetch: Some(source) }
    }

    /// Why the token was refused.
    pub fn reason(&self) -> FailureReason {
        self.reason
    }

    /// 401, or 403 for an audience mismatch (as Envoy).
    pub fn status(&self) -> u16 {
        self.reason.status()
    }

    /// The response body: Envoy's status string.
    pub fn body(&self) -> &'static str {
        self.reason.message()
    }

    /// Response-code details as Envoy writes them, e.g.
    /// `jwt_authn_access_denied{Jwt_is_expired}`.
    pub fn details(&self) -> String {
        let message: String = self
            .reason
            .message()
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        format!("jwt_authn_access_denied{{{message}}}")
    }

    /// The `WWW-Authenticate` value: `Bearer realm="<proto>://<host><path>", error="invalid_token"`.
    ///
    /// As Envoy (`Http::Utility::buildOriginalUri`): the scheme is `x-forwarded-proto`, the path
    /// `x-envoy-original-path` when present else `:path` (with its query), cut to 256 bytes.
    /// Unlike Envoy, bytes that cannot stand in a quoted-string are escaped (`"` and `\` with a
    /// backslash, anything outside printable ASCII as `%XX`), so a request cannot shape the
    /// response header. Always `Some`: a missing token is never refused.
    pub fn www_authenticate(&self, request: &Request<'_>) -> Option<String> {
        let proto = request.header_values(b"x-forwarded-proto").next().unwrap_or_default();
        let path = request.header_values(b"x-envoy-original-path").next().unwrap_or(request.path);
        let path = path.get(..REALM_PATH_LIMIT).unwrap_or(path);
        let mut value = String::from("Bearer realm=\"");
        quote_into(&mut value, proto);
        value.push_str("://");
        quote_into(&mut value, request.host);
        quote_into(&mut value, path);
        value.push('"');
        // RFC 6750 §3.1: a request that lacks authentication gets no error code.
        if self.reason != FailureReason::Missing {
            value.push_str(", error=\"invalid_token\"");
        }
        Some(value)
    }

    /// The issuer's fetched key set does not know the token's `kid`: the key store may
    /// refetch that source (rate limited) and try the request again.
    pub fn refetch(&self) -> Option<SourceId> {
        self.refetch
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason.message(), self.status())
    }
}

fn quote_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn audience_mismatch_is_the_only_403() {
        assert_eq!(Failure::new(FailureReason::AudienceNotAllowed).status(), 403);
        assert_eq!(Failure::new(FailureReason::Expired).status(), 401);
        assert_eq!(Failure::new(FailureReason::MultipleTokens).status(), 401);
    }

    #[test]
    fn details_replace_spaces_as_envoy() {
        // Envoy filter.cc generateRcDetails.
        assert_eq!(
            Failure::new(FailureReason::Expired).details(),
            "jwt_authn_access_denied{Jwt_is_expired}"
        );
        assert_eq!(
            Failure::new(FailureReason::KidAlgMismatch).details(),
            "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}"
        );
    }

    #[test]
    fn realm_is_built_from_proto_host_and_path() {
        let headers: &[(&[u8], &[u8])] = &[(b"x-forwarded-proto", b"https")];
        let request =
            Request { host: b"api.example.com", path: b"/a?b=c", headers, ..Default::default() };
        assert_eq!(
            Failure::new(FailureReason::Expired).www_authenticate(&request).as_deref(),
            Some(r#"Bearer realm="https://api.example.com/a?b=c", error="invalid_token""#)
        );
    }

    #[test]
    fn realm_prefers_original_path_and_cuts_at_256_bytes() {
        let long = format!("/{}", "x".repeat(400));
        let headers: &[(&[u8], &[u8])] =
            &[(b"x-forwarded-proto", b"http"), (b"x-envoy-original-path", long.as_bytes())];
        let request = Request { host: b"h", path: b"/rewritten", headers, ..Default::default() };
        let value = Failure::new(FailureReason::BadFormat).www_authenticate(&request).unwrap();
        assert_eq!(
            value,
            format!("Bearer realm=\"http://h{}\", error=\"invalid_token\"", &long[..256])
        );
    }

    #[test]
    fn realm_escapes_what_a_quoted_string_cannot_hold() {
        let request =
            Request { host: b"h\"x", path: b"/a\\b\r\n\xff", headers: &[], ..Default::default() };
        assert_eq!(
            Failure::new(FailureReason::BadFormat).www_authenticate(&request).as_deref(),
            Some(r#"Bearer realm="://h\"x/a\\b%0D%0A%FF", error="invalid_token""#)
        );
    }

    #[test]
    fn labels_are_snake_case_and_distinct() {
        use std::collections::HashSet;
        let all = [
            FailureReason::BadFormat,
            FailureReason::TooLarge,
            FailureReason::HeaderParameter(HeaderParameter::Crit),
            FailureReason::HeaderParameter(HeaderParameter::Jwk),
            FailureReason::ExpMissing,
            FailureReason::UnknownIssuer,
            FailureReason::AudienceNotAllowed,
            FailureReason::MultipleTokens,
            FailureReason::KidAlgMismatch,
            FailureReason::VerificationFailed,
            FailureReason::JwksFetchFailed,
            FailureReason::CertificateBindingMissing,
            FailureReason::CertificateBindingMismatch,
        ];
        let labels: HashSet<_> = all.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), all.len());
        for label in labels {
            assert!(label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
        }
    }
}
