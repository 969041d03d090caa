//! Outgoing mail: the SMTP server's settings, the templates, and the outbox that sends from the
//! database in the background (so a crash or an SMTP outage loses nothing).

pub mod outbox;
pub mod templates;

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpSettings, SmtpTls};

/// Where mail goes, from `smtp.url` or the separate `smtp.*` keys, checked at start-up.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    pub timeout: Duration,
    /// Extra trusted root certificate (PEM), from `smtp.ca_file`.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Whether mail is on: an SMTP server is configured.
pub fn enabled(settings: &SmtpSettings) -> bool {
    SmtpTarget::from_settings(settings).is_ok_and(|t| t.is_some())
}

impl SmtpTarget {
    /// `Ok(None)` when mail is off (no url, no host). Errors name the setting.
    pub fn from_settings(settings: &SmtpSettings) -> Result<Option<SmtpTarget>, String> {
        let (host, port, tls, credentials) = if !settings.url.trim().is_empty() {
            parse_url(settings.url.trim())?
        } else if !settings.host.trim().is_empty() {
            let credentials = (!settings.username.is_empty())
                .then(|| (settings.username.clone(), settings.password.clone()));
            (
                settings.host.trim().to_string(),
                settings.port,
                settings.tls,
                credentials,
            )
        } else {
            return Ok(None);
        };
        let port = match (port, tls) {
            (0, SmtpTls::None) => 25,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (port, _) => port,
        };
        if settings.from.trim().is_empty() {
            return Err("smtp.from: a sender address is required when mail is on, \
                 e.g. \"Tessera <no-reply@id.example.com>\""
                .into());
        }
        let from =
            settings.from.trim().parse::<Mailbox>().map_err(|e| {
                format!("smtp.from: {:?} is not a mail address: {e}", settings.from)
            })?;
        if settings.timeout_secs == 0 {
            return Err("smtp.timeout_secs: must be at least 1".into());
        }
        let ca_pem = if settings.ca_file.trim().is_empty() {
            None
        } else {
            let pem = std::fs::read(settings.ca_file.trim())
                .map_err(|e| format!("smtp.ca_file: cannot read {:?}: {e}", settings.ca_file))?;
            lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "smtp.ca_file: {:?} is not a PEM certificate: {e}",
                    settings.ca_file
                )
            })?;
            Some(pem)
        };
        Ok(Some(SmtpTarget {
            host,
            port,
            tls,
            credentials,
            from,
            timeout: Duration::from_secs(settings.timeout_secs),
            ca_pem,
        }))
    }
}

type Parsed = (String, u16, SmtpTls, Option<(String, String)>);

/// smtp://[user:pass@]host[:port][?tls=none|starttls|tls], smtps://… (TLS from the start).
fn parse_url(raw: &str) -> Result<Parsed, String> {
    // The URL may hold a password: errors never repeat it.
    let url = url::Url::parse(raw).map_err(|e| format!("smtp.url: not a URL ({e})"))?;
    let mut tls = match url.scheme() {
        "smtp" => SmtpTls::None,
        "smtps" => SmtpTls::Tls,
        other => {
            return Err(format!(
                "smtp.url: scheme {other:?} is not smtp:// or smtps://"
            ));
        }
    };
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("tls", "none") => tls = SmtpTls::None,
            ("tls", "starttls" | "required") => tls = SmtpTls::Starttls,
            ("tls", "tls" | "wrapper") => tls = SmtpTls::Tls,
            (key, _) => {
                return Err(format!(
                    "smtp.url: unknown or invalid query parameter {key:?} \
                     (only tls=none|starttls|tls)"
                ));
            }
        }
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("smtp.url: has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "smtp.url: the user or password is not valid UTF-8".to_string())
    };
    let credentials = if url.username().is_empty() {
        None
    } else {
        Some((
            decode(url.username())?,
            decode(url.password().unwrap_or(""))?,
        ))
    };
    Ok((host, url.port().unwrap_or(0), tls, credentials))
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the recipient address cannot be used: {0}")]
    Recipient(String),
    #[error("the message cannot be built: {0}")]
    Build(String),
    #[error("the SMTP server's TLS settings are invalid: {0}")]
    Tls(String),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// One rendered mail.
#[derive(Debug)]
pub struct Mail {
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends mail through the configured SMTP server, one connection per mail (mail is rare here).
pub struct Mailer {
    target: SmtpTarget,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub fn new(target: SmtpTarget) -> Result<Mailer, MailError> {
        let parameters = || {
            let mut builder = TlsParameters::builder(target.host.clone());
            if let Some(pem) = &target.ca_pem {
                builder = builder.add_root_certificate(
                    Certificate::from_pem(pem).map_err(|e| MailError::Tls(e.to_string()))?,
                );
            }
            builder
                .build_rustls()
                .map_err(|e| MailError::Tls(e.to_string()))
        };
        let tls = match target.tls {
            SmtpTls::None => Tls::None,
            // Required, never opportunistic: a server that does not offer STARTTLS gets nothing.
            SmtpTls::Starttls => Tls::Required(parameters()?),
            SmtpTls::Tls => Tls::Wrapper(parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .tls(tls)
            .timeout(Some(target.timeout));
        if let Some((user, password)) = &target.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            target,
        })
    }

    pub fn target(&self) -> &SmtpTarget {
        &self.target
    }

    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let address = mail
            .to
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Recipient(e.to_string()))?;
        let to = Mailbox::new(mail.to_name, address);
        let message = Message::builder()
            .from(self.target.from.clone())
            .to(to)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.into(),
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: String::new(),
            from: "Tessera <no-reply@example.com>".into(),
            ca_file: String::new(),
            timeout_secs: 10,
        }
    }

    #[test]
    fn urls_give_host_port_tls_and_credentials() {
        let t = SmtpTarget::from_settings(&settings(
            "smtp://ann%40x:p%3Ass@mail.example.com?tls=starttls",
        ))
        .expect("valid")
        .expect("on");
        assert_eq!(t.host, "mail.example.com");
        assert_eq!(t.port, 587);
        assert_eq!(t.tls, SmtpTls::Starttls);
        assert_eq!(t.credentials, Some(("ann@x".into(), "p:ss".into())));
        let t = SmtpTarget::from_settings(&settings("smtps://mail.example.com"))
            .expect("valid")
            .expect("on");
        assert_eq!((t.port, t.tls), (465, SmtpTls::Tls));
        let t = SmtpTarget::from_settings(&settings("smtp://127.0.0.1:2525"))
            .expect("valid")
            .expect("on");
        assert_eq!((t.port, t.tls, t.credentials), (2525, SmtpTls::None, None));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "http://mail.example.com",
            "smtp://u:secret@mail.example.com?tls=maybe",
            "smtp://",
        ] {
            let err = SmtpTarget::from_settings(&settings(bad)).expect_err(bad);
            assert!(err.starts_with("smtp.url"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        let mut no_from = settings("smtp://mail.example.com");
        no_from.from = String::new();
        assert!(SmtpTarget::from_settings(&no_from).is_err());
        assert!(
            SmtpTarget::from_settings(&settings(""))
                .expect("valid")
                .is_none()
        );
    }
}
