//! Where webhooks may point: URL rules and the address ranges a delivery must never reach.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::domain::FieldError;

/// The longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What a registration may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Loopback, private and other internal addresses allowed (local stack and tests only).
    pub allow_private: bool,
    /// `http://` allowed besides `https://`.
    pub allow_http: bool,
}

/// Validates a webhook target URL and returns it normalised (lower-case host, explicit path).
///
/// Malformed URLs are `400`s; well-formed ones that policy refuses (`http://`, internal
/// addresses) are `422`s. Names are checked again, resolved, on every delivery.
pub fn validate_target_url(field: &str, raw: &str, policy: TargetPolicy) -> Result<Url, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldError::malformed(field, format!("{field} must not be empty")));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(FieldError::malformed(
            field,
            format!("{field} must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::IdnaError => FieldError::malformed(
            field,
            format!("{field}'s host must be ASCII: write an international domain name in its punycode form (xn--…)"),
        ),
        e => FieldError::malformed(field, format!("{field} must be an absolute https:// URL ({e})")),
    })?;
    // Normalising can lengthen a URL (spaces become %20, a host is lower-cased).
    if url.as_str().len() > MAX_URL_LEN {
        return Err(FieldError::malformed(
            field,
            format!("{field} must be at most {MAX_URL_LEN} characters once normalised"),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(FieldError::not_allowed(field, format!("{field} must use https://")));
        }
        other => {
            return Err(FieldError::malformed(field, format!("{field} must use https://, not {other}:")));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::malformed(
            field,
            format!("{field} must not contain credentials; use authentication instead"),
        ));
    }
    if url.fragment().is_some() {
        return Err(FieldError::malformed(field, format!("{field} must not contain a #fragment")));
    }
    if url.port() == Some(0) {
        return Err(FieldError::malformed(field, format!("{field} port must be 1-65535")));
    }
    let internal = match url.host() {
        None => return Err(FieldError::malformed(field, format!("{field} must have a host"))),
        Some(Host::Ipv4(ip)) => is_forbidden_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_forbidden_ip(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if internal && !policy.allow_private {
        return Err(FieldError::not_allowed(
            field,
            format!("{field} points at a loopback, private or reserved address"),
        ));
    }
    Ok(url)
}

/// How long registration waits for a name to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Refuses (422) a URL whose host name resolves to an internal address. A name that does not
/// resolve (yet) is accepted: every delivery resolves and checks again.
pub async fn check_resolved_host(field: &str, url: &str, policy: TargetPolicy) -> Result<(), FieldError> {
    if policy.allow_private {
        return Ok(());
    }
    let Ok(parsed) = Url::parse(url) else { return Ok(()) };
    let Some(Host::Domain(name)) = parsed.host() else { return Ok(()) };
    let lookup = tokio::net::lookup_host((name, parsed.port_or_known_default().unwrap_or(443)));
    let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await else { return Ok(()) };
    let mut addrs = addrs;
    if addrs.any(|a| is_forbidden_ip(a.ip())) {
        return Err(FieldError::not_allowed(
            field,
            format!("{field} resolves to a loopback, private or reserved address"),
        ));
    }
    Ok(())
}

/// True for every address a webhook delivery must not reach: loopback, private, link-local
/// (the instance metadata service), CGNAT, multicast, broadcast, unspecified, documentation,
/// benchmarking and reserved ranges, and IPv6 forms that embed one of them.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xfff0) == 0x3ff0 && s[0] <= 0x3fff // documentation 3fff::/20
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard 100::/64
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF assignments incl. Teredo, benchmarking
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0) // other ::/80 forms
}

/// The IPv4 address inside IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || (s[5] == 0 && (s[6] != 0 || s[7] > 1))) {
        return Some(tail());
    }
    if s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: TargetPolicy = TargetPolicy { allow_private: false, allow_http: false };
    const LOCAL: TargetPolicy = TargetPolicy { allow_private: true, allow_http: true };

    fn forbidden(s: &str) -> bool {
        is_forbidden_ip(s.parse().unwrap())
    }

    #[test]
    fn internal_ipv4_ranges_are_forbidden() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn internal_ipv6_ranges_and_embedded_forms_are_forbidden() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "64:ff9b:1::1",
            "3fff::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::1",
            "2002:c0a8:0101::",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn https_urls_are_accepted_and_normalised() {
        let u = validate_target_url("url", " https://Example.COM ", PROD).unwrap();
        assert_eq!(u.as_str(), "https://example.com/");
        let u = validate_target_url("url", "https://hooks.example.com:8443/in?x=1", PROD).unwrap();
        assert_eq!(u.as_str(), "https://hooks.example.com:8443/in?x=1");
    }

    #[test]
    fn an_international_name_is_taken_in_its_punycode_form_only() {
        let u = validate_target_url("url", "https://xn--bcher-kva.example/in", PROD).unwrap();
        assert_eq!(u.as_str(), "https://xn--bcher-kva.example/in");
        let e = validate_target_url("url", "https://bücher.example/in", PROD).unwrap_err();
        assert!(!e.not_allowed);
        assert_eq!(
            e.message,
            "url's host must be ASCII: write an international domain name in its punycode form (xn--…)"
        );
    }

    #[test]
    fn malformed_urls_are_400_and_name_the_field() {
        for raw in [
            "",
            "not a url",
            "/relative",
            "ftp://example.com/",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://example.com/#x",
            "https://example.com:0/",
            "https://example.com:70000/",
            "file:///etc/passwd",
        ] {
            let e = validate_target_url("url", raw, PROD).unwrap_err();
            assert!(!e.not_allowed, "{raw}: {e}");
            assert_eq!(e.field, "url");
            assert!(e.message.starts_with("url "), "{raw}: {}", e.message);
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(!validate_target_url("url", &long, PROD).unwrap_err().not_allowed);
    }

    #[test]
    fn http_and_internal_targets_are_422_in_production() {
        for raw in [
            "http://example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://localhost/",
            "https://api.localhost./",
            "https://169.254.169.254/latest/meta-data/",
            "https://0x7f.1/",
            "https://[::ffff:7f00:1]/",
            "https://10.0.0.1:8443/",
        ] {
            let e = validate_target_url("url", raw, PROD).unwrap_err();
            assert!(e.not_allowed, "{raw}: {e}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_422_and_unresolvable_ones_pass() {
        // `validate_target_url` refuses `localhost` by name; the resolver check catches it too.
        let e = check_resolved_host("url", "https://localhost:8443/x", PROD).await.unwrap_err();
        assert!(e.not_allowed && e.message.contains("resolves to"), "{e}");
        assert!(check_resolved_host("url", "https://no-such-host.invalid/", PROD).await.is_ok());
        assert!(check_resolved_host("url", "https://localhost/", LOCAL).await.is_ok());
        assert!(
            check_resolved_host("url", "https://203.0.113.9/", PROD).await.is_ok(),
            "literals are checked elsewhere"
        );
    }

    #[test]
    fn local_policy_lifts_the_internal_and_http_rules_only() {
        assert!(validate_target_url("url", "http://127.0.0.1:8080/hook", LOCAL).is_ok());
        assert!(validate_target_url("url", "https://localhost/", LOCAL).is_ok());
        assert!(validate_target_url("url", "ftp://127.0.0.1/", LOCAL).is_err());
        let https_only = TargetPolicy { allow_private: true, allow_http: false };
        assert!(validate_target_url("address", "http://127.0.0.1/", https_only).unwrap_err().not_allowed);
    }
}
