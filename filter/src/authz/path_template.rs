//! Path templates: `paths: ["/api/{*}/items/{**}"]` (Istio 1.22+).
//!
//! Istio validates templates (`pkg/config/security/security.go` `CheckValidPathTemplate`),
//! replaces `{*}` with `*` and `{**}` with `**`, and hands them to Envoy's `uri_template`
//! matcher, which turns them into an RE2 regex and full-matches the path without query and
//! fragment (`source/extensions/path/uri_template_lib/uri_template_internal.cc`):
//!
//! - `{*}` is one path segment: `[a-zA-Z0-9-._~%!$&'()+,;:@]+`;
//! - `{**}` is anything made of those characters and `/`, possibly nothing: `[…/]*`;
//! - everything else is literal; `{**}` must be the last operator (literals may follow it).
//!
//! A template is accepted here only if both Istio and Envoy accept it (Envoy refuses a literal
//! with `=`, an empty segment, or a template that does not start with `/`; Istio would pass
//! such a policy and Envoy would then reject the whole listener update).

/// Characters a `{*}` or `{**}` segment may hold (RFC 3986 `pchar` without `*` and `=`).
fn is_segment_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@".contains(&byte)
}

/// One compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    /// Everything before `{**}` (or the whole template).
    head: Box<[Token]>,
    /// With `{**}`: the literal bytes after it (only literals may follow it).
    rest: Option<Box<[u8]>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Bytes that must appear as they are (segments and the `/` between them).
    Literal(Box<[u8]>),
    /// `{*}`.
    Segment,
}

/// Whether a `paths` value is a template (contains `{*}` or `{**}`), as Istio decides.
/// Whether Istio's validation accepts a `paths` value (istio/istio
/// `pkg/config/security/security.go` `CheckValidPathTemplate`): after trimming `/` at both
/// ends, `{**}` at most once and last among the operators, no other `{`/`}`, and, when the
/// value holds a template, every other segment a non-empty run of RFC 3986 pchars.
pub(crate) fn istio_accepts(value: &str) -> bool {
    let templated = value.contains("{*}") || value.contains("{**}");
    let mut any_seen = false;
    for glob in value.trim_matches('/').split('/') {
        match glob {
            "{*}" | "{**}" if any_seen => return false,
            "{*}" => continue,
            "{**}" => {
                any_seen = true;
                continue;
            }
            _ => {}
        }
        if glob.contains(['{', '}']) {
            return false;
        }
        let literal = !glob.is_empty()
            && glob.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b));
        if templated && !literal {
            return false;
        }
    }
    true
}

pub(crate) fn is_template(value: &str) -> bool {
    value.contains("{*}") || value.contains("{**}")
}

impl PathTemplate {
    /// Parses a value for which [`is_template`] holds.
    pub(crate) fn parse(value: &str) -> Result<PathTemplate, String> {
        let Some(body) = value.strip_prefix('/') else {
            return Err("a path template must start with '/'".into());
        };
        if value.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err("a path template may only contain printable ASCII characters".into());
        }
        let segments: Vec<&str> = body.split('/').collect();
        let last = segments.len().saturating_sub(1);
        let mut tokens: Vec<Token> = Vec::new();
        let mut literal: Vec<u8> = vec![b'/'];
        let mut seen_rest = false;
        let mut head: Option<Vec<Token>> = None;
        for (i, segment) in segments.iter().enumerate() {
            match *segment {
                "{*}" | "{**}" if seen_rest => {
                    return Err("{**} must be the last operator".into());
                }
                "{*}" | "{**}" => {
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal).into()));
                    }
                    if *segment == "{*}" {
                        tokens.push(Token::Segment);
                    } else {
                        head = Some(std::mem::take(&mut tokens));
                        seen_rest = true;
                    }
                }
                "" if i == last && i > 0 => {
                    // A single trailing '/' (Envoy keeps it as an empty last segment).
                }
                "" => return Err("empty path segment ('//' or a trailing '//')".into()),
                text if text.contains('{') || text.contains('}') => {
                    return Err(format!(
                        "segment {text:?} contains '{{' or '}}' beyond a supported operator: \
                         {{*}} and {{**}} must be whole segments"
                    ));
                }
                text if !text.bytes().all(is_segment_char) => {
                    return Err(format!(
                        "segment {text:?} may only contain letters, digits and -._~%!$&'()+,;:@ \
                         (Envoy's uri_template literals)"
                    ));
                }
                text => literal.extend_from_slice(text.as_bytes()),
            }
            if i != last {
                literal.push(b'/');
            }
        }
        match head {
            // Only literals follow `{**}`, all gathered in `literal`.
            Some(head) => Ok(PathTemplate { head: head.into(), rest: Some(literal.into()) }),
            None => {
                if !literal.is_empty() {
                    tokens.push(Token::Literal(literal.into()));
                }
                Ok(PathTemplate { head: tokens.into(), rest: None })
            }
        }
    }

    /// The literal bytes every matching path starts with (at least `/`): what the index keys on.
    pub(crate) fn literal_prefix(&self) -> &[u8] {
        match self.head.first() {
            Some(Token::Literal(literal)) => literal,
            _ => b"",
        }
    }

    /// Full match of a path without query and fragment.
    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        let mut at = 0usize;
        for token in self.head.iter() {
            let rest = path.get(at..).unwrap_or_default();
            match token {
                Token::Literal(literal) => {
                    if !rest.starts_with(literal) {
                        return false;
                    }
                    at += literal.len();
                }
                Token::Segment => {
                    // A segment is always followed by '/' or the end, which it cannot contain:
                    // the longest run is the only possible match.
                    let run = rest.iter().take_while(|&&b| is_segment_char(b)).count();
                    if run == 0 {
                        return false;
                    }
                    at += run;
                }
            }
        }
        let rest = path.get(at..).unwrap_or_default();
        match &self.rest {
            None => rest.is_empty(),
            Some(tail) => {
                let Some(middle_len) = rest.len().checked_sub(tail.len()) else {
                    return false;
                };
                let (middle, end) = rest.split_at(middle_len);
                end == &**tail && middle.iter().all(|&b| b == b'/' || is_segment_char(b))
            }
        }
    }
}

#[cfg(test)]
mod istio_validation_tests {
    use super::istio_accepts;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn istio_check_valid_path_template_cases() {
        // istio pkg/config/security/security_test.go TestCheckValidPathTemplate and
        // TestIsValidLiteral.
        for ok in ["/{*}/foo", "/{*}/foo/", "/foo/{**}/bar", "/foo/bar/{**}", "/a=c/{*}", "{*}/foo"]
        {
            assert!(istio_accepts(ok), "{ok}");
        }
        for bad in [
            "/foo/{**}buzz/bar",
            "/{*}/foo/{}/bar",
            "/foo/{*}/bar/*",
            "/foo/{*}/bar/**/buzz",
            "/foo/{buzz}/bar",
            "/{buzz}",
            "/foo/{buzz}/bar/{**}",
            "/foo/{buzz=*}/bar/{**}",
            "/{*}/foo/{buzz=**}/bar",
            "/{*}/foo/{**}bar",
            "/{*}/foo/{*}.txt",
            "/{*}/foo/{temp",
            "/{*}/foo/temp}/bar",
            "/{*}/foo/temp}/*",
            "/{**}/foo/temp/{*}/bar",
            "/{**}/{**}",
            "/{**}/foo/temp/{**}/bar",
            "/{*}/foo/?abc",
        ] {
            assert!(!istio_accepts(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn matches(template: &str, path: &str) -> bool {
        PathTemplate::parse(template).unwrap().matches(path.as_bytes())
    }

    #[test]
    fn istio_integration_vectors() {
        // tests/integration/security/authz_test.go TestAuthz_PathTemplating
        assert!(matches("/allow/admin/{**}", "/allow/admin/"));
        assert!(!matches("/allow/admin/{**}", "/allow/admin"));
        assert!(!matches("/allow/admin/{**}", "/allow/user/"));
        assert!(matches("/allow/admin/{**}", "/allow/admin/temp"));
        assert!(matches("/allow/admin/{**}", "/allow/admin/foo/temp.txt"));
        assert!(matches("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat.txt"));
        assert!(matches("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat/fuzz.txt"));
        assert!(!matches("/foo/{*}/bar/{**}", "/foo/bar/bat.txt"));
        assert!(!matches("/foo/{*}/bar/{**}", "/foo//bar/bat.txt"));
        assert!(matches("/store/{**}/cart", "/store//cart"));
        assert!(!matches("/store/{**}/cart", "/store/cart"));
        assert!(matches("/store/{**}/cart", "/store/foo/bar/cart"));
    }

    #[test]
    fn segment_characters_exclude_star_equals_and_space() {
        assert!(matches("/a/{*}", "/a/b-c.d_e~f%20"));
        assert!(!matches("/a/{*}", "/a/b=c"));
        assert!(!matches("/a/{*}", "/a/b c"));
        assert!(!matches("/a/{**}", "/a/b*c"));
    }

    #[test]
    fn trailing_slash_is_kept() {
        assert!(matches("/a/{*}/", "/a/b/"));
        assert!(!matches("/a/{*}/", "/a/b"));
    }

    #[test]
    fn invalid_templates_are_refused() {
        for bad in [
            "/a/{**}/{*}",
            "/a/{**}/{**}",
            "/a/{x}/{*}",
            "/a/{*}.txt",
            "a/{*}",
            "/a//{*}",
            "/a=b/{*}",
            "/a b/{*}",
            "/{*}//",
            "//{*}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_prefix_is_what_precedes_the_first_operator() {
        assert_eq!(PathTemplate::parse("/api/v1/{*}/x").unwrap().literal_prefix(), b"/api/v1/");
        assert_eq!(PathTemplate::parse("/{**}").unwrap().literal_prefix(), b"/");
    }
}
