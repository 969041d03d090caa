//! The mails' texts, kept in `templates/mail/` and compiled in: a plain-text and an HTML body
//! per kind, with `{{name}}`, `{{issuer}}`, `{{link}}` and `{{valid_for}}` filled in (escaped
//! for HTML in the HTML body).

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

    fn bodies(self) -> (&'static str, &'static str) {
        match self {
            MailKind::VerifyEmail => (
                include_str!("../../../../templates/mail/verify_email.txt"),
                include_str!("../../../../templates/mail/verify_email.html"),
            ),
            MailKind::ResetPassword => (
                include_str!("../../../../templates/mail/reset_password.txt"),
                include_str!("../../../../templates/mail/reset_password.html"),
            ),
            MailKind::RegistrationAttempt => (
                include_str!("../../../../templates/mail/registration_attempt.txt"),
                include_str!("../../../../templates/mail/registration_attempt.html"),
            ),
        }
    }
}

/// The mail of `kind` for one recipient, with the link carrying `token`.
pub fn render(
    kind: MailKind,
    issuer: &str,
    to: &str,
    name: Option<&str>,
    token: &str,
    valid_for_secs: i64,
) -> Mail {
    let link = format!("{issuer}{}?token={token}", kind.path());
    let greeting = name.filter(|n| !n.trim().is_empty()).unwrap_or(to);
    let valid_for = duration_words(valid_for_secs);
    let (text, html) = kind.bodies();
    let fill = |template: &str, escape: fn(&str) -> String| {
        template
            .replace("{{name}}", &escape(greeting))
            .replace("{{issuer}}", &escape(issuer))
            .replace("{{link}}", &escape(&link))
            .replace("{{valid_for}}", &escape(&valid_for))
    };
    Mail {
        to: to.to_string(),
        to_name: name.map(String::from),
        subject: format!("{} — {issuer}", kind.subject()),
        text: fill(text, str::to_string),
        html: fill(html, escape_html),
    }
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

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
        );
        let link = "https://id.example.com/account/password-reset?token=tok";
        assert!(mail.text.contains(link) && mail.html.contains(link));
        assert!(mail.text.contains("30 minutes"));
        assert!(mail.html.contains("&lt;Ann&gt;") && !mail.html.contains("<Ann>"));
        assert!(mail.text.contains("Hello <Ann>"));
        assert!(!mail.text.contains("{{") && !mail.html.contains("{{"));
        assert_eq!(duration_words(86400), "24 hours");
    }
}
