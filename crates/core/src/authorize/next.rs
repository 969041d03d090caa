//! What the browser is shown or sent next at `/authorize`, and the step every sign-in ends
//! in: consent where the app needs it, else the code. Shared by `interaction` (the session,
//! the first factor, consent) and `second_step`.

use super::request::{AuthorizationRequest, issue_code_with};
use crate::db::{DbConnection, DbError};
use crate::domain::{Authentication, ScopeSet, User};
use crate::mfa::TotpEnrolment;
use crate::sso::{self, BrowserSession, Started};

/// What the browser is shown or sent next.
#[derive(Debug)]
pub enum Next {
    /// The login page (pre-filled with `login_hint`).
    SignIn,
    /// The consent page, for the scopes the person has not allowed this app yet.
    Consent {
        user: Box<User>,
        session: Box<BrowserSession>,
        scopes: ScopeSet,
    },
    /// Back to the app with a code: the URL.
    Code { location: String },
    /// More than the first factor is needed before the session is made or upgraded
    /// (`second_step`): the pending step's cookie secret (`mfa::pending`) and what the page
    /// asks.
    SecondStep { secret: String, ask: Ask },
    /// `prompt=none`, and the session does not meet the multi-factor sign-in the request
    /// asked for (`acr_values`, a policy): never shown, `next` answers `interaction_required`.
    SecondStepUnshown,
    /// An authenticator app was set up during sign-in: its recovery codes, shown once. The
    /// session now stands for both factors; the person goes on at `/authorize`.
    Enrolled { recovery_codes: Vec<String> },
}

/// A second factor the second-step page offers. One entry per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A code from an authenticator app.
    Totp,
    /// One of the person's passkeys.
    Passkey,
    /// One of the person's recovery codes, in place of the app or the passkey.
    RecoveryCode,
}

/// What the second-step page asks for.
#[derive(Debug)]
pub enum Ask {
    /// One of these second factors.
    Factor(Vec<SecondFactor>),
    /// The person must use a second factor and has none: set up this authenticator app (not
    /// yet confirmed) and give its first code.
    Enrol(TotpEnrolment),
}

/// What a fresh sign-in leads to: the session (whose secret goes into the cookie) and the
/// next step, which is never the login page again (`prompt=login` and `max_age` are met).
#[derive(Debug)]
pub struct Completed {
    /// `None` while a second factor is still to come (`Next::SecondStep`).
    pub started: Option<Started>,
    pub next: Next,
}

/// After a sign-in (fresh or the session's): the consent page if the app needs one, else the
/// code.
pub(super) fn after_sign_in(
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    user: User,
    session: BrowserSession,
    now: i64,
) -> Result<Next, DbError> {
    let scope = crate::grants::scope_for_user(&user, &request.scope);
    let asked = sso::consent::missing(
        conn,
        &user.id,
        &request.client,
        &scope,
        request.prompt.consent,
    )?;
    if let Some(scopes) = asked {
        return Ok(Next::Consent {
            user: Box::new(user),
            session: Box::new(session),
            scopes,
        });
    }
    let location = issue_code_with(conn, request, &user, &authentication(&session), now)?;
    Ok(Next::Code { location })
}

pub(super) fn authentication(session: &BrowserSession) -> Authentication {
    Authentication {
        time: session.auth_time,
        amr: session.amr.clone(),
        session_id: Some(session.id.clone()),
    }
}
