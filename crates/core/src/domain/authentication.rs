/// One way a person proved who they are (RFC 8176 §2 where the registry has a value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthMethod {
    /// A password (`pwd`).
    Password,
    /// A sign-in at an upstream OpenID provider. The registry has no value for it; `fed` is
    /// the one other providers use.
    Federated,
    /// A one-time password (`otp`): a code from an authenticator app, or a recovery code.
    OneTimePassword,
    /// Proof of possession of a hardware-secured key (`hwk`): a device-bound passkey.
    HardwareKey,
    /// Proof of possession of a software-secured key (`swk`): a synced passkey.
    SoftwareKey,
    /// A user presence or verification test by the authenticator (`user`).
    UserPresence,
    /// More than one factor (`mfa`).
    MultiFactor,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Federated => "fed",
            AuthMethod::OneTimePassword => "otp",
            AuthMethod::HardwareKey => "hwk",
            AuthMethod::SoftwareKey => "swk",
            AuthMethod::UserPresence => "user",
            AuthMethod::MultiFactor => "mfa",
        }
    }

    fn parse(value: &str) -> Option<AuthMethod> {
        match value {
            "pwd" => Some(AuthMethod::Password),
            "fed" => Some(AuthMethod::Federated),
            "otp" => Some(AuthMethod::OneTimePassword),
            "hwk" => Some(AuthMethod::HardwareKey),
            "swk" => Some(AuthMethod::SoftwareKey),
            "user" => Some(AuthMethod::UserPresence),
            "mfa" => Some(AuthMethod::MultiFactor),
            _ => None,
        }
    }
}

/// The methods of one sign-in: the `amr` claim (OpenID Connect Core §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amr(Vec<AuthMethod>);

impl Amr {
    pub fn of(method: AuthMethod) -> Amr {
        Amr(vec![method])
    }

    /// The stored form; values this version does not know are dropped, never invented.
    pub fn from_stored(text: &str) -> Amr {
        let mut methods: Vec<AuthMethod> = text
            .split_whitespace()
            .filter_map(AuthMethod::parse)
            .collect();
        methods.sort();
        methods.dedup();
        Amr(methods)
    }

    /// Several methods (sorted, each once).
    pub fn of_all(methods: &[AuthMethod]) -> Amr {
        let mut methods = methods.to_vec();
        methods.sort();
        methods.dedup();
        Amr(methods)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|m| m.as_str().to_string()).collect()
    }
}

/// What a token says of the sign-in behind it: when the person proved who they are
/// (`auth_time`), how (`amr`), and in which browser session at Tessera (`sid`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub time: i64,
    pub amr: Amr,
    pub session_id: Option<String>,
}

impl Authentication {
    /// A sign-in with no browser session: the password grant.
    pub fn without_session(time: i64, method: AuthMethod) -> Authentication {
        Authentication {
            time,
            amr: Amr::of(method),
            session_id: None,
        }
    }

    /// As stored on a code or a refresh family.
    pub fn from_stored(time: i64, amr: Option<&str>, session_id: Option<&str>) -> Authentication {
        Authentication {
            time,
            amr: amr.map(Amr::from_stored).unwrap_or_default(),
            session_id: session_id.map(String::from),
        }
    }
}

impl std::fmt::Display for Amr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_methods_round_trip_and_unknown_ones_are_dropped() {
        let amr = Amr::from_stored("pwd fed pwd hwk kba");
        assert_eq!(amr.names(), vec!["pwd", "fed", "hwk"]);
        assert_eq!(Amr::from_stored(&amr.to_string()), amr);
        assert!(Amr::from_stored("").is_empty());
    }
}
