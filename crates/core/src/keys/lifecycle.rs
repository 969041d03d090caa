//! When signing keys change state, and how every replica learns of it without a restart.
//!
//! The truth is the `signing_keys` table (which key is next, active, retiring, retired) plus
//! the key store (the private halves: the shared keys directory, or the database). Each server polls the table every
//! `keys.reload_interval_secs` and swaps its in-memory `KeyRing` when the published set or a
//! state changed; the same tick moves retiring keys whose tokens have all expired to `retired`
//! and, when `keys.rotate_interval_secs` is set, rotates on schedule. Every step is a guarded
//! update, so replicas doing it at once agree: one wins, the others see its result.
//!
//! The timings that make rotation invisible to resource servers:
//! - a `next` key is promoted only after it has been published for `jwks_max_age_secs +
//!   reload_interval_secs` (every replica serves it, and every cache that honours max-age has
//!   refreshed since), so a verifier with a warm cache never meets an unknown kid;
//! - a retiring key stays published for the longest token lifetime (access tokens, including
//!   per-client overrides, and ID tokens) + `retire_leeway_secs` + `reload_interval_secs`
//!   after it stopped signing (a replica may sign with it until its next poll).
//!
//! Once retired, nothing a key signed is valid any more, so its private half is deleted (the
//! file, or the sealed row): kept, it would only be a secret to lose (in a backup, a copied
//! volume) that could mint tokens again. Each tick deletes those of every retired key that
//! still has one, after the
//! database says it is retired, so a deletion interrupted (or a file an older version left)
//! goes on the next tick; the states only move forward, so a retired key never signs or
//! verifies again, and the files of next, active and retiring keys are never touched.

use std::time::Duration;

use super::{
    KeyError, KeyMaterialStore, KeyRing, KeyState, Rotation, load, rotate, rows_of, store,
};
use crate::config::{KeySettings, Settings};
use crate::db::DbConnection;
use crate::db::repo::{clients, signing_keys};
use crate::domain::SigningAlg;
use crate::services::Services;

/// How long after a key stopped signing it must stay published.
pub fn retire_after_secs(conn: &mut DbConnection, settings: &Settings) -> Result<i64, KeyError> {
    let clients_longest = clients::longest_access_token_ttl(conn)?.unwrap_or(0);
    let longest_token = settings
        .tokens
        .access_token_ttl_secs
        .max(settings.tokens.id_token_ttl_secs)
        .max(clients_longest);
    Ok(
        longest_token
            + settings.keys.retire_leeway_secs
            + settings.keys.reload_interval_secs as i64,
    )
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct Maintenance {
    /// Keys that left the JWKS.
    pub retired: Vec<String>,
    /// Retired keys whose private half (file or sealed row) this tick deleted.
    pub deleted_files: Vec<String>,
    /// The scheduled rotations that were due (each algorithm keeps its own schedule).
    pub rotated: Vec<Rotation>,
    /// The new key ring, if the published keys differ from `published`.
    pub ring: Option<KeyRing>,
}

/// One tick: retire what has served its time, rotate if scheduled and due, and reload the keys
/// if the database no longer matches `published` (kid and state of the ring in memory).
pub fn maintain(
    conn: &mut DbConnection,
    settings: &Settings,
    published: &[(String, KeyState)],
    now: i64,
) -> Result<Maintenance, KeyError> {
    let stopped_by = now - retire_after_secs(conn, settings)?;
    let mut done = Maintenance {
        retired: signing_keys::retire_finished(conn, stopped_by, now)?,
        ..Maintenance::default()
    };
    done.deleted_files = store::remove_retired(conn, &settings.keys)?;
    for alg in SigningAlg::ALL {
        if settings.keys.rotate_interval_secs == 0 || !rotation_due(conn, &settings.keys, alg, now)?
        {
            continue;
        }
        match rotate(conn, &settings.keys, alg, now, false) {
            Ok(rotation) => done.rotated.push(rotation),
            // Another replica rotated (or its next key is not ready yet): its result is read
            // below like any other change.
            Err(KeyError::Conflict | KeyError::TooEarly { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut in_db: Vec<(String, KeyState)> = signing_keys::list_published(conn)?
        .into_iter()
        .map(|r| KeyState::parse(&r.state).map(|s| (r.kid, s)))
        .collect::<Result<_, _>>()?;
    in_db.sort_by(|a, b| a.0.cmp(&b.0));
    let mut in_memory = published.to_vec();
    in_memory.sort_by(|a, b| a.0.cmp(&b.0));
    if in_db != in_memory {
        done.ring = Some(load(conn, &KeyMaterialStore::open(&settings.keys)?)?);
    }
    Ok(done)
}

/// With a schedule: a `next` key of `alg` is created as soon as there is none, and promoted
/// once the active key has signed for `rotate_interval_secs` and the next key is ready.
fn rotation_due(
    conn: &mut DbConnection,
    settings: &KeySettings,
    alg: SigningAlg,
    now: i64,
) -> Result<bool, KeyError> {
    let rows = rows_of(&signing_keys::list_published(conn)?, alg);
    let Some(active) = rows.iter().find(|r| r.state == KeyState::Active.as_str()) else {
        return Ok(false);
    };
    if !rows.iter().any(|r| r.state == KeyState::Next.as_str()) {
        return Ok(true);
    }
    let signing_since = active.activated_at.unwrap_or(active.created_at);
    Ok(signing_since + settings.rotate_interval_secs as i64 <= now
        && super::check_ready(&rows, settings, now).is_ok())
}

/// Runs `maintain` every `keys.reload_interval_secs` for the life of the server.
pub fn spawn_watch(svc: Services) {
    let interval = Duration::from_secs(svc.settings.keys.reload_interval_secs);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // immediate; the ring was loaded at start-up
        loop {
            ticker.tick().await;
            let published: Vec<(String, KeyState)> = svc
                .keys
                .current()
                .keys()
                .iter()
                .map(|k| (k.kid().to_string(), k.state()))
                .collect();
            let settings = svc.settings.clone();
            let now = svc.clock.now();
            let result = svc
                .db
                .run(move |conn| maintain(conn, &settings, &published, now))
                .await;
            match result {
                Ok(done) => {
                    for kid in &done.retired {
                        tracing::info!(%kid, "signing key retired: its tokens have expired");
                    }
                    for kid in &done.deleted_files {
                        tracing::info!(%kid, "retired signing key's private half deleted");
                    }
                    for rotation in &done.rotated {
                        tracing::info!(?rotation, "scheduled key rotation");
                    }
                    if let Some(ring) = done.ring {
                        tracing::info!(active = %ring.active().kid(), "signing keys reloaded");
                        svc.keys.replace(ring);
                    }
                }
                // Keep signing with the ring we have; the next tick tries again.
                Err(error) => tracing::warn!(%error, "signing key maintenance failed"),
            }
        }
    });
}
