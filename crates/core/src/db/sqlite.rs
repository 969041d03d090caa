//! What only SQLite needs: the library's process-wide settings, each connection's pragmas, the
//! lock file that lets processes on one file take turns at start-up, the WAL checkpointer, and
//! the error texts that mean "try again".

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::error::{ConnectError, DbError};

/// Prepares a fresh connection. WAL lets readers run beside the one writer; NORMAL sync in WAL
/// mode loses no committed transaction when the process dies (only on power loss). No
/// checkpoint runs inside a commit: a background thread does them (see `start_checkpointer`),
/// so no request waits for a checkpoint's fsync. The file is read through mmap; the page cache
/// holds only pages read from the WAL and pages being written, and every write commit walks
/// it, so it is kept small: 1 MiB instead of 8 made a refresh's commit ≈ 7 µs (a third)
/// cheaper.
pub(super) fn apply_pragmas(
    conn: &mut diesel::SqliteConnection,
    busy_timeout_ms: u32,
) -> Result<(), ConnectError> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {busy_timeout_ms};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA mmap_size = 268435456;
         PRAGMA cache_size = -1000;"
    ))?;
    Ok(())
}

/// Opens the file, creating its directory first.
pub(super) fn establish(
    path: &Path,
    busy_timeout_ms: u32,
) -> Result<diesel::SqliteConnection, ConnectError> {
    configure_library();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ConnectError::Directory {
            path: path.display().to_string(),
            source,
        })?;
    }
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
    apply_pragmas(&mut conn, busy_timeout_ms)?;
    Ok(conn)
}

/// An exclusive lock on `<database>.lock`, held until the returned file is dropped.
pub(super) fn lock_beside(path: &Path) -> Result<std::fs::File, DbError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let failed = |source: std::io::Error| {
        DbError::Connect(ConnectError::Directory {
            path: path.display().to_string(),
            source,
        })
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))
        .map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(file)
}

/// Process-wide SQLite settings, applied once before the first connection opens the library:
/// - multi-thread mode: a connection is only ever used by one thread at a time (the pool hands
///   it out exclusively), so SQLite's per-connection mutex is pure cost;
/// - no memory statistics: with them on, every sqlite3_malloc and sqlite3_free takes a global
///   mutex (measured: 8% of a refresh grant's CPU time).
fn configure_library() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        // SAFETY: sqlite3_config is called before any other SQLite call in this process (the
        // Once runs ahead of the first connection), which is what the API requires; if the
        // library was already initialised it returns SQLITE_MISUSE and changes nothing.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// Checkpoints SQLite's WAL into the database file every second from a connection of its own,
/// in PASSIVE mode (it never blocks the writer), so commits stay free of checkpoint work and
/// its fsync. Ends when the last handle of the database is dropped.
pub(super) fn start_checkpointer(
    path: PathBuf,
    busy_timeout_ms: u32,
    alive: std::sync::Weak<()>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tessera-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            while alive.upgrade().is_some() {
                std::thread::sleep(Duration::from_secs(1));
                if conn.is_none() {
                    conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).ok();
                    if let Some(c) = conn.as_mut() {
                        let _ =
                            c.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms}"));
                    }
                }
                if let Some(c) = conn.as_mut()
                    && let Err(error) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::warn!(%error, "WAL checkpoint failed");
                    conn = None;
                }
            }
        })
        .map(drop)
}
