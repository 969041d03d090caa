//! The machine's own limits, measured on the cores the server will use: how long one argon2id
//! hash takes at Tessera's default cost, and how many RS256 signatures a pre-parsed aws-lc-rs
//! key makes per second.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;

/// Runs `work` with this thread pinned to `cpus` (e.g. "0"), then unpins it.
pub fn pinned<T>(cpus: &str, work: impl FnOnce() -> T) -> Result<T> {
    // SAFETY: cpu_set_t is plain data; the calls only read and set this thread's affinity.
    unsafe {
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before);
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus.split(',') {
            libc::CPU_SET(cpu.trim().parse::<usize>()?, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(anyhow!("cannot pin to cpus {cpus}"));
        }
        let out = work();
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &before);
        Ok(out)
    }
}

/// Median time of one argon2id hash at m=19456 KiB, t=2, p=1 on one of `cpus`.
pub fn argon2_hash_time(cpus: &str) -> Result<Duration> {
    let first_cpu = cpus.split(',').next().unwrap_or("0").to_string();
    pinned(&first_cpu, || -> Result<Duration> {
        let params = Params::new(19_456, 2, 1, None).map_err(|e| anyhow!("{e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"bench salt bytes").map_err(|e| anyhow!("{e}"))?;
        let mut times = Vec::new();
        for i in 0..12 {
            let started = Instant::now();
            argon2
                .hash_password(format!("password {i}").as_bytes(), &salt)
                .map_err(|e| anyhow!("{e}"))?;
            if i > 1 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        Ok(times[times.len() / 2])
    })?
}

/// RS256 signatures per second by one thread with a 2048-bit key parsed once.
pub fn rs256_signs_per_sec(cpus: &str) -> Result<f64> {
    rs256_signs_per_sec_for(cpus, Duration::from_secs(2))
}

/// As `rs256_signs_per_sec`, signing for `time`.
pub fn rs256_signs_per_sec_for(cpus: &str, time: Duration) -> Result<f64> {
    Ok(rs256_signs(cpus, time)?.per_wall_sec)
}

/// RS256 signatures per second of wall time and per second of this thread's CPU time: on a
/// host whose other work takes the core too, the first falls with it and the second does not.
pub struct SignRates {
    pub per_wall_sec: f64,
    pub per_cpu_sec: f64,
}

/// Signs for `time` on the first of `cpus` with a 2048-bit key parsed once.
pub fn rs256_signs(cpus: &str, time: Duration) -> Result<SignRates> {
    let first_cpu = cpus.split(',').next().unwrap_or("0").to_string();
    pinned(&first_cpu, || -> Result<SignRates> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("keygen"))?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let message = [b'x'; 400];
        let mut signature = vec![0; key.public_modulus_len()];
        let cpu_started = thread_cpu_secs();
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < time {
            key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                .map_err(|_| anyhow!("sign"))?;
            count += 1;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_secs() - cpu_started;
        Ok(SignRates {
            per_wall_sec: count as f64 / wall,
            per_cpu_sec: count as f64 / cpu,
        })
    })?
}

/// This thread's CPU time so far, in seconds.
fn thread_cpu_secs() -> f64 {
    // SAFETY: timespec is plain data, filled in by clock_gettime.
    let time = unsafe {
        let mut time: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time);
        time
    };
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// RS256 verifications per second by one thread, the public key parsed once, by the faster of
/// ring and aws-lc-rs (the server verifies with aws-lc-rs's `ParsedPublicKey`): what a path
/// whose work is one signature check could reach. Returns the rate and the library's name.
pub fn rs256_verifies_per_sec(cpus: &str) -> Result<(f64, &'static str)> {
    let first_cpu = cpus.split(',').next().unwrap_or("0").to_string();
    pinned(&first_cpu, || -> Result<(f64, &'static str)> {
        use aws_lc_rs::signature::KeyPair as _;
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("keygen"))?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let message = [b'x'; 400];
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
            .map_err(|_| anyhow!("sign"))?;
        let public = key.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let components = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            public.as_ref(),
        )
        .map_err(|_| anyhow!("parse the public key"))?;
        let rate = |verify: &dyn Fn() -> bool| -> Result<f64> {
            let started = Instant::now();
            let mut count = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                anyhow::ensure!(verify(), "a good signature did not verify");
                count += 1;
            }
            Ok(count as f64 / started.elapsed().as_secs_f64())
        };
        let ring = rate(&|| {
            components
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    &message,
                    &signature,
                )
                .is_ok()
        })?;
        let aws_lc = rate(&|| parsed.verify_sig(&message, &signature).is_ok())?;
        Ok(if aws_lc >= ring {
            (aws_lc, "aws-lc-rs")
        } else {
            (ring, "ring")
        })
    })?
}

/// Single-row updates per second, each its own transaction, on `database_url` from one
/// connection: the most a refresh (one transaction) could ever reach on this database.
pub fn single_row_updates_per_sec(database_url: &str) -> Result<f64> {
    use diesel::connection::SimpleConnection;
    let mut settings = tessera::config::Settings::defaults()?;
    settings.database.url = database_url.to_string();
    let db = tessera::db::Database::connect(&settings.database)?;
    let mut conn = db.get()?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS bench_counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
         DELETE FROM bench_counter; INSERT INTO bench_counter (id, n) VALUES (1, 0);",
    )?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        conn.batch_execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")?;
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    conn.batch_execute("DROP TABLE bench_counter")?;
    Ok(rate)
}

/// Single-row inserts per second, each its own transaction, on `database_url` from one
/// connection, into a table keyed by a random text id with one secondary index, as an
/// authorization code is: the most a code issuance (one insert) could reach here.
pub fn single_row_inserts_per_sec(database_url: &str) -> Result<f64> {
    use diesel::connection::SimpleConnection;
    let mut settings = tessera::config::Settings::defaults()?;
    settings.database.url = database_url.to_string();
    let db = tessera::db::Database::connect(&settings.database)?;
    let mut conn = db.get()?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS bench_insert;
         CREATE TABLE bench_insert (id TEXT PRIMARY KEY, owner TEXT NOT NULL, at BIGINT NOT NULL);
         CREATE INDEX bench_insert_owner ON bench_insert (owner);",
    )?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        // Keys in no order, as random codes are, without a random source's cost.
        let id = format!("{:016x}", count.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        conn.batch_execute(&format!(
            "INSERT INTO bench_insert (id, owner, at) VALUES ('{id}', 'owner', {count})"
        ))?;
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    conn.batch_execute("DROP TABLE bench_insert")?;
    Ok(rate)
}
