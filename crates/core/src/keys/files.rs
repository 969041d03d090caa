//! Private key files: PKCS#8 PEM, mode 0600, written atomically (temp file + rename) so a crash
//! never leaves a half-written key under a real name.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::KeyError;

const PEM_TAG: &str = "PRIVATE KEY";

pub fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// Creates the directory (0700) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        action: "cannot create the keys directory",
        path: dir.to_path_buf(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| KeyError::Io {
        action: "cannot restrict the keys directory",
        path: dir.to_path_buf(),
        source,
    })
}

pub fn write_private_key(dir: &Path, kid: &str, pkcs8_der: &[u8]) -> Result<PathBuf, KeyError> {
    let path = key_path(dir, kid);
    let temp = dir.join(format!(".{kid}.pem.tmp"));
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io {
            action,
            path,
            source,
        }
    };
    let pem = pem::encode(&pem::Pem::new(PEM_TAG, pkcs8_der));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_error("cannot write key file", &temp))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot write key file", &temp))?;
    fs::rename(&temp, &path).map_err(io_error("cannot write key file", &path))?;
    Ok(path)
}

/// Reads a key file and returns its PKCS#8 DER. Warns when others may read it.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        action: "cannot read key file",
        path: path.to_path_buf(),
        source,
    })?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
    }
    let parsed = pem::parse(text).map_err(|_| KeyError::Parse {
        path: path.to_path_buf(),
    })?;
    if parsed.tag() != PEM_TAG {
        return Err(KeyError::Parse {
            path: path.to_path_buf(),
        });
    }
    Ok(parsed.into_contents())
}

/// Deletes a key's private file; false if there was none. Safe to run from several servers
/// sharing the directory at once: the one that finds it gone already has nothing to do.
pub fn remove_private_key(dir: &Path, kid: &str) -> Result<bool, KeyError> {
    let path = key_path(dir, kid);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(KeyError::Io {
            action: "cannot delete retired key file",
            path,
            source,
        }),
    }
}
