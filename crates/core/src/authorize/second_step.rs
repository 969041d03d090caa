//! The second step of a sign-in at `/authorize`: after a first factor (a password, an
//! upstream), a person who has a second factor proves it (an authenticator app's code, a
//! passkey, or a recovery code in their place), and a person who must use one but has none
//! sets up an authenticator app. Only then is the browser session made, or, for a step-up
//! inside an existing session, upgraded, with both factors in its `amr`.
//!
//! Between the two steps the sign-in is a pending row (`mfa::pending`), found by the cookie
//! the browser holds and good once.

use diesel::Connection;
use webauthn_rs::prelude::PublicKeyCredential;

use super::next::{Ask, Completed, Next, SecondFactor, after_sign_in};
use super::request::{AuthorizationRequest, AuthorizeError};
use crate::db::{DbConnection, DbError};
use crate::domain::{Amr, AuthMethod, User};
use crate::mfa::passkey::{self, Refused};
use crate::mfa::{self, CodeAttempt, CodeCheck, Factors, MfaError};
use crate::services::Services;
use crate::sso::{self, Origin, SignedIn};

/// What the second-step page offers a person with these factors (`passkeys_on`: this
/// provider can check passkeys; it cannot when its issuer has no domain).
pub fn offered(factors: &Factors, passkeys_on: bool) -> Vec<SecondFactor> {
    let mut offered = Vec::new();
    if factors.totp {
        offered.push(SecondFactor::Totp);
    }
    if passkeys_on && factors.passkeys > 0 {
        offered.push(SecondFactor::Passkey);
    }
    if !offered.is_empty() && factors.recovery_codes_left > 0 {
        offered.push(SecondFactor::RecoveryCode);
    }
    offered
}

/// Whether `request` needs a multi-factor sign-in whatever the person has set up: the
/// provider's policy (`accounts.mfa = "required"`) or the client's (`require_mfa`).
pub fn mfa_required(svc: &Services, request: &AuthorizationRequest) -> bool {
    svc.settings.accounts.mfa.is_required() || request.client.require_mfa
}

fn task(e: MfaError) -> DbError {
    DbError::Task(e.to_string())
}

/// Where a sign-in with `amr` stands, for the second step.
pub(super) struct SignInSoFar<'a> {
    pub user: &'a User,
    pub amr: &'a Amr,
    pub persistent: bool,
    /// The browser session being stepped up; `None` for a fresh sign-in.
    pub session_id: Option<&'a str>,
}

/// What a sign-in still needs before it stands for `request`: a second factor, or enrolment,
/// or nothing (`None`). A fresh sign-in asks whoever has a second factor for it; an existing
/// session is asked only when the request wants more than it has (`acr_values`, or a policy
/// requiring a second factor). Enrolment is for a person a policy requires it of who has none.
pub(super) fn further_step(
    conn: &mut DbConnection,
    svc: &Services,
    request: &AuthorizationRequest,
    so_far: SignInSoFar<'_>,
    now: i64,
) -> Result<Option<Next>, DbError> {
    if so_far.amr.is_multi_factor() {
        return Ok(None);
    }
    let required = mfa_required(svc, request);
    let fresh = so_far.session_id.is_none();
    if !fresh && !required && request.acr.is_none() {
        return Ok(None);
    }
    if !fresh && request.prompt.none {
        return Ok(Some(Next::SecondStepUnshown));
    }
    let user_id = so_far.user.id.as_str();
    let factors = mfa::factors(conn, user_id).map_err(task)?;
    let offered = offered(&factors, svc.passkeys.is_some());
    let ask = if !offered.is_empty() {
        Ask::Factor(offered)
    } else if required {
        let label = mfa::issuer_label(&svc.issuer);
        let account = so_far.user.account_name();
        let enrolment =
            mfa::begin_totp(conn, &svc.secrets, &label, user_id, &account, now).map_err(task)?;
        Ask::Enrol(enrolment)
    } else {
        return Ok(None);
    };
    let begun = mfa::pending::begin(
        conn,
        &so_far.user.id,
        so_far.amr,
        so_far.persistent,
        so_far.session_id,
        now,
    )?;
    Ok(Some(Next::SecondStep {
        secret: begun.secret,
        ask,
    }))
}

/// What the person gave on the second-step page.
#[derive(Debug, Clone)]
pub enum SecondFactorAnswer {
    Totp(String),
    RecoveryCode(String),
    /// The first code of the authenticator app being set up (`Ask::Enrol`).
    EnrolTotp(String),
    /// A passkey's answer to the ceremony `ceremony` (`passkey_options`).
    Passkey {
        ceremony: String,
        credential: Box<PublicKeyCredential>,
    },
}

/// Why the second-step page is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The code was wrong or already used.
    WrongCode,
    /// The passkey's answer was not taken.
    Passkey(Refused),
}

/// How a second step went.
#[derive(Debug)]
pub enum SecondStepOutcome {
    /// Signed in: the session (new, or the browser's own renewed) and the next step.
    Completed(Box<Completed>),
    /// The page again, with what it asks and why.
    Refused { ask: Ask, why: Refusal },
    /// Too many wrong answers: wait this many seconds.
    Throttled(i64),
    /// No such pending step in this browser, used, or expired: start again.
    Gone,
}

/// What a right answer proved.
enum Proof {
    Method(AuthMethod),
    /// An authenticator app set up just now: its first set of recovery codes.
    Enrolled(Vec<String>),
}

/// The second step: the answer is checked (throttled per account and IP, audited, spent once
/// by `mfa`), and only then is the pending step taken, once, and the session made with both
/// factors in its `amr`, in one transaction.
pub async fn second_step(
    svc: &Services,
    request: &AuthorizationRequest,
    pending_secret: String,
    answer: SecondFactorAnswer,
    origin: Origin,
    cookie: Option<String>,
) -> Result<SecondStepOutcome, AuthorizeError> {
    let now = svc.clock.now();
    let (svc, request) = (svc.clone(), request.clone());
    let outcome = svc
        .db
        .clone()
        .run(move |conn| {
            let Some(pending) = mfa::pending::find(conn, &pending_secret, now)? else {
                return Ok(SecondStepOutcome::Gone);
            };
            let user_id = pending.user_id.to_string();
            let Some((check, why)) =
                check(conn, &svc, &request, &user_id, &origin, answer.clone(), now)?
            else {
                return Ok(SecondStepOutcome::Gone);
            };
            let proof = match check {
                CodeCheck::Accepted(proof) => proof,
                CodeCheck::Throttled(wait) => return Ok(SecondStepOutcome::Throttled(wait)),
                CodeCheck::Refused => {
                    return again(conn, &svc, &user_id, why);
                }
            };
            conn.transaction(|conn| {
                let Some(pending) = mfa::pending::take(conn, &pending_secret, now)? else {
                    return Ok(SecondStepOutcome::Gone);
                };
                let Some(user) =
                    crate::db::repo::users::find_by_id(conn, pending.user_id.as_str())?
                        .filter(|u| u.disabled_at.is_none())
                else {
                    return Ok(SecondStepOutcome::Gone);
                };
                let previous = match &cookie {
                    Some(secret) => sso::find(conn, secret, now)?.map(|(session, _)| session),
                    None => None,
                };
                // A step-up upgrades the session it was begun in, and only in that browser.
                if let Some(stepped) = &pending.session_id
                    && previous.as_ref().is_none_or(|p| &p.id != stepped)
                {
                    return Ok(SecondStepOutcome::Gone);
                }
                let method = match &proof {
                    Proof::Method(method) => *method,
                    Proof::Enrolled(_) => AuthMethod::OneTimePassword,
                };
                let started = sso::sign_in(
                    conn,
                    &svc.settings.sessions,
                    SignedIn {
                        user: &user,
                        amr: pending.amr.with(&[method]),
                        persistent: pending.persistent,
                        origin: origin.clone(),
                    },
                    previous.as_ref(),
                    now,
                )?;
                let next = match proof {
                    Proof::Enrolled(recovery_codes) => Next::Enrolled { recovery_codes },
                    Proof::Method(_) => {
                        after_sign_in(conn, &request, user, started.session.clone(), now)?
                    }
                };
                Ok::<_, DbError>(SecondStepOutcome::Completed(Box::new(Completed {
                    started: Some(started),
                    next,
                })))
            })
        })
        .await?;
    Ok(outcome)
}

/// A checked answer: what it proved, or why not.
type Checked = (CodeCheck<Proof>, Refusal);

/// Checks `answer` for the pending step of `user_id`. `None`: the answer does not fit the
/// person (an app they do not have, passkeys off here, an enrolment they are not asked for).
fn check(
    conn: &mut DbConnection,
    svc: &Services,
    request: &AuthorizationRequest,
    user_id: &str,
    origin: &Origin,
    answer: SecondFactorAnswer,
    now: i64,
) -> Result<Option<Checked>, DbError> {
    let attempt = CodeAttempt {
        user_id,
        ip: origin.ip.as_deref(),
        client_id: Some(request.client.id.as_str()),
        purpose: "sign_in",
    };
    let throttle = &svc.settings.throttle;
    let method = |check: CodeCheck<()>, method: AuthMethod| map(check, |()| Proof::Method(method));
    let checked = match answer {
        SecondFactorAnswer::Totp(code) => {
            match mfa::check_totp(conn, &svc.secrets, throttle, attempt, code.trim(), now) {
                Ok(check) => (
                    method(check, AuthMethod::OneTimePassword),
                    Refusal::WrongCode,
                ),
                Err(MfaError::NotEnrolled) => return Ok(None),
                Err(e) => return Err(task(e)),
            }
        }
        SecondFactorAnswer::RecoveryCode(code) => {
            let check = mfa::redeem_recovery_code(conn, throttle, attempt, code.trim(), now)
                .map_err(task)?;
            (
                map(check, |_| Proof::Method(AuthMethod::OneTimePassword)),
                Refusal::WrongCode,
            )
        }
        SecondFactorAnswer::EnrolTotp(code) => {
            // Only someone who must have a second factor and has none is asked to set one up
            // here: anyone else's unconfirmed app (begun on their account page) stays theirs.
            let factors = mfa::factors(conn, user_id).map_err(task)?;
            if !offered(&factors, svc.passkeys.is_some()).is_empty() || !mfa_required(svc, request)
            {
                return Ok(None);
            }
            let attempt = CodeAttempt {
                purpose: "enrolment",
                ..attempt
            };
            match mfa::confirm_totp(conn, &svc.secrets, throttle, attempt, code.trim(), now) {
                Ok(check) => (map(check, Proof::Enrolled), Refusal::WrongCode),
                Err(MfaError::NothingToConfirm) => return Ok(None),
                Err(e) => return Err(task(e)),
            }
        }
        SecondFactorAnswer::Passkey {
            ceremony,
            credential,
        } => {
            let Some(rp) = &svc.passkeys else {
                return Ok(None);
            };
            let (check, why) =
                passkey::check_passkey(conn, rp, throttle, attempt, &ceremony, &credential, now)
                    .map_err(task)?;
            (
                map(check, Proof::Method),
                Refusal::Passkey(why.unwrap_or(Refused::Invalid)),
            )
        }
    };
    Ok(Some(checked))
}

/// The page again after a refused answer: what it asks now.
fn again(
    conn: &mut DbConnection,
    svc: &Services,
    user_id: &str,
    why: Refusal,
) -> Result<SecondStepOutcome, DbError> {
    let factors = mfa::factors(conn, user_id).map_err(task)?;
    let offered = offered(&factors, svc.passkeys.is_some());
    if !offered.is_empty() {
        return Ok(SecondStepOutcome::Refused {
            ask: Ask::Factor(offered),
            why,
        });
    }
    let Some(user) = crate::db::repo::users::find_by_id(conn, user_id)? else {
        return Ok(SecondStepOutcome::Gone);
    };
    let label = mfa::issuer_label(&svc.issuer);
    let pending = mfa::pending_totp(conn, &svc.secrets, &label, user_id, &user.account_name())
        .map_err(task)?;
    Ok(match pending {
        Some(enrolment) => SecondStepOutcome::Refused {
            ask: Ask::Enrol(enrolment),
            why,
        },
        None => SecondStepOutcome::Gone,
    })
}

fn map<T, U>(check: CodeCheck<T>, f: impl FnOnce(T) -> U) -> CodeCheck<U> {
    match check {
        CodeCheck::Accepted(value) => CodeCheck::Accepted(f(value)),
        CodeCheck::Refused => CodeCheck::Refused,
        CodeCheck::Throttled(wait) => CodeCheck::Throttled(wait),
    }
}

/// Starts a passkey as second factor for the pending step the cookie `pending_secret` stands
/// for: the options for `navigator.credentials.get()`. `None` if there is no such step or
/// the person has no passkey (or passkeys are off here).
pub async fn passkey_options(
    svc: &Services,
    pending_secret: String,
) -> Result<Option<passkey::Started>, AuthorizeError> {
    let Some(rp) = svc.passkeys.clone() else {
        return Ok(None);
    };
    let now = svc.clock.now();
    let started = svc
        .db
        .run(move |conn| {
            let Some(pending) = mfa::pending::find(conn, &pending_secret, now)? else {
                return Ok(None);
            };
            passkey::start_second_factor(conn, &rp, pending.user_id.as_str(), now)
                .map_err(|e| DbError::Task(e.to_string()))
        })
        .await?;
    Ok(started)
}
