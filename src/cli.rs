//! The command line: `serve` (the default), `migrate`, `keys`, `user`, `client`.
//!
//! Commands print JSON when stdout is not a terminal (or with `--json`), a short human summary
//! otherwise. Logs go to stderr.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::accounts::{self, NewAccount, UserView, password};
use crate::clients::{ClientPatch, ClientSpec, ClientView};
use crate::config::{Settings, Sources};
use crate::db::{Database, PooledConnection};
use crate::domain::{Client, SigningAlg, User};
use crate::startup::Application;
use crate::usecases::{self, Actor};

/// Whoever runs the command line has the database: the operator.
const OPERATOR: Actor = Actor::Operator;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "An OAuth2 / OpenID Connect identity provider"
)]
pub struct Cli {
    /// Config file (TOML) overriding the built-in defaults.
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<String>,
    /// sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Public base URL, used as `iss`.
    #[arg(long, global = true, value_name = "URL")]
    pub issuer: Option<String>,
    /// Directory of the private signing keys.
    #[arg(long, global = true, value_name = "DIR")]
    pub keys_dir: Option<String>,
    /// Log format: auto, pretty or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Print command results as JSON even on a terminal.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the identity provider (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Delete expired and revoked tokens, codes and counters past their retention, now.
    Purge,
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every key with its state.
    List,
    /// Advance the lifecycle: a waiting `next` key becomes active, a new `next` is created.
    /// Refused while the waiting key has been published for less than jwks_max_age_secs +
    /// reload_interval_secs, unless --force.
    /// Every algorithm (RS256, EdDSA, ES256) takes the step, unless --alg names one.
    Rotate {
        /// Promote the next key even if resource servers may not have fetched it yet.
        #[arg(long)]
        force: bool,
        /// Rotate only this algorithm's keys: RS256, EdDSA or ES256.
        #[arg(long, value_name = "ALG", value_parser = parse_signing_alg)]
        alg: Option<SigningAlg>,
    },
    /// Copy the private keys of the keys directory (keys.dir) into the database, sealed under
    /// the key-encryption key, for keys.store = "database". Run it again after any files-store
    /// replica rotated; it imports only what is missing. The files are left: delete them (and
    /// their backups) once every replica runs with keys.store = "database".
    ImportFiles,
    /// Reseal every key in the database under the current key-encryption key, in one
    /// transaction; the previous key-encryption key is no longer needed afterwards.
    Rewrap,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of stdin.
    Add(UserAdd),
    /// List users (never their password hashes).
    List,
    /// Disable an account: it can no longer sign in, and its sessions end.
    Disable(UserRef),
    /// Enable a disabled account.
    Enable(UserRef),
    /// Replace a user's roles.
    Roles(UserRoles),
    /// End every session of a user (revoke all refresh token families).
    Logout(UserRef),
    /// List a user's browser sessions and refresh token families.
    Sessions(UserRef),
    /// End one browser session (its apps are told) or refresh token family, by the id
    /// `user sessions` shows.
    EndSession(SessionRef),
    /// Mark a user's email address verified (as the emailed link would).
    VerifyEmail(UserRef),
    /// Delete a user with its sessions, codes, federated identities and unsent mail.
    Delete(UserRef),
    /// Second factors.
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// For a person who lost every second factor (check who asks first): remove their
    /// authenticator app, recovery codes and passkeys, and end their sessions. They sign in
    /// with their password alone next, and set up their factors again.
    Reset(UserRef),
}

#[derive(Debug, Args)]
pub struct UserRef {
    #[arg(long)]
    pub email: String,
}

#[derive(Debug, Args)]
pub struct SessionRef {
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct UserRoles {
    #[arg(long)]
    pub email: String,
    /// A role; repeat for more, or give none to remove every role.
    #[arg(long = "role")]
    pub roles: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UserAdd {
    #[arg(long)]
    pub email: String,
    /// Read the password from stdin (so it stays out of shell history and `ps`).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// A role, e.g. admin; repeat for more.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Mark the email address as verified.
    #[arg(long)]
    pub email_verified: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Add(ClientAdd),
    /// List clients (never their secrets).
    List,
    /// Change a client's registration in place.
    Update(ClientUpdate),
    /// Delete a client; its refresh tokens and codes go with it.
    Delete {
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientAdd {
    #[arg(long)]
    pub name: String,
    /// A public client (no secret: SPAs, native apps).
    #[arg(long)]
    pub public: bool,
    /// Comma-separated: authorization_code, refresh_token, password, client_credentials.
    #[arg(long, value_delimiter = ',', required = true)]
    pub grant_types: Vec<String>,
    /// An allowed redirect URI; repeat for more.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes the client may request.
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// An audience for its access tokens; repeat for more.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// `required` for a third-party app, whose users are asked to allow each scope;
    /// `first_party` (the default) skips the consent page.
    #[arg(long)]
    pub consent: Option<String>,
    /// Where RP-initiated logout may send the browser afterwards (exact match); repeat for more.
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where Tessera POSTs a logout token when a session this client had tokens in ends.
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in its logout tokens.
    #[arg(long)]
    pub backchannel_logout_session_required: bool,
    /// Its users sign in with a second factor (or set one up first) before it gets a code.
    #[arg(long)]
    pub require_mfa: bool,
    /// What signs its access and ID tokens: RS256 (the default), EdDSA or ES256.
    #[arg(long, value_name = "ALG", value_parser = parse_signing_alg)]
    pub signing_alg: Option<SigningAlg>,
}

/// `--signing-alg` and `--alg`, held to the same rule as the admin API.
fn parse_signing_alg(value: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(value).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ClientUpdate {
    #[arg(long)]
    pub client_id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// Whether its users must sign in with a second factor: true or false.
    #[arg(long, value_name = "BOOL")]
    pub require_mfa: Option<bool>,
    /// What signs its new tokens: RS256, EdDSA or ES256 (tokens already issued still verify).
    #[arg(long, value_name = "ALG", value_parser = parse_signing_alg)]
    pub signing_alg: Option<SigningAlg>,
}

impl Cli {
    /// Settings from every layer, the flags of this command line last.
    pub fn settings(&self) -> Result<Settings, crate::config::ConfigError> {
        let flags = [
            ("server.bind", &self.bind),
            ("database.url", &self.database_url),
            ("server.issuer", &self.issuer),
            ("keys.dir", &self.keys_dir),
            ("log.format", &self.log_format),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
        .collect();
        let settings = Settings::load(Sources {
            file: self.config.clone(),
            env: std::env::vars().collect(),
            flags,
        })?;
        crate::preflight::check(&settings)?;
        Ok(settings)
    }
}

pub fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let out = Output {
        json: cli.json || !std::io::stdout().is_terminal(),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => {
            let db = Database::connect(&settings.database)?;
            out.print(
                json!({ "status": "migrated", "database": db.backend_name() }),
                || format!("database ({}) is up to date", db.backend_name()),
            );
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            let mut conn = connect(&settings)?;
            let rows = usecases::keys::list(&mut conn)?;
            let list: Vec<Value> = rows
                .iter()
                .map(|k| {
                    json!({ "kid": k.kid, "state": k.state, "algorithm": k.algorithm,
                        "created_at": k.created_at, "activated_at": k.activated_at,
                        "retiring_at": k.retiring_at, "retired_at": k.retired_at })
                })
                .collect();
            out.print(Value::Array(list), || {
                rows.iter()
                    .map(|k| format!("{:<44} {:<9} {}", k.kid, k.state, k.algorithm))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { force, alg }) => {
            let mut conn = connect(&settings)?;
            let rotations =
                usecases::keys::rotate(&mut conn, &settings.keys, alg, crate::db::now(), force)?;
            out.print(serde_json::to_value(&rotations)?, || {
                rotations
                    .iter()
                    .map(|rotation| match &rotation.activated {
                        Some(kid) => format!(
                            "{}: {kid} is now active; {} waits as next",
                            rotation.alg, rotation.next
                        ),
                        None => format!(
                            "{}: {} is published as next; rotate again to make it sign",
                            rotation.alg, rotation.next
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Keys(KeysCommand::ImportFiles) => {
            let mut conn = connect(&settings)?;
            let done = usecases::keys::import_files(&mut conn, &settings.keys, crate::db::now())?;
            out.print(serde_json::to_value(&done)?, || {
                format!(
                    "{} key(s) imported, {} already in the database; the files in {} are no \
                     longer read with keys.store = \"database\": delete them once every \
                     replica runs with it",
                    done.imported.len(),
                    done.already_stored.len(),
                    done.dir.display()
                )
            });
            Ok(())
        }
        Command::Keys(KeysCommand::Rewrap) => {
            let mut conn = connect(&settings)?;
            let done = usecases::keys::rewrap(&mut conn, &settings.keys)?;
            out.print(serde_json::to_value(&done)?, || {
                format!(
                    "{} key(s) resealed, {} already under key-encryption key {}; the previous \
                     key-encryption key may go",
                    done.rewrapped.len(),
                    done.unchanged.len(),
                    done.kek_id
                )
            });
            Ok(())
        }
        Command::User(UserCommand::Add(add)) => {
            let account = NewAccount::validate(
                &add.email,
                add.name.as_deref(),
                &add.roles,
                add.email_verified,
            )?;
            let secret = read_password_line()?;
            password::check_policy(
                &secret,
                account.email.display(),
                settings.passwords.min_length,
            )
            .map_err(|e| anyhow::anyhow!("password: {e}"))?;
            let hash = password::Hasher::new(&settings.passwords)?.hash(&secret)?;
            let mut conn = connect(&settings)?;
            let user = usecases::users::add(
                &mut conn,
                &OPERATOR,
                &account,
                Some(&hash),
                crate::db::now(),
            )?;
            out.print(user_json(&user), || {
                format!("created user {} ({})", user.id, user.email)
            });
            Ok(())
        }
        Command::User(UserCommand::List) => {
            let mut conn = connect(&settings)?;
            let mut users = Vec::new();
            let mut after = None;
            loop {
                let page = usecases::users::list(&mut conn, after.as_ref(), 500)?;
                users.extend(page.users);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            out.print(Value::Array(users.iter().map(user_json).collect()), || {
                users
                    .iter()
                    .map(|u| format!("{}  {:<32} {}", u.id, u.email, u.roles))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::User(UserCommand::Disable(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let user = usecases::users::disable(&mut conn, &OPERATOR, &user.id, crate::db::now())?;
            out.print(user_json(&user), || format!("disabled {}", user.email));
            Ok(())
        }
        Command::User(UserCommand::Enable(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let user = usecases::users::enable(&mut conn, &OPERATOR, &user.id, crate::db::now())?;
            out.print(user_json(&user), || format!("enabled {}", user.email));
            Ok(())
        }
        Command::User(UserCommand::Roles(change)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &change.email)?;
            let user = usecases::users::set_roles(
                &mut conn,
                &OPERATOR,
                &user.id,
                &change.roles,
                crate::db::now(),
            )?;
            out.print(user_json(&user), || {
                format!("{}: roles {:?}", user.email, user.roles.to_string())
            });
            Ok(())
        }
        Command::Purge => {
            let mut conn = connect(&settings)?;
            let purged = crate::purge::purge(
                &mut conn,
                &settings,
                crate::mail::enabled(&settings.smtp),
                crate::db::now(),
            )?;
            out.print(serde_json::to_value(&purged)?, || format!("{purged:?}"));
            Ok(())
        }
        Command::User(UserCommand::Logout(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let revoked = usecases::sessions::logout_everywhere(
                &mut conn,
                &OPERATOR,
                &user.id,
                None,
                crate::db::now(),
            )?;
            out.print(
                json!({ "user": user.id, "revoked_sessions": revoked }),
                || format!("{}: {revoked} session(s) ended", user.email),
            );
            Ok(())
        }
        Command::User(UserCommand::Sessions(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let list = usecases::sessions::list(&mut conn, &user.id, None, crate::db::now())?;
            out.print(serde_json::to_value(&list)?, || sessions_text(&list));
            Ok(())
        }
        Command::User(UserCommand::EndSession(session)) => {
            let mut conn = connect(&settings)?;
            let ended = match usecases::sessions::end(
                &mut conn,
                &OPERATOR,
                None,
                &session.id,
                None,
                None,
                crate::db::now(),
            ) {
                Err(accounts::AccountError::NotFound) => {
                    anyhow::bail!("no live session {:?}", session.id)
                }
                other => other?,
            };
            out.print(serde_json::to_value(&ended)?, || {
                format!("ended {} {}", ended.kind.replace('_', " "), ended.id)
            });
            Ok(())
        }
        Command::User(UserCommand::VerifyEmail(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let user =
                usecases::users::verify_email(&mut conn, &OPERATOR, &user.id, crate::db::now())?;
            out.print(user_json(&user), || {
                format!("{}: email verified", user.email)
            });
            Ok(())
        }
        Command::User(UserCommand::Mfa(MfaCommand::Reset(who))) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            let reset =
                usecases::users::reset_mfa(&mut conn, &OPERATOR, &user.id, None, crate::db::now())?;
            out.print(serde_json::to_value(&reset)?, || {
                format!(
                    "{}: second factors removed (authenticator app: {}, recovery codes: {}, \
                     passkeys: {}); {} browser session(s) and {} refresh token family(ies) ended",
                    user.email,
                    if reset.wiped.totp { "yes" } else { "none" },
                    reset.wiped.recovery_codes,
                    reset.wiped.passkeys,
                    reset.ended_sessions,
                    reset.revoked_refresh_families
                )
            });
            Ok(())
        }
        Command::User(UserCommand::Delete(who)) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &who.email)?;
            usecases::users::delete(&mut conn, &OPERATOR, &user.id, None, crate::db::now())?;
            out.print(json!({ "deleted": user.id }), || {
                format!("deleted user {} ({})", user.id, user.email)
            });
            Ok(())
        }
        Command::Client(ClientCommand::Delete { client_id }) => {
            let mut conn = connect(&settings)?;
            if !usecases::clients::delete(&mut conn, &OPERATOR, &client_id, crate::db::now())? {
                anyhow::bail!("no client {client_id:?}");
            }
            out.print(json!({ "deleted": client_id }), || {
                format!("deleted client {client_id}")
            });
            Ok(())
        }
        Command::Client(ClientCommand::Add(add)) => {
            let spec = ClientSpec {
                name: add.name,
                public: add.public,
                grant_types: add
                    .grant_types
                    .into_iter()
                    .map(|g| g.trim().to_string())
                    .collect(),
                redirect_uris: add.redirect_uris,
                scopes: add.scopes.split_whitespace().map(String::from).collect(),
                audiences: add.audiences,
                consent: add.consent,
                post_logout_redirect_uris: add.post_logout_redirect_uris,
                backchannel_logout_uri: add.backchannel_logout_uri,
                backchannel_logout_session_required: add.backchannel_logout_session_required,
                require_mfa: add.require_mfa,
                signing_alg: add.signing_alg,
            };
            let mut conn = connect(&settings)?;
            let (client, secret) =
                usecases::clients::add(&mut conn, &OPERATOR, &spec, crate::db::now())?;
            let mut value = client_json(&client);
            if let (Some(secret), Some(obj)) = (&secret, value.as_object_mut()) {
                obj.insert("client_secret".into(), json!(secret));
            }
            out.print(value, || match &secret {
                Some(secret) => format!(
                    "client_id:     {}\nclient_secret: {secret}\n(the secret is shown this once; only its hash is stored)",
                    client.id
                ),
                None => format!("client_id: {} (public client, no secret)", client.id),
            });
            Ok(())
        }
        Command::Client(ClientCommand::Update(update)) => {
            let patch = ClientPatch {
                name: update.name,
                require_mfa: update.require_mfa,
                signing_alg: update.signing_alg,
                ..ClientPatch::default()
            };
            let mut conn = connect(&settings)?;
            let client = usecases::clients::update(
                &mut conn,
                &OPERATOR,
                &update.client_id,
                &patch,
                crate::db::now(),
            )?
            .ok_or_else(|| anyhow::anyhow!("no client {:?}", update.client_id))?;
            out.print(client_json(&client), || {
                format!(
                    "updated client {} ({}){}",
                    client.id,
                    client.name,
                    if client.require_mfa {
                        ", requires MFA"
                    } else {
                        ""
                    }
                )
            });
            Ok(())
        }
        Command::Client(ClientCommand::List) => {
            let mut conn = connect(&settings)?;
            let list = usecases::clients::list(&mut conn)?;
            out.print(Value::Array(list.iter().map(client_json).collect()), || {
                list.iter()
                    .map(|c| {
                        let mfa = if c.require_mfa {
                            "  (requires MFA)"
                        } else {
                            ""
                        };
                        format!("{}  {:<24} {}{mfa}", c.id, c.name, c.grant_types)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await.context("server stopped")
    })
}

fn connect(settings: &Settings) -> anyhow::Result<PooledConnection> {
    Ok(Database::connect(&settings.database)?.get()?)
}

fn find_user(conn: &mut PooledConnection, email: &str) -> anyhow::Result<User> {
    let address =
        accounts::email::Email::parse(email).map_err(|e| anyhow::anyhow!("email: {e}"))?;
    usecases::users::find_by_email(conn, &address)?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// One line per session: the browser sessions, then the refresh token families.
fn sessions_text(list: &usecases::sessions::SessionList) -> String {
    let browser = list.browser_sessions.iter().map(|s| {
        format!(
            "{}  browser  since {}  last seen {}  {}  {}  apps: {}",
            s.id,
            s.created_at,
            s.last_seen_at,
            s.ip.as_deref().unwrap_or("-"),
            s.user_agent.as_deref().unwrap_or("-"),
            s.apps.join(", ")
        )
    });
    let families = list.refresh_families.iter().map(|f| {
        format!(
            "{}  refresh  since {}  last used {}  {}{}",
            f.id,
            f.created_at,
            f.last_used_at,
            f.client_name,
            if f.offline { "  (offline)" } else { "" }
        )
    });
    let lines: Vec<String> = browser.chain(families).collect();
    if lines.is_empty() {
        "no sessions".into()
    } else {
        lines.join("\n")
    }
}

fn user_json(u: &User) -> Value {
    serde_json::to_value(UserView::from(u)).unwrap_or_default()
}

fn client_json(c: &Client) -> Value {
    serde_json::to_value(ClientView::from(c)).unwrap_or_default()
}

struct Output {
    json: bool,
}

impl Output {
    fn print(&self, value: Value, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            println!("{}", human());
        }
    }
}
