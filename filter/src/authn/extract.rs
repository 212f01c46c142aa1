//! Finding tokens in a request, exactly where Envoy looks
//! (`source/extensions/filters/http/jwt_authn/extractor.cc`).
//!
//! - Headers: every occurrence of each configured header. With a prefix, the prefix is
//!   searched anywhere in the value (case-sensitive); a value without it holds no token (the
//!   token is missing, not invalid). After the prefix, characters outside the base64url
//!   alphabet and `.` are skipped and the token is the rest of the value; when nothing
//!   JWT-like follows, the whole value is the token (and fails to parse).
//! - Query parameters: every occurrence, percent-decoded. Envoy takes the first; Warden takes
//!   them all, so that two different tokens in one request are refused (`Found multiple Jwt
//!   tokens`) as they are in two headers, instead of one deciding and the other reaching the
//!   application unverified.
//! - The `Bearer` scheme of the default `Authorization` location is matched case-insensitively
//!   (RFC 7235 §2.1, RFC 6750 §2.1): `bearer <token>` carries a token, which must verify.
//!   Envoy matches the prefix case-sensitively and treats such a request as carrying none.
//! - Cookies: `name=value` pairs of the `cookie` headers, leading spaces trimmed, one pair of
//!   surrounding double quotes removed; the first occurrence wins.

use std::borrow::Cow;

use crate::request::Request;

/// A token found in a request, and the location (an index into the authenticator's
/// location table) it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found<'r> {
    pub(crate) token: Cow<'r, [u8]>,
    pub(crate) location: usize,
}

/// The base64url alphabet and the dot: what a JWT is made of (RFC 7515 §7.1).
fn is_jwt_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Where `needle` starts in `haystack`, ASCII case ignored.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle))
}

/// The prefix of the `Bearer` authentication scheme (RFC 6750 §2.1).
const BEARER: &[u8] = b"Bearer ";

/// The token in one header value, as Envoy's `extractJWT`; `None` when the prefix is absent.
/// A prefix that is the `Bearer` scheme is found whatever its case.
pub(crate) fn token_in_header<'r>(value: &'r [u8], prefix: &[u8]) -> Option<&'r [u8]> {
    if prefix.is_empty() {
        return Some(value);
    }
    let at = if prefix.eq_ignore_ascii_case(BEARER) {
        find_ignore_case(value, prefix)?
    } else {
        find(value, prefix)?
    };
    let after = at + prefix.len();
    let rest = value.get(after..).unwrap_or_default();
    match rest.iter().position(|&b| is_jwt_byte(b)) {
        Some(start) => rest.get(start..),
        None => Some(value),
    }
}

/// Decodes `%XX` escapes; anything else (including malformed escapes and `+`) stays as is.
pub(crate) fn percent_decode(text: &[u8]) -> Cow<'_, [u8]> {
    if !text.contains(&b'%') {
        return Cow::Borrowed(text);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if b == b'%' {
            if let (Some(hi), Some(lo)) =
                (text.get(i + 1).copied().and_then(hex), text.get(i + 2).copied().and_then(hex))
            {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// Splits `:path` into (path, query without `?`, fragment with `#`).
fn split_path(path: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let hash = path.iter().position(|&b| b == b'#').unwrap_or(path.len());
    let (before, fragment) = path.split_at(hash);
    match before.iter().position(|&b| b == b'?') {
        Some(q) => (before.get(..q).unwrap_or_default(), before.get(q + 1..), fragment),
        None => (before, None, fragment),
    }
}

/// `key=value` pairs of a query string (a pair without `=` has an empty value).
fn query_pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query.split(|&b| b == b'&').filter(|pair| !pair.is_empty()).map(|pair| {
        match pair.iter().position(|&b| b == b'=') {
            Some(eq) => {
                (pair.get(..eq).unwrap_or_default(), pair.get(eq + 1..).unwrap_or_default())
            }
            None => (pair, &b""[..]),
        }
    })
}

/// Every value of query parameter `name`, percent-decoded, in order.
pub(crate) fn query_params<'r, 'n>(
    path: &'r [u8],
    name: &'n str,
) -> impl Iterator<Item = Cow<'r, [u8]>> + use<'r, 'n> {
    let (_, query, _) = split_path(path);
    query
        .into_iter()
        .flat_map(query_pairs)
        .filter(move |(key, _)| percent_decode(key).as_ref() == name.as_bytes())
        .map(|(_, value)| percent_decode(value))
}

/// `:path` without any occurrence of query parameter `name` (the rest kept byte for byte).
pub(crate) fn remove_query_param(path: &[u8], name: &str) -> Vec<u8> {
    let (base, query, fragment) = split_path(path);
    let mut out = base.to_vec();
    if let Some(query) = query {
        let kept: Vec<&[u8]> = query
            .split(|&b| b == b'&')
            .filter(|pair| {
                let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
                !pair.is_empty() && percent_decode(key).as_ref() != name.as_bytes()
            })
            .collect();
        if !kept.is_empty() {
            out.push(b'?');
            out.extend_from_slice(&kept.join(&b'&'));
        }
    }
    out.extend_from_slice(fragment);
    out
}

/// The value of cookie `name`, as Envoy's `Http::Utility::parseCookies`.
pub(crate) fn cookie<'r>(request: &Request<'r>, name: &str) -> Option<&'r [u8]> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, value)| value.split(|&b| b == b';'))
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let start = pair.iter().position(|&b| b != b' ').unwrap_or(pair.len());
            let pair = pair.get(start..)?;
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
            if key != name.as_bytes() {
                return None;
            }
            let unquoted = match value {
                [b'"', inner @ .., b'"'] => inner,
                _ => value,
            };
            Some(unquoted)
        })
}

/// Whether the request is a CORS preflight (`OPTIONS` with non-empty `Origin` and
/// `Access-Control-Request-Method`), which Istio lets through `jwt_authn` unverified
/// (`bypass_cors_preflight`).
pub(crate) fn is_cors_preflight(request: &Request<'_>) -> bool {
    let present = |name: &[u8]| request.header_values(name).next().is_some_and(|v| !v.is_empty());
    request.method == b"OPTIONS" && present(b"origin") && present(b"access-control-request-method")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn prefix_is_searched_anywhere_and_junk_after_it_skipped() {
        // extractor.cc: value_str.find(prefix), then find_first_of(base64url + '.').
        assert_eq!(token_in_header(b"Bearer abc.def.ghi", b"Bearer "), Some(&b"abc.def.ghi"[..]));
        assert_eq!(token_in_header(b"xx Bearer abc", b"Bearer "), Some(&b"abc"[..]));
        assert_eq!(token_in_header(b"Bearer   \"abc\"", b"Bearer "), Some(&b"abc\""[..]));
        // RFC 7235 §2.1: the scheme is case-insensitive (Envoy's find() is not).
        assert_eq!(token_in_header(b"bearer abc", b"Bearer "), Some(&b"abc"[..]));
        assert_eq!(token_in_header(b"BEARER abc", b"Bearer "), Some(&b"abc"[..]));
        // Other prefixes stay exact.
        assert_eq!(token_in_header(b"token abc", b"Token "), None);
        assert_eq!(token_in_header(b"Basic abc", b"Bearer "), None);
        assert_eq!(token_in_header(b"Bearer ", b"Bearer "), Some(&b"Bearer "[..]));
        assert_eq!(token_in_header(b"Bearer \"\"", b"Bearer "), Some(&b"Bearer \"\""[..]));
        assert_eq!(token_in_header(b"abc", b""), Some(&b"abc"[..]));
        assert_eq!(token_in_header(b"", b""), Some(&b""[..]));
    }

    #[test]
    fn query_params_are_all_found_and_decoded() {
        let all = |path: &[u8], name: &str| -> Vec<Vec<u8>> {
            query_params(path, name).map(|v| v.into_owned()).collect()
        };
        assert_eq!(all(b"/p?access_token=a.b.c", "access_token"), [b"a.b.c".to_vec()]);
        assert_eq!(
            all(b"/p?x=1&access_token=a&access_token=b", "access_token"),
            [b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(all(b"/p?access%5Ftoken=a%2Eb", "access_token"), [b"a.b".to_vec()]);
        assert_eq!(all(b"/p?access_token", "access_token"), [b"".to_vec()]);
        assert!(all(b"/p?access_tokens=a", "access_token").is_empty());
        assert!(all(b"/p#?access_token=a", "access_token").is_empty());
        assert!(all(b"/p", "access_token").is_empty());
        assert_eq!(all(b"/p?t=%zz%4", "t"), [b"%zz%4".to_vec()]);
    }

    #[test]
    fn removing_a_param_keeps_the_rest() {
        assert_eq!(remove_query_param(b"/p?access_token=x", "access_token"), b"/p");
        assert_eq!(
            remove_query_param(b"/p?a=1&access_token=x&b=2&access_token=y", "access_token"),
            b"/p?a=1&b=2"
        );
        assert_eq!(
            remove_query_param(b"/p?a=%20&access%5Ftoken=x#frag", "access_token"),
            b"/p?a=%20#frag"
        );
        assert_eq!(remove_query_param(b"/p", "access_token"), b"/p");
    }

    #[test]
    fn cookies_as_envoy_parses_them() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"cookie", b"a=1; session=\"tok\";  jwt=x.y.z"),
            (b"cookie", b"jwt=second"),
            (b"cookie", b";;bare;=v"),
        ];
        let request = Request { headers, ..Default::default() };
        assert_eq!(cookie(&request, "session"), Some(&b"tok"[..]));
        assert_eq!(cookie(&request, "jwt"), Some(&b"x.y.z"[..]));
        assert_eq!(cookie(&request, "a"), Some(&b"1"[..]));
        assert_eq!(cookie(&request, "bare"), None);
        assert_eq!(cookie(&request, "JWT"), None, "cookie names are case-sensitive");
    }

    #[test]
    fn cors_preflight_needs_all_three() {
        let full: &[(&[u8], &[u8])] =
            &[(b"origin", b"https://a"), (b"access-control-request-method", b"GET")];
        assert!(is_cors_preflight(&Request {
            method: b"OPTIONS",
            headers: full,
            ..Default::default()
        }));
        assert!(!is_cors_preflight(&Request {
            method: b"GET",
            headers: full,
            ..Default::default()
        }));
        assert!(!is_cors_preflight(&Request {
            method: b"OPTIONS",
            headers: &full[..1],
            ..Default::default()
        }));
        let empty: &[(&[u8], &[u8])] =
            &[(b"origin", b""), (b"access-control-request-method", b"GET")];
        assert!(!is_cors_preflight(&Request {
            method: b"OPTIONS",
            headers: empty,
            ..Default::default()
        }));
    }
}
