//! Email addresses: trimmed, the domain lower-cased for display, the whole address lower-cased
//! for lookups, so `Ann@Example.COM` and `ann@example.com` are one account.

const MAX_LEN: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    lookup_key: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required".into());
        }
        if trimmed.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| "is not an email address (no @)".to_string())?;
        if local.is_empty() || local.len() > 64 {
            return Err("has an empty or over-long part before the @".into());
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !domain.contains('.') || !labels_ok {
            return Err("has an invalid domain".into());
        }
        let display = format!("{local}@{}", domain.to_lowercase());
        Ok(Email {
            lookup_key: display.to_lowercase(),
            display,
        })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn lookup_key(&self) -> &str {
        &self.lookup_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let e = Email::parse("  Ann.Lee@Example.COM ").expect("valid");
        assert_eq!(e.display(), "Ann.Lee@example.com");
        assert_eq!(e.lookup_key(), "ann.lee@example.com");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "a b@example.com",
            "ann@exa_mple.com",
            "ann@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
