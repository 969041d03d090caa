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

    pub fn contains(&self, method: AuthMethod) -> bool {
        self.0.contains(&method)
    }

    /// Multi-factor: a knowledge factor (a password, or an upstream sign-in) and a possession
    /// factor (a one-time password, a key), or a user-verified key on its own (possession and
    /// a PIN or biometric).
    pub fn is_multi_factor(&self) -> bool {
        let knowledge = self.contains(AuthMethod::Password) || self.contains(AuthMethod::Federated);
        let key = self.contains(AuthMethod::HardwareKey) || self.contains(AuthMethod::SoftwareKey);
        let possession = key || self.contains(AuthMethod::OneTimePassword);
        (knowledge && possession) || (key && self.contains(AuthMethod::UserPresence))
    }

    /// These methods and `more`, with `mfa` added when together they are multi-factor.
    pub fn with(&self, more: &[AuthMethod]) -> Amr {
        let mut methods = self.0.clone();
        methods.extend_from_slice(more);
        methods.retain(|m| *m != AuthMethod::MultiFactor);
        methods.sort();
        methods.dedup();
        let mut amr = Amr(methods);
        if amr.is_multi_factor() {
            amr.0.push(AuthMethod::MultiFactor);
        }
        amr
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|m| m.as_str().to_string()).collect()
    }
}

/// An authentication context class (`acr`, OpenID Connect Core §2) this provider knows: both
/// mean a multi-factor sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acr {
    /// `urn:tessera:acr:mfa`, the one tokens carry unless the app asked the other.
    Mfa,
    /// The OpenID PAPE multi-factor policy.
    PapeMultiFactor,
}

impl Acr {
    pub const ALL: [Acr; 2] = [Acr::Mfa, Acr::PapeMultiFactor];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Mfa => "urn:tessera:acr:mfa",
            Acr::PapeMultiFactor => "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
        }
    }

    pub fn parse(value: &str) -> Option<Acr> {
        Acr::ALL.into_iter().find(|acr| acr.as_str() == value)
    }

    /// The first value of a space-separated `acr_values` this provider knows; the others are
    /// ignored (OpenID Connect Core §3.1.2.1: a voluntary request).
    pub fn first_of(acr_values: &str) -> Option<Acr> {
        acr_values.split_whitespace().find_map(Acr::parse)
    }

    /// The `acr` of a sign-in: the value asked for when it was met, `urn:tessera:acr:mfa` for
    /// a multi-factor sign-in asked nothing, none for a single factor.
    pub fn of(amr: &Amr, asked: Option<Acr>) -> Option<Acr> {
        amr.is_multi_factor().then(|| asked.unwrap_or(Acr::Mfa))
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
    /// The token's `acr`: `urn:tessera:acr:mfa` for a multi-factor sign-in, whichever of the
    /// two values the app asked for (neither codes nor refresh families keep the value asked;
    /// both mean the same).
    pub fn acr(&self) -> Option<Acr> {
        Acr::of(&self.amr, None)
    }

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
    fn multi_factor_needs_two_kinds_or_a_verified_key() {
        let pwd = Amr::of(AuthMethod::Password);
        assert!(!pwd.is_multi_factor());
        let both = pwd.with(&[AuthMethod::OneTimePassword]);
        assert_eq!(both.names(), vec!["pwd", "otp", "mfa"]);
        assert!(
            Amr::of(AuthMethod::Federated)
                .with(&[AuthMethod::HardwareKey])
                .is_multi_factor()
        );
        assert!(!Amr::of(AuthMethod::SoftwareKey).is_multi_factor());
        let uv = Amr::of(AuthMethod::SoftwareKey).with(&[AuthMethod::UserPresence]);
        assert_eq!(uv.names(), vec!["swk", "user", "mfa"]);
        assert!(!Amr::of(AuthMethod::OneTimePassword).is_multi_factor());
        // `mfa` is never taken on trust from a stored or given list.
        assert!(
            !Amr::from_stored("pwd mfa")
                .with(&[])
                .contains(AuthMethod::MultiFactor)
        );
        assert_eq!(Acr::of(&both, None), Some(Acr::Mfa));
        assert_eq!(
            Acr::of(&both, Some(Acr::PapeMultiFactor)),
            Some(Acr::PapeMultiFactor)
        );
        assert_eq!(Acr::of(&pwd, Some(Acr::Mfa)), None);
        assert_eq!(
            Acr::first_of("urn:other http://schemas.openid.net/pape/policies/2007/06/multi-factor"),
            Some(Acr::PapeMultiFactor)
        );
        assert_eq!(Acr::first_of("urn:other"), None);
    }

    #[test]
    fn stored_methods_round_trip_and_unknown_ones_are_dropped() {
        let amr = Amr::from_stored("pwd fed pwd hwk kba");
        assert_eq!(amr.names(), vec!["pwd", "fed", "hwk"]);
        assert_eq!(Amr::from_stored(&amr.to_string()), amr);
        assert!(Amr::from_stored("").is_empty());
    }
}
