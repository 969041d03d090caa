//! The authorization code flow (RFC 6749 §4.1, PKCE per RFC 7636), one home for both ends:
//! - `request`: checking an authorization request and issuing a code once the person signed in;
//! - `interaction`: what comes before the code (the browser session, sign-in, consent);
//! - `next`: what the browser is shown or sent next, and consent-or-code after any sign-in;
//! - `second_step`: a second factor, or setting one up, after the first;
//! - `code`: redeeming the code at the token endpoint, once;
//! - `store`: the code rows.
//!
//! The login page itself is `http::authorize`.

pub mod code;
pub mod interaction;
pub mod next;
pub mod request;
pub mod second_step;
pub mod store;

pub use interaction::FreshSignIn;
pub use next::{Ask, Completed, Next, SecondFactor};
pub use request::{
    AuthorizationRequest, AuthorizeError, CODE_TTL_SECS, Prompt, issue_code_with, pkce_matches,
    validate, with_query,
};
pub use second_step::{Refusal, SecondFactorAnswer, SecondStepOutcome, mfa_required};
