//! The checks each part makes of its own settings, run once after the settings are loaded and
//! before anything starts. Configuration holds plain values and checks only those; what it
//! takes a part's own parser to judge (a database URL, an SMTP target, argon2's parameters) is
//! that part's to say, so `config` depends on none of them.

use crate::config::{ConfigError, Settings};

pub fn check(settings: &Settings) -> Result<(), ConfigError> {
    crate::db::DatabaseTarget::parse(&settings.database.url)
        .map_err(|e| ConfigError(format!("database.url: {e}")))?;
    crate::mail::SmtpTarget::from_settings(&settings.smtp).map_err(ConfigError)?;
    crate::accounts::password::Hasher::new(&settings.passwords)
        .map_err(|e| ConfigError(format!("passwords: {e}")))?;
    // The key-encryption key is read and checked here; whether it opens the stored keys is
    // known once the database is reached.
    crate::keys::KeyMaterialStore::open(&settings.keys)
        .map_err(|e| ConfigError(format!("keys: {e}")))?;
    // A key-encryption key given beside the files store is checked too: a malformed one is a
    // mistake to report now, not on the day the store is switched.
    let keys = &settings.keys;
    let kek_given = keys.encryption_key.as_ref().is_some_and(|k| !k.is_empty())
        || keys
            .encryption_key_file
            .as_ref()
            .is_some_and(|f| !f.as_os_str().is_empty());
    if matches!(keys.store, crate::config::KeyStoreKind::Files) && kek_given {
        crate::keys::store::Keks::from_settings(keys)
            .map_err(|e| ConfigError(format!("keys: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn checked(env: &[(&str, &str)]) -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").expect("write config");
        let settings = Settings::load(Sources {
            file: Some(empty),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: Vec::new(),
        })?;
        check(&settings)
    }

    #[test]
    fn each_part_refuses_its_own_bad_settings_in_one_line_naming_the_key() {
        assert!(checked(&[]).is_ok());
        for (env, needle) in [
            (("DATABASE_URL", "mysql://x"), "database.url"),
            (("TESSERA_SMTP_URL", "http://mail.example.com"), "smtp.url"),
            (("TESSERA_SMTP_HOST", "mail.example.com"), "smtp.from"),
            (("TESSERA_PASSWORDS_ARGON2_MEMORY_KIB", "1"), "passwords"),
            (
                ("TESSERA_KEYS_STORE", "database"),
                "TESSERA_KEY_ENCRYPTION_KEY",
            ),
            (
                ("TESSERA_KEY_ENCRYPTION_KEY_FILE", "/nonexistent/kek"),
                "/nonexistent/kek",
            ),
            (
                ("TESSERA_KEY_ENCRYPTION_KEY", "c2hvcnQ="),
                "keys.encryption_key",
            ),
        ] {
            let err = checked(&[env]).expect_err("refused");
            let text = err.to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn the_database_key_store_takes_its_key_from_the_environment_and_files_need_none() {
        use base64::Engine;
        let kek = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert!(
            checked(&[
                ("TESSERA_KEYS_STORE", "database"),
                ("TESSERA_KEY_ENCRYPTION_KEY", &kek),
            ])
            .is_ok()
        );
        assert!(checked(&[("TESSERA_KEYS_STORE", "files")]).is_ok());
        let err = checked(&[("TESSERA_KEYS_STORE", "s3")]).expect_err("refused");
        assert!(err.to_string().contains("keys.store"), "{err}");
    }
}
