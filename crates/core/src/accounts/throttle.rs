//! Brute-force protection for password logins.
//!
//! Every attempt is counted *before* its password is checked, inside a transaction that holds
//! the counters' locks, so parallel attempts cannot all slip under the limit: with five free
//! attempts, twenty parallel wrong passwords get five checks and fifteen `429`s. Past the free
//! attempts each one opens a back-off (1 s, 2 s, 4 s … up to a ceiling); the window expiring
//! or a successful login clears it, so nobody is locked out for good.
//!
//! Three counters: the IP across accounts, the account from one IP (strict: a guesser there is
//! slowed at once), and the account from everywhere (looser: a distributed guesser is slowed
//! too). The account-wide counter is skipped for a device or IP the account signed in from
//! before (see `known`), so guessers on many addresses cannot lock the owner out. Keys hold
//! hashes, never the typed username, which may be a password in the wrong field.
//!
//! A refused attempt writes nothing: the IP is locked first, and a refusal rolls the whole
//! reservation back, so a blocked address cannot grow the table with rows for every username
//! it makes up.

use diesel::Connection;

use crate::config::ThrottleSettings;
use crate::db::repo::throttles::{self, ThrottleRow};
use crate::db::{DbConnection, DbError};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_attempts: i64,
    pub window_secs: i64,
    pub max_backoff_secs: i64,
}

impl Policy {
    pub fn account(settings: &ThrottleSettings) -> Policy {
        Policy {
            free_attempts: settings.account_free_attempts,
            window_secs: settings.window_secs,
            max_backoff_secs: settings.max_backoff_secs,
        }
    }

    pub fn account_total(settings: &ThrottleSettings) -> Policy {
        Policy {
            free_attempts: settings.account_total_free_attempts,
            ..Policy::account(settings)
        }
    }

    pub fn ip(settings: &ThrottleSettings) -> Policy {
        Policy {
            free_attempts: settings.ip_free_attempts,
            ..Policy::account(settings)
        }
    }

    /// Back-off after the `excess`-th attempt past the free ones: 1 s, doubling, capped.
    fn backoff(&self, excess: i64) -> i64 {
        let doubled = 1i64
            .checked_shl(excess.clamp(0, 62) as u32)
            .unwrap_or(i64::MAX);
        doubled.min(self.max_backoff_secs)
    }

    /// Counts one attempt against `row` at `now`: `Err(retry_after)` if it must wait.
    pub fn attempt(&self, row: &ThrottleRow, now: i64) -> Result<ThrottleRow, i64> {
        let mut next = row.clone();
        if now - next.window_started_at >= self.window_secs {
            next.failures = 0;
            next.window_started_at = now;
            next.blocked_until = None;
        }
        if let Some(until) = next.blocked_until
            && until > now
        {
            return Err(until - now);
        }
        next.failures += 1;
        if next.failures >= self.free_attempts {
            next.blocked_until = Some(now + self.backoff(next.failures - self.free_attempts));
        }
        Ok(next)
    }
}

/// The counters one login attempt touches, in the fixed order they are locked (the IP first:
/// the check that refuses a blocked address before anything about the account is written).
pub fn keys(
    settings: &ThrottleSettings,
    email_lower: &str,
    ip: Option<&str>,
) -> Vec<(String, Policy)> {
    let account = crate::crypto::sha256_hex(email_lower.as_bytes());
    match ip.map(ip_key) {
        Some(ip) => vec![
            (format!("ip:{ip}"), Policy::ip(settings)),
            (
                format!(
                    "pair:{}",
                    crate::crypto::sha256_hex(format!("{account} {ip}").as_bytes())
                ),
                Policy::account(settings),
            ),
            (
                format!("account:{account}"),
                Policy::account_total(settings),
            ),
        ],
        None => vec![(format!("account:{account}"), Policy::account(settings))],
    }
}

/// The keys of an attempt from a device or IP the account knows: without the account-wide
/// counter (the per-IP and per-pair ones stay). Without an IP the one strict account counter
/// stays too.
pub fn for_known(keys: Vec<(String, Policy)>) -> Vec<(String, Policy)> {
    if !keys.iter().any(|(key, _)| key.starts_with("pair:")) {
        return keys;
    }
    keys.into_iter()
        .filter(|(key, _)| !key.starts_with("account:"))
        .collect()
}

/// The counter of upstream sign-ins started from one IP (each stores a pending sign-in).
pub fn upstream_start_keys(
    settings: &ThrottleSettings,
    per_ip: i64,
    ip: Option<&str>,
) -> Vec<(String, Policy)> {
    ip.map(|ip| {
        vec![(
            format!("upstream:ip:{}", ip_key(ip)),
            Policy {
                free_attempts: per_ip,
                ..Policy::account(settings)
            },
        )]
    })
    .unwrap_or_default()
}

/// IPv6 clients are counted by their /64: one host usually holds the whole prefix.
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(ip.to_string(), |v4| v4.to_string()),
        _ => ip.to_string(),
    }
}

/// After a successful login: the account's counters start afresh, the IP gets its attempt back.
pub fn succeeded(
    conn: &mut DbConnection,
    keys: &[(String, Policy)],
    now: i64,
) -> Result<(), DbError> {
    for (key, _) in keys {
        if key.starts_with("ip:") {
            throttles::refund(conn, key)?;
        } else {
            throttles::reset(conn, key, now)?;
        }
    }
    Ok(())
}

/// Gives every counter its attempt back (the password was never checked).
pub fn release(conn: &mut DbConnection, keys: &[(String, Policy)]) -> Result<(), DbError> {
    for (key, _) in keys {
        throttles::refund(conn, key)?;
    }
    Ok(())
}

/// Why a reservation's transaction ends without committing.
enum Refusal {
    Wait(i64),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Refusal::Db(e)
    }
}

/// Counts one attempt against every key, all or nothing: `Ok(None)` to go ahead,
/// `Ok(Some(seconds))` when any key must wait (then nothing is written, not even the rows of
/// keys seen for the first time). Keys are always locked in the order given, so concurrent
/// callers cannot deadlock.
pub fn reserve(
    conn: &mut DbConnection,
    keys: &[(String, Policy)],
    now: i64,
) -> Result<Option<i64>, DbError> {
    let reserved = conn.transaction(|conn| {
        let mut updated = Vec::with_capacity(keys.len());
        for (key, policy) in keys {
            let row = throttles::lock(conn, key, now)?;
            match policy.attempt(&row, now) {
                Ok(next) => updated.push(next),
                Err(retry_after) => return Err(Refusal::Wait(retry_after)),
            }
        }
        for row in &updated {
            throttles::save(conn, row)?;
        }
        Ok(())
    });
    match reserved {
        Ok(()) => Ok(None),
        Err(Refusal::Wait(retry_after)) => Ok(Some(retry_after)),
        Err(Refusal::Db(e)) => Err(DbError::Query(e)),
    }
}

/// The counter of mail sent to one address, whatever asked for it.
pub fn mail_email_key(email_lower: &str) -> String {
    format!(
        "mail:email:{}",
        crate::crypto::sha256_hex(email_lower.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        free_attempts: 5,
        window_secs: 900,
        max_backoff_secs: 900,
    };

    fn fresh(now: i64) -> ThrottleRow {
        ThrottleRow {
            throttle_key: "account:a".into(),
            failures: 0,
            window_started_at: now,
            blocked_until: None,
        }
    }

    #[test]
    fn five_free_attempts_then_doubling_backoff() {
        let now = 1_000;
        let mut row = fresh(now);
        for _ in 0..4 {
            row = POLICY.attempt(&row, now).expect("free");
            assert_eq!(row.blocked_until, None);
        }
        row = POLICY.attempt(&row, now).expect("fifth is checked");
        assert_eq!(row.blocked_until, Some(now + 1));
        assert_eq!(POLICY.attempt(&row, now), Err(1));
        row = POLICY.attempt(&row, now + 1).expect("after the wait");
        assert_eq!(row.blocked_until, Some(now + 1 + 2));
        row = POLICY.attempt(&row, now + 3).expect("after the wait");
        assert_eq!(row.blocked_until, Some(now + 3 + 4));
    }

    #[test]
    fn ipv6_clients_count_by_prefix() {
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(ip_key("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn backoff_is_capped_and_the_window_forgets() {
        let now = 1_000;
        let row = ThrottleRow {
            failures: 60,
            blocked_until: Some(now - 1),
            ..fresh(now - 10)
        };
        let next = POLICY.attempt(&row, now).expect("wait over");
        assert_eq!(
            next.blocked_until,
            Some(now + 900),
            "never more than the ceiling"
        );
        let later = POLICY.attempt(&next, now + 900).expect("new window");
        assert_eq!(later.failures, 1);
        assert_eq!(later.blocked_until, None);
    }
}
