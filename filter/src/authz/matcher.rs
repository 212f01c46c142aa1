//! Values as Istio compiles them into Envoy matchers, over bytes.
//!
//! Istio turns each policy value into an Envoy `StringMatcher` or `HeaderMatcher`
//! (`pilot/pkg/security/authz/matcher/{string,header}.go`): `*` alone, `*suffix`, `prefix*`,
//! otherwise exact; a `*` anywhere else is a literal character. `*` alone means "non-empty" for
//! string matchers (the regex `.+`) and "present, even empty" for header matchers
//! (`present_match`). CIDRs and ports are parsed as Istio validates them
//! (`pkg/config/security/security.go` `ValidateIPs`, `ValidatePorts`).

use std::net::IpAddr;

/// How one policy value matches a string attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Pattern {
    /// The whole value, byte for byte.
    Exact(Box<[u8]>),
    /// `value*`.
    Prefix(Box<[u8]>),
    /// `*value`.
    Suffix(Box<[u8]>),
    /// `*` compiled to the RE2 regex `.+`: non-empty, and no newline (RE2's `.` excludes it).
    NonEmpty,
    /// `*` compiled to a header `present_match`: the attribute exists, even with an empty value.
    Present,
}

impl Pattern {
    /// Istio `matcher.StringMatcher`: JWT claims, audiences, presenter, SNI, paths.
    pub(crate) fn string(value: &str) -> Pattern {
        Self::shaped(value, Pattern::NonEmpty)
    }

    /// Istio `matcher.HeaderMatcher`: methods and `request.headers[..]`.
    pub(crate) fn header(value: &str) -> Pattern {
        Self::shaped(value, Pattern::Present)
    }

    /// Istio `matcher.HostMatcher`: a header matcher with `ignore_case`. Stored lower-case and
    /// compared with [`Pattern::matches_ignore_case`].
    pub(crate) fn host(value: &str) -> Pattern {
        Self::shaped(&value.to_ascii_lowercase(), Pattern::Present)
    }

    fn shaped(value: &str, star: Pattern) -> Pattern {
        if value == "*" {
            star
        } else if let Some(suffix) = value.strip_prefix('*') {
            Pattern::Suffix(suffix.as_bytes().into())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Pattern::Prefix(prefix.as_bytes().into())
        } else {
            Pattern::Exact(value.as_bytes().into())
        }
    }

    /// Whether a present attribute matches (an absent one never does).
    pub(crate) fn matches(&self, actual: &[u8]) -> bool {
        match self {
            Pattern::Exact(exact) => actual == &**exact,
            Pattern::Prefix(prefix) => actual.starts_with(prefix),
            Pattern::Suffix(suffix) => actual.ends_with(suffix),
            Pattern::NonEmpty => non_empty_line(actual),
            Pattern::Present => true,
        }
    }

    /// [`Pattern::matches`] with ASCII case folding; the pattern is stored lower-case.
    pub(crate) fn matches_ignore_case(&self, actual: &[u8]) -> bool {
        match self {
            Pattern::Exact(exact) => actual.eq_ignore_ascii_case(exact),
            Pattern::Prefix(prefix) => {
                actual.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            }
            Pattern::Suffix(suffix) => actual
                .len()
                .checked_sub(suffix.len())
                .and_then(|start| actual.get(start..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)),
            Pattern::NonEmpty => non_empty_line(actual),
            Pattern::Present => true,
        }
    }
}

/// The RE2 regex `.+` as a full match: non-empty, no newline.
pub(crate) fn non_empty_line(actual: &[u8]) -> bool {
    !actual.is_empty() && !actual.contains(&b'\n')
}

/// An IP address or CIDR range, as Envoy's `CidrRange` matches it: same address family, the
/// first `prefix_len` bits equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32` (Go `netip.ParseAddr`/`ParsePrefix`
    /// rules: no zones, no leading zeros in the prefix length).
    pub(crate) fn parse(value: &str) -> Result<Cidr, String> {
        match value.split_once('/') {
            None => {
                let network: IpAddr = value.parse().map_err(|_| "not an IP address".to_string())?;
                let prefix_len = if network.is_ipv4() { 32 } else { 128 };
                Ok(Cidr { network, prefix_len })
            }
            Some((address, bits)) => {
                let network: IpAddr =
                    address.parse().map_err(|_| "not an IP address before `/`".to_string())?;
                let max = if network.is_ipv4() { 32 } else { 128 };
                let well_formed = !bits.is_empty()
                    && bits.bytes().all(|b| b.is_ascii_digit())
                    && (bits == "0" || !bits.starts_with('0'));
                let prefix_len =
                    bits.parse::<u8>().ok().filter(|len| well_formed && *len <= max).ok_or_else(
                        || format!("bad prefix length {bits:?}: expected 0 to {max}"),
                    )?;
                Ok(Cidr { network, prefix_len })
            }
        }
    }

    /// Whether `ip` is inside the range.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let diff = u32::from(network) ^ u32::from(ip);
                diff.checked_shr(32 - u32::from(self.prefix_len)).unwrap_or(0) == 0
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let diff = u128::from(network) ^ u128::from(ip);
                diff.checked_shr(128 - u32::from(self.prefix_len)).unwrap_or(0) == 0
            }
            _ => false,
        }
    }
}

/// Parses a port as Go's `strconv.ParseUint(v, 10, 32)` followed by `<= 65535` does.
pub(crate) fn parse_port(value: &str) -> Option<u16> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are legal in Go; strip them so a long run of zeros cannot overflow.
    let digits = value.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse::<u32>().ok().and_then(|port| u16::try_from(port).ok())
}

/// `bytes` for humans: lossy UTF-8, quoted and escaped.
pub(crate) fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn star_alone_is_non_empty_for_strings_and_present_for_headers() {
        assert_eq!(Pattern::string("*"), Pattern::NonEmpty);
        assert_eq!(Pattern::header("*"), Pattern::Present);
        assert!(!Pattern::NonEmpty.matches(b""));
        assert!(Pattern::Present.matches(b""));
    }

    #[test]
    fn star_in_the_middle_is_literal() {
        let pattern = Pattern::string("a*b");
        assert_eq!(pattern, Pattern::Exact(b"a*b".to_vec().into()));
        assert!(pattern.matches(b"a*b"));
        assert!(!pattern.matches(b"axb"));
    }

    #[test]
    fn leading_star_wins_over_trailing_star() {
        assert_eq!(Pattern::string("*a*"), Pattern::Suffix(b"a*".to_vec().into()));
    }

    #[test]
    fn non_empty_refuses_newlines_as_re2_dot_does() {
        assert!(Pattern::NonEmpty.matches(b"abc"));
        assert!(!Pattern::NonEmpty.matches(b"a\nb"));
    }

    #[test]
    fn host_patterns_ignore_ascii_case() {
        assert!(Pattern::host("Example.COM").matches_ignore_case(b"example.com"));
        assert!(Pattern::host("*.Example.com").matches_ignore_case(b"API.EXAMPLE.COM"));
        assert!(Pattern::host("api.*").matches_ignore_case(b"API.example.com"));
        assert!(!Pattern::host("example.com").matches_ignore_case(b"example.com:80"));
        assert!(!Pattern::host("*.example.com").matches_ignore_case(b"com"));
    }

    #[test]
    fn cidr_contains_only_its_family_and_prefix() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::ffff:10.1.0.1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host = Cidr::parse("2001:db8::1").unwrap();
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        // Host bits set in the network are allowed, as in Go's netip.ParsePrefix.
        assert!(Cidr::parse("10.1.2.3/8").unwrap().contains("10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn cidr_refuses_what_go_refuses() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "010.0.0.1",
            "x",
            "fe80::1%eth0",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_parse_as_go_parse_uint() {
        assert_eq!(parse_port("8080"), Some(8080));
        assert_eq!(parse_port("0"), Some(0));
        assert_eq!(parse_port("0080"), Some(80));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in ["65536", "+80", "-1", "", " 80", "80a", "99999999999999999999"] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
    }
}
