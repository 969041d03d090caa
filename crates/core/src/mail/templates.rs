//! The mails' texts, askama templates in `templates/mail/` checked and compiled in: a
//! plain-text and an HTML body per kind, with `{{name}}`, `{{issuer}}`, `{{link}}` and
//! `{{valid_for}}` filled in (escaped for HTML in the HTML body, as askama does for `.html`).

use askama::Template;

use super::Mail;

/// What a mail is for; also the outbox row's `kind` and the token's `purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    VerifyEmail,
    ResetPassword,
    /// To an address's owner: someone tried to register it; with a password reset link.
    RegistrationAttempt,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ResetPassword => "reset_password",
            MailKind::RegistrationAttempt => "registration_attempt",
        }
    }

    /// The purpose of the single-use token in the mail's link.
    pub fn token_purpose(self) -> MailKind {
        match self {
            MailKind::RegistrationAttempt => MailKind::ResetPassword,
            other => other,
        }
    }

    pub fn parse(kind: &str) -> Option<MailKind> {
        match kind {
            "verify_email" => Some(MailKind::VerifyEmail),
            "reset_password" => Some(MailKind::ResetPassword),
            "registration_attempt" => Some(MailKind::RegistrationAttempt),
            _ => None,
        }
    }

    /// The page the mail's link opens, below the issuer.
    pub fn path(self) -> &'static str {
        match self.token_purpose() {
            MailKind::VerifyEmail => "/account/verify-email",
            _ => "/account/password-reset",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "Confirm your email address",
            MailKind::ResetPassword => "Reset your password",
            MailKind::RegistrationAttempt => "Someone tried to create an account with your address",
        }
    }
}

/// The plain-text body of a mail: askama leaves `.txt` unescaped.
#[derive(Template)]
#[template(
    ext = "txt",
    source = r#"{% match kind -%}
{% when MailKind::VerifyEmail %}{% include "mail/verify_email.txt" %}
{%- when MailKind::ResetPassword %}{% include "mail/reset_password.txt" %}
{%- when MailKind::RegistrationAttempt %}{% include "mail/registration_attempt.txt" %}
{%- endmatch %}"#
)]
struct TextBody<'a> {
    kind: MailKind,
    name: &'a str,
    issuer: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

/// The HTML body of a mail, every value escaped for HTML.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% match kind -%}
{% when MailKind::VerifyEmail %}{% include "mail/verify_email.html" %}
{%- when MailKind::ResetPassword %}{% include "mail/reset_password.html" %}
{%- when MailKind::RegistrationAttempt %}{% include "mail/registration_attempt.html" %}
{%- endmatch %}"#
)]
struct HtmlBody<'a> {
    kind: MailKind,
    name: &'a str,
    issuer: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

/// The mail of `kind` for one recipient, with the link carrying `token`.
pub fn render(
    kind: MailKind,
    issuer: &str,
    to: &str,
    name: Option<&str>,
    token: &str,
    valid_for_secs: i64,
) -> Result<Mail, askama::Error> {
    let link = format!("{issuer}{}?token={token}", kind.path());
    let greeting = name.filter(|n| !n.trim().is_empty()).unwrap_or(to);
    let valid_for = duration_words(valid_for_secs);
    let text = TextBody {
        kind,
        name: greeting,
        issuer,
        link: &link,
        valid_for: &valid_for,
    }
    .render()?;
    let html = HtmlBody {
        kind,
        name: greeting,
        issuer,
        link: &link,
        valid_for: &valid_for,
    }
    .render()?;
    Ok(Mail {
        to: to.to_string(),
        to_name: name.map(String::from),
        subject: format!("{} — {issuer}", kind.subject()),
        text,
        html,
    })
}

fn duration_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs % 3600 == 0 {
        plural(secs / 3600, "hour")
    } else if secs % 60 == 0 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_carry_the_issuer_and_the_link_and_escape_names() {
        let mail = render(
            MailKind::ResetPassword,
            "https://id.example.com",
            "ann@example.com",
            Some("<Ann>"),
            "tok",
            1800,
        )
        .expect("renders");
        let link = "https://id.example.com/account/password-reset?token=tok";
        assert!(mail.text.contains(link) && mail.html.contains(link));
        assert!(mail.text.contains("30 minutes"));
        assert!(mail.html.contains("&#60;Ann&#62;") && !mail.html.contains("<Ann>"));
        assert!(mail.text.contains("Hello <Ann>"));
        assert!(!mail.text.contains("{{") && !mail.html.contains("{{"));
        assert_eq!(duration_words(86400), "24 hours");
    }
}
