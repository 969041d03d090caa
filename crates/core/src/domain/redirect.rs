use super::invalid::Invalid;

/// The redirect URIs a client registered, each checked when registered (`parse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectUris(Vec<String>);

impl RedirectUris {
    pub fn parse(list: &[String]) -> Result<RedirectUris, Invalid> {
        let mut uris: Vec<String> = Vec::new();
        for uri in list {
            validate_redirect_uri(uri).map_err(Invalid)?;
            if !uris.contains(uri) {
                uris.push(uri.clone());
            }
        }
        Ok(RedirectUris(uris))
    }

    pub fn from_stored(text: &str) -> RedirectUris {
        RedirectUris(super::invalid::distinct_words(text))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    /// The one registered URI, when there is exactly one: the default when a request names
    /// none (RFC 6749 §3.1.2.3).
    pub fn sole(&self) -> Option<&str> {
        match self.0.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Whether `requested` is one of these URIs, character for character: the rule for
    /// post-logout redirect URIs (RP-Initiated Logout 1.0 §3), which have no loopback leeway.
    pub fn contains_exactly(&self, requested: &str) -> bool {
        self.iter().any(|r| r == requested)
    }

    /// Whether `requested` may stand for one of these URIs (`redirect_uri_matches`).
    pub fn allows(&self, requested: &str) -> bool {
        self.iter().any(|r| redirect_uri_matches(r, requested))
    }
}

impl std::fmt::Display for RedirectUris {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// Schemes that run or embed content where a redirect lands; never a redirect URI.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// A redirect URI, parsed (RFC 6749 §3.1.2: absolute, no fragment) rather than matched as a
/// string, so that what is checked is the host a browser will go to:
/// - https to any host;
/// - plain http only to a loopback address, `127.0.0.1` or `[::1]` (RFC 8252 §7.3; not
///   `localhost`, which a hosts file or resolver may send elsewhere, §8.3);
/// - a private-use scheme of a native app, which must be a reverse-DNS name such as
///   `com.example.app` (RFC 8252 §7.1).
///
/// Userinfo is refused everywhere (`https://good.example@evil.example/` reads as good to a
/// person), and so is a backslash, which browsers read as a slash ending the authority.
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URIs: {uri:?} {why}"));
    // The parser would quietly drop these (tabs, newlines) or reinterpret them (backslash).
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    if uri.contains('\\') {
        return bad("must not contain a backslash");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return bad("is not an absolute URI");
    };
    if uri.contains('#') || parsed.fragment().is_some() {
        return bad("must not have a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("must not carry a user name or password");
    }
    let scheme = parsed.scheme();
    if matches!(scheme, "http" | "https") {
        // The parser forgives `https:/host` and `https:///host`; a registered URI must not
        // mean something other than it says.
        let authority = uri.get(scheme.len()..).and_then(|r| r.strip_prefix("://"));
        if authority.is_none_or(|a| a.is_empty() || a.starts_with('/')) {
            return bad("has no host");
        }
    }
    match scheme {
        "https" => match parsed.host() {
            Some(_) => Ok(()),
            None => bad("has no host"),
        },
        "http" if is_loopback_literal(&parsed) => Ok(()),
        "http" => bad("must use https unless its host is 127.0.0.1 or [::1]"),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => bad("has a forbidden scheme"),
        scheme if is_reverse_dns(scheme) && !parsed.cannot_be_a_base() => Ok(()),
        _ => bad(
            "has an unsupported scheme (a private-use scheme is a reverse-DNS name such as com.example.app)",
        ),
    }
}

/// `127.0.0.1` or `[::1]`, the loopback hosts RFC 8252 §7.3 names.
fn is_loopback_literal(uri: &url::Url) -> bool {
    match uri.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

/// At least two dot-separated labels of lower-case letters, digits and inner hyphens.
fn is_reverse_dns(scheme: &str) -> bool {
    let labels: Vec<&str> = scheme.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `requested` may stand for the registered redirect URI `registered`: the same
/// string, or, for a loopback URI, the same but for the port, which a native app picks when
/// it starts listening (RFC 8252 §7.3).
fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(registered), Ok(requested)) = (url::Url::parse(registered), url::Url::parse(requested))
    else {
        return false;
    };
    let loopback = |u: &url::Url| {
        u.scheme() == "http"
            && is_loopback_literal(u)
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment().is_none()
    };
    loopback(&registered)
        && loopback(&requested)
        && registered.host() == requested.host()
        && registered.path() == requested.path()
        && registered.query() == requested.query()
}
