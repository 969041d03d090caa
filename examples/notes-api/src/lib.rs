//! An example resource server: notes owned by the user a Tessera access token speaks for.
//!
//! - `GET /notes`, `POST /notes`, `GET /notes/{id}`, `DELETE /notes/{id}`: scope `notes`; a
//!   user sees only their own notes (someone else's note is 404, not 403, so ids reveal
//!   nothing).
//! - `GET /admin/notes`: scope `notes` and the `admin` role: every note.
//! - `GET /health`: no token.
//!
//! Notes live in memory: this is an example of token handling, not of storage.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};
use tessera_verify::Verifier;
use tessera_verify::actix::{Authenticated, BearerError, RequireScope};

/// The scope every notes route requires.
pub const SCOPE: &str = "notes";
const MAX_TITLE_CHARS: usize = 200;
const MAX_BODY_CHARS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct NotesConfig {
    pub bind: SocketAddr,
    /// Tessera's issuer URL, exactly its `iss`.
    pub issuer: String,
    /// Fetch keys here instead of discovering them from the issuer.
    pub jwks_url: Option<String>,
    /// The audience Tessera puts in tokens for this API.
    pub audience: String,
    /// Shortest time the JWKS is cached whatever its max-age says.
    pub cache_floor: Duration,
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: u64,
    pub owner: String,
    pub title: String,
    pub body: String,
}

#[derive(Default)]
struct Notes {
    next_id: u64,
    by_id: BTreeMap<u64, Note>,
}

#[derive(Deserialize)]
struct NewNote {
    title: String,
    #[serde(default)]
    body: String,
}

pub struct NotesApi {
    pub address: SocketAddr,
    pub verifier: Verifier,
    pub server: Server,
}

/// Binds, builds the verifier and returns the server ready to run. If Tessera cannot be
/// reached yet the API starts anyway (with a warning) and fetches the keys when it can.
pub async fn build(config: NotesConfig) -> anyhow::Result<NotesApi> {
    let mut builder = Verifier::builder(&config.issuer)
        .audience(&config.audience)
        .cache_floor(config.cache_floor);
    if let Some(url) = &config.jwks_url {
        builder = builder.jwks_url(url);
    }
    let verifier = builder.build()?;
    if let Err(error) = verifier.refresh().await {
        eprintln!("notes-api: warning: {error}; will retry in the background");
    }
    let listener = TcpListener::bind(config.bind)?;
    let address = listener.local_addr()?;
    let notes = web::Data::new(Mutex::new(Notes::default()));
    let app_verifier = verifier.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_verifier.clone())
            .app_data(notes.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| {
                        actix_web::error::InternalError::from_response(
                            e.to_string(),
                            bad_request(&e.to_string()),
                        )
                        .into()
                    }),
            )
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().finish() }),
            )
            .service(
                web::scope("/notes")
                    .wrap(RequireScope::new(SCOPE))
                    .route("", web::get().to(list_own))
                    .route("", web::post().to(create))
                    .route("/{id}", web::get().to(read))
                    .route("/{id}", web::delete().to(delete)),
            )
            .service(
                web::scope("/admin")
                    .wrap(RequireScope::new(SCOPE))
                    .route("/notes", web::get().to(list_all)),
            )
    })
    .listen(listener)?
    .shutdown_timeout(1);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    Ok(NotesApi {
        address,
        verifier,
        server: server.run(),
    })
}

type NotesData = web::Data<Mutex<Notes>>;

fn bad_request(description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({
        "error": "invalid_request",
        "error_description": description,
    }))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "not_found",
        "error_description": "no such note",
    }))
}

fn with_notes<T>(notes: &NotesData, f: impl FnOnce(&mut Notes) -> T) -> T {
    // A panic while holding the lock cannot leave a note half-written (each change is one
    // map operation), so a poisoned lock still guards consistent data.
    let mut guard = match notes.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard)
}

async fn list_own(user: Authenticated, notes: NotesData) -> HttpResponse {
    let own: Vec<Note> = with_notes(&notes, |n| {
        n.by_id
            .values()
            .filter(|note| note.owner == user.sub)
            .cloned()
            .collect()
    });
    HttpResponse::Ok().json(own)
}

async fn create(user: Authenticated, notes: NotesData, new: web::Json<NewNote>) -> HttpResponse {
    let NewNote { title, body } = new.into_inner();
    let title = title.trim().to_string();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return bad_request("title: 1 to 200 characters");
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return bad_request("body: at most 10000 characters");
    }
    let note = with_notes(&notes, |n| {
        n.next_id += 1;
        let note = Note {
            id: n.next_id,
            owner: user.sub.clone(),
            title,
            body,
        };
        n.by_id.insert(note.id, note.clone());
        note
    });
    HttpResponse::Created().json(note)
}

async fn read(user: Authenticated, notes: NotesData, id: web::Path<u64>) -> HttpResponse {
    let id = id.into_inner();
    match with_notes(&notes, |n| n.by_id.get(&id).cloned()) {
        Some(note) if note.owner == user.sub => HttpResponse::Ok().json(note),
        _ => not_found(),
    }
}

async fn delete(user: Authenticated, notes: NotesData, id: web::Path<u64>) -> HttpResponse {
    let id = id.into_inner();
    let removed = with_notes(&notes, |n| match n.by_id.get(&id) {
        Some(note) if note.owner == user.sub => n.by_id.remove(&id),
        _ => None,
    });
    match removed {
        Some(_) => HttpResponse::NoContent().finish(),
        None => not_found(),
    }
}

async fn list_all(user: Authenticated, notes: NotesData) -> Result<HttpResponse, BearerError> {
    user.require_role("admin")?;
    let all: Vec<Note> = with_notes(&notes, |n| n.by_id.values().cloned().collect());
    Ok(HttpResponse::Ok().json(all))
}
