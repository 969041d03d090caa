//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends, every app that received
//! tokens in it and registered a `backchannel_logout_uri` is sent a logout token. The message is
//! a row of the outbox, written in the transaction that ended the session; the token itself is
//! signed only when it is sent, so the database never holds one.
//!
//! The sender (`spawn_sender`) works like the mail outbox's: a row is claimed with one
//! conditional UPDATE before its delivery starts, so two replicas never deliver it at once;
//! a failed delivery (no connection, a timeout, an answer other than 2xx) is retried with a
//! doubling back-off and given up after `backchannel.max_attempts`. A sender that dies
//! mid-delivery leaves its claim to lapse, and the message goes again after
//! `backchannel.claim_secs`, with the same `jti`. The person whose session ended never waits
//! for any of it.

use std::time::Duration;

use tessera_proto::{Audience, LOGOUT_TOKEN_TYPE, LogoutClaims, LogoutEvents};

use crate::db::repo::{self, outbox::OutboxRow};
use crate::db::{DbConnection, DbError};
use crate::mail::outbox::finish;
use crate::services::Services;

/// The outbox kind of a back-channel logout: its recipient is the client id, its detail a
/// `Detail`. The row names no user (`user_id` stays empty), so deleting the account, which
/// deletes that account's mail, does not take the message with it.
pub const KIND: &str = repo::outbox::BACKCHANNEL_LOGOUT;

/// What a logout token will say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    pub sub: String,
    pub sid: String,
}

/// Queues a logout token for `client_id` if it listens for one.
pub fn enqueue(
    conn: &mut DbConnection,
    client_id: &str,
    user_id: &str,
    session_id: &str,
    now: i64,
) -> Result<(), DbError> {
    let Some(client) = repo::clients::find(conn, client_id)? else {
        return Ok(());
    };
    if client.backchannel_logout.is_none() {
        return Ok(());
    }
    let mut row = OutboxRow::new(KIND, client_id, None, now);
    let detail = Detail {
        sub: user_id.to_string(),
        sid: session_id.to_string(),
    };
    row.detail = Some(serde_json::to_string(&detail).map_err(|e| DbError::Task(e.to_string()))?);
    repo::outbox::insert(conn, &row)?;
    Ok(())
}

/// How long a logout token is valid after it is signed: long enough for the app to read it,
/// short enough that one caught in a log is worth nothing soon.
pub const TOKEN_TTL_SECS: i64 = 120;

/// The deliveries' HTTP client, built for the first delivery rather than at start-up: most
/// deployments have no app listening, and building it (rustls, the web PKI roots, hyper) put
/// code into the idle server's resident memory for nothing (issue 18). One sender task owns it.
pub struct Http {
    timeout: Duration,
    client: Option<reqwest::Client>,
    /// The client could not be built: nothing will be sent.
    broken: bool,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http {
            timeout,
            client: None,
            broken: false,
        }
    }

    /// The client, built on first use; `None` (logged once) if it cannot be built.
    fn client(&mut self) -> Option<reqwest::Client> {
        if self.client.is_none() && !self.broken {
            match reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(client) => self.client = Some(client),
                Err(error) => {
                    tracing::error!(%error, "back-channel logout: no HTTP client, nothing will be sent");
                    self.broken = true;
                }
            }
        }
        self.client.clone()
    }
}

/// Runs the sender until the process ends. Always started, mail or not: sessions end either
/// way. Every delivery is a POST to an app, at most `backchannel.timeout_secs` long and never
/// following a redirect.
pub fn spawn_sender(svc: Services) {
    let settings = svc.settings.backchannel.clone();
    let mut http = Http::new(Duration::from_secs(settings.timeout_secs));
    let poll = Duration::from_millis(settings.poll_interval_ms);
    tokio::spawn(async move {
        loop {
            match send_due(&svc, &mut http).await {
                // Without a client the sender stops; a claim it took lapses, as a dead
                // sender's does, for another replica to deliver.
                _ if http.broken => return,
                // A full batch: more may be waiting.
                Ok(claimed) if claimed >= settings.batch_size as usize => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "back-channel logout: cannot read the queue"),
            }
            tokio::select! {
                () = svc.backchannel_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
}

/// Starts up to `backchannel.batch_size` due deliveries side by side (one slow app does not
/// hold up the others), each claimed with one conditional UPDATE just before it starts, and
/// waits for them; returns how many it claimed. A claim outlives the delivery's timeout, so
/// no two deliveries of one message are ever in flight at once.
pub async fn send_due(svc: &Services, http: &mut Http) -> Result<usize, DbError> {
    let claim_id = crate::db::new_id();
    let settings = svc.settings.backchannel.clone();
    let mut deliveries = tokio::task::JoinSet::new();
    let mut count = 0;
    while count < settings.batch_size as usize {
        let now = svc.clock.now();
        let claimed = {
            let claim_id = claim_id.clone();
            svc.db
                .run(move |conn| {
                    // Another replica may take a candidate first: then try the next.
                    let kinds = repo::outbox::Kinds::Only(KIND);
                    for id in repo::outbox::due(conn, now, settings.batch_size, kinds)? {
                        let until = now + settings.claim_secs;
                        if repo::outbox::claim(conn, &id, &claim_id, now, until)? == 1 {
                            return Ok::<_, DbError>(repo::outbox::find(conn, &id)?);
                        }
                    }
                    Ok(None)
                })
                .await?
        };
        let Some(row) = claimed else { break };
        count += 1;
        let Some(http) = http.client() else { break };
        let (svc, claim_id) = (svc.clone(), claim_id.clone());
        deliveries.spawn(async move {
            let id = row.id.clone();
            if let Err(error) = deliver(&svc, &http, row, &claim_id).await {
                tracing::warn!(message = %id, %error, "back-channel logout: a delivery could not be processed");
            }
        });
    }
    while deliveries.join_next().await.is_some() {}
    Ok(count)
}

/// What one claimed row turns into.
enum Prepared {
    /// Nobody to tell any more.
    Skip(&'static str),
    /// A row no attempt can send.
    Broken(&'static str),
    Send {
        uri: String,
        token: String,
    },
}

async fn deliver(
    svc: &Services,
    http: &reqwest::Client,
    row: OutboxRow,
    claim_id: &str,
) -> Result<(), DbError> {
    let client_id = row.recipient_lower.clone();
    let prepared = {
        let client_id = client_id.clone();
        svc.db
            .run(move |conn| repo::clients::find(conn, &client_id).map_err(DbError::from))
            .await?
            .and_then(|client| client.backchannel_logout)
            .map_or(
                Ok(Prepared::Skip("the client is gone or no longer listens")),
                |listener| prepare(svc, &row, &listener.uri),
            )
    };
    let (uri, token) = match prepared {
        Ok(Prepared::Send { uri, token }) => (uri, token),
        Ok(Prepared::Skip(why)) => {
            tracing::info!(message = %row.id, client = %client_id, why, "back-channel logout: nothing to send");
            return finish(svc, &row.id, claim_id, "skipped", Some(why)).await;
        }
        Ok(Prepared::Broken(why)) => {
            tracing::error!(message = %row.id, client = %client_id, why, "back-channel logout: cannot be sent");
            return finish(svc, &row.id, claim_id, "failed", Some(why)).await;
        }
        Err(why) => {
            tracing::error!(message = %row.id, client = %client_id, why, "back-channel logout: no token");
            return failed(svc, &row, claim_id, why.to_string()).await;
        }
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let sent = http
        .post(&uri)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            tracing::info!(message = %row.id, client = %client_id, "back-channel logout: delivered");
            finish(svc, &row.id, claim_id, "sent", None).await
        }
        Ok(response) => {
            let why = format!("the app answered {}", response.status());
            failed(svc, &row, claim_id, why).await
        }
        // Without the URL: what failed is said, where is the client's own registration.
        Err(error) => failed(svc, &row, claim_id, error.without_url().to_string()).await,
    }
}

/// Signs the row's logout token (Back-Channel Logout 1.0 §2.4) with the active key: `jti` is
/// the row's id, so every attempt at one message carries the same one and the app can tell a
/// retry from a new logout.
fn prepare(svc: &Services, row: &OutboxRow, uri: &str) -> Result<Prepared, &'static str> {
    let Some(detail) = row
        .detail
        .as_deref()
        .and_then(|text| serde_json::from_str::<Detail>(text).ok())
    else {
        return Ok(Prepared::Broken("the message names no session"));
    };
    let iat = svc.clock.now();
    let claims = LogoutClaims {
        iss: svc.issuer.clone(),
        aud: Audience::One(row.recipient_lower.clone()),
        iat,
        exp: iat + TOKEN_TTL_SECS,
        jti: row.id.clone(),
        events: LogoutEvents::default(),
        sub: Some(detail.sub),
        sid: Some(detail.sid),
        nonce: None,
    };
    let ring = svc.keys.current();
    let token = crate::tokens::sign(ring.active(), LOGOUT_TOKEN_TYPE, &claims)
        .map_err(|_| "the logout token could not be signed")?;
    Ok(Prepared::Send {
        uri: uri.to_string(),
        token,
    })
}

/// A failed attempt: retried after the back-off, or given up after `max_attempts`.
async fn failed(
    svc: &Services,
    row: &OutboxRow,
    claim_id: &str,
    why: String,
) -> Result<(), DbError> {
    let message: String = why.chars().take(500).collect();
    let settings = svc.settings.backchannel.clone();
    let attempts = row.attempts;
    let gave_up = attempts >= settings.max_attempts;
    tracing::warn!(message = %row.id, client = %row.recipient_lower, attempts, gave_up, error = %message, "back-channel logout: delivery failed");
    let (id, claim, now) = (row.id.clone(), claim_id.to_string(), svc.clock.now());
    svc.db
        .run(move |conn| {
            if gave_up {
                repo::outbox::finish(conn, &id, &claim, "failed", Some(&message), now)?;
            } else {
                let wait = repo::outbox::retry_delay(
                    settings.retry_base_secs,
                    settings.retry_max_secs,
                    attempts,
                );
                repo::outbox::retry_later(conn, &id, &claim, &message, now + wait)?;
            }
            Ok(())
        })
        .await
}
