//! `cargo run -p notes-api` against a Tessera on 127.0.0.1:8080; see README.md.

use std::time::Duration;

use clap::Parser;
use notes_api::{NotesConfig, build};

#[derive(Parser)]
#[command(about = "Example resource server protected by Tessera access tokens")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "NOTES_BIND", default_value = "127.0.0.1:8081")]
    bind: std::net::SocketAddr,
    /// Tessera's issuer URL (its `iss`); keys are found through its discovery document.
    #[arg(long, env = "NOTES_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// JWKS URL, if discovery is not wanted.
    #[arg(long, env = "NOTES_JWKS_URL")]
    jwks_url: Option<String>,
    /// The audience Tessera puts in tokens for this API.
    #[arg(long, env = "NOTES_AUDIENCE", default_value = "notes")]
    audience: String,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let api = build(NotesConfig {
        bind: args.bind,
        issuer: args.issuer.clone(),
        jwks_url: args.jwks_url,
        audience: args.audience,
        cache_floor: Duration::from_secs(30),
        workers: 0,
    })
    .await?;
    eprintln!(
        "notes-api listening on http://{} (issuer {})",
        api.address, args.issuer
    );
    api.server.await?;
    Ok(())
}
