use std::fmt;

use super::invalid::{Invalid, distinct_words};

/// An OAuth scope (RFC 6749 §3.3): distinct scope-tokens in the order they were asked for.
/// Stored and sent on the wire space-joined (`Display`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// A scope as a client sends it: space-separated scope-tokens (empty entries from repeated
    /// spaces are ignored, as before); a repeated token counts once.
    pub fn parse(text: &str) -> Result<ScopeSet, Invalid> {
        let mut tokens: Vec<String> = Vec::new();
        for token in text.split(' ').filter(|s| !s.is_empty()) {
            if !is_scope_token(token) {
                return Err(Invalid(format!("{token:?} is not a valid scope")));
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_string());
            }
        }
        Ok(ScopeSet(tokens))
    }

    /// A registration's list: each entry one scope-token (an entry holding a space is two
    /// scopes smuggled into one, and an empty one is a mistake, so both are refused).
    pub fn from_list(list: &[String]) -> Result<ScopeSet, Invalid> {
        if let Some(bad) = list.iter().find(|entry| !is_scope_token(entry)) {
            return Err(Invalid(format!("{bad:?} is not a valid scope")));
        }
        ScopeSet::parse(&list.join(" "))
    }

    /// A scope this provider wrote itself (a column, a claim): trusted, not re-validated.
    pub fn from_stored(text: &str) -> ScopeSet {
        ScopeSet(distinct_words(text))
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
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

    /// RFC 6749 §3.3 and §6: `requested` when every one of its tokens is in this set (the
    /// client's registered scopes, or what a login granted); otherwise the first token that is
    /// not, for the caller's error. Nothing requested means this whole set.
    pub fn narrow<'a>(&self, requested: Option<&'a ScopeSet>) -> Result<ScopeSet, &'a str> {
        let Some(requested) = requested else {
            return Ok(self.clone());
        };
        match requested.iter().find(|token| !self.contains(token)) {
            Some(outside) => Err(outside),
            None => Ok(requested.clone()),
        }
    }

    /// This set's tokens followed by those of `other` it lacks.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        let mut tokens = self.0.clone();
        tokens.extend(other.iter().filter(|t| !self.contains(t)).map(String::from));
        ScopeSet(tokens)
    }

    /// The tokens `keep` accepts, in order.
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> ScopeSet {
        ScopeSet(self.0.iter().filter(|t| keep(t)).cloned().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> ScopeSet {
        ScopeSet::parse(text).expect("valid scope")
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(ScopeSet::parse("openid api:read").is_ok());
        assert!(ScopeSet::parse("quote\"").is_err());
        assert!(ScopeSet::parse("back\\slash").is_err());
        assert!(ScopeSet::parse("tab\tseparated").is_err());
        assert_eq!(scope("  openid   api openid ").to_string(), "openid api");
        assert!(scope("").is_empty());
        let list =
            |l: &[&str]| ScopeSet::from_list(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&["openid", "api", "openid"]), Ok(scope("openid api")));
        for bad in [&["api account"][..], &[""], &["  "], &["ok", "a\"b"]] {
            assert!(list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scope_may_narrow_but_not_widen() {
        let granted = scope("openid api");
        assert_eq!(granted.narrow(None), Ok(scope("openid api")));
        assert_eq!(granted.narrow(Some(&scope("api"))), Ok(scope("api")));
        assert_eq!(
            granted.narrow(Some(&scope("api api openid"))),
            Ok(scope("api openid"))
        );
        assert_eq!(granted.narrow(Some(&scope("api admin"))), Err("admin"));
    }
}
