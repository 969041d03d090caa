//! Every route's path, in one place: handlers, the route table, discovery and the page
//! templates all name them from here.

pub const VERIFY_EMAIL: &str = "/account/verify-email";
pub const VERIFY_EMAIL_RESEND: &str = "/account/verify-email/resend";
pub const PASSWORD_RESET: &str = "/account/password-reset";
pub const PASSWORD_RESET_CONFIRM: &str = "/account/password-reset/confirm";
pub const PASSWORD: &str = "/account/password";
pub const ACCOUNT: &str = "/account";
/// The person's browser sessions and refresh token families.
pub const ACCOUNT_SESSIONS: &str = "/account/sessions";
/// One of them, to end.
pub const ACCOUNT_SESSION: &str = "/account/sessions/{id}";
/// A user's sessions, for an administrator.
pub const ADMIN_USER_SESSIONS: &str = "/admin/users/{id}/sessions";
/// Any user's session, to end.
pub const ADMIN_SESSION: &str = "/admin/sessions/{id}";
pub const AUTHORIZE: &str = "/authorize";
/// The consent page's form (under `/authorize`, so the login form's CSRF cookie reaches it).
pub const CONSENT: &str = "/authorize/consent";
/// The second step of a sign-in (a code after the password).
pub const SECOND_FACTOR: &str = "/authorize/second-factor";
/// A passkey as second factor: the options (JSON) for the pending step's person.
pub const SECOND_FACTOR_PASSKEY_OPTIONS: &str = "/authorize/second-factor/passkey/options";
/// The page that asks for the existing account's password before a link.
pub const LINK: &str = "/auth/link";
pub const FORGOT_PASSWORD: &str = "/account/forgot-password";
pub const METRICS: &str = "/metrics";
pub const TOKEN: &str = "/token";
pub const REVOKE: &str = "/revoke";
pub const INTROSPECT: &str = "/introspect";
pub const USERINFO: &str = "/userinfo";
/// RP-Initiated Logout's `end_session_endpoint`: ends this browser's session at Tessera.
pub const LOGOUT: &str = "/logout";
/// The "Sign out?" page's form.
pub const LOGOUT_CONFIRM: &str = "/logout/confirm";
/// Ends every session of a token's user (an API call, not a page).
pub const LOGOUT_EVERYWHERE: &str = "/logout-everywhere";
pub const REGISTER_PAGE: &str = "/account/register";
/// The apps the person has allowed (third-party consents), as JSON.
pub const ACCOUNT_CONSENTS: &str = "/account/consents";
/// One of them, by client id: `DELETE` withdraws it.
pub const ACCOUNT_CONSENT: &str = "/account/consents/{client_id}";
/// The person's second factors (authenticator app, recovery codes): an HTML page that the
/// browser session's cookie signs in to.
pub const ACCOUNT_SECURITY: &str = "/account/security";
/// Its forms: start setting up an authenticator app, confirm it with a code, remove it, and
/// make a new set of recovery codes.
pub const ACCOUNT_SECURITY_TOTP: &str = "/account/security/totp";
pub const ACCOUNT_SECURITY_TOTP_CONFIRM: &str = "/account/security/totp/confirm";
pub const ACCOUNT_SECURITY_TOTP_REMOVE: &str = "/account/security/totp/remove";
pub const ACCOUNT_SECURITY_RECOVERY_CODES: &str = "/account/security/recovery-codes";
/// The person's passkeys (another page; linked from the security page).
pub const ACCOUNT_PASSKEYS: &str = "/account/passkeys";
/// The one script of the pages: passkey ceremonies (`navigator.credentials`).
pub const PASSKEY_SCRIPT: &str = "/assets/passkey.js";
/// The person's passkeys' forms and the registration's options (JSON).
pub const ACCOUNT_PASSKEYS_OPTIONS: &str = "/account/passkeys/options";
pub const ACCOUNT_PASSKEYS_ADD: &str = "/account/passkeys/add";
pub const ACCOUNT_PASSKEYS_RENAME: &str = "/account/passkeys/rename";
pub const ACCOUNT_PASSKEYS_REMOVE: &str = "/account/passkeys/remove";
/// "Sign in with a passkey" on the login page: the options (JSON), then the answer (a form).
/// Under `/authorize`, so the login form's CSRF cookie reaches them.
pub const AUTHORIZE_PASSKEY_OPTIONS: &str = "/authorize/passkey/options";
pub const AUTHORIZE_PASSKEY: &str = "/authorize/passkey";
