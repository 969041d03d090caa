//! Memory after a login storm: idle RSS, the peak while `logins` password grants arrive at
//! once, and how soon RSS comes back under `target_mib` after the last answer.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::server::{self, Server};

pub fn run(
    binary: &std::path::Path,
    logins: usize,
    target_mib: u64,
    within: Duration,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let setup = server::Setup::new(binary, dir.path(), None, None);
    let seed = setup.seed(logins, 0)?;
    let bodies: Vec<String> = std::fs::read_to_string(&seed.logins)?
        .lines()
        .map(String::from)
        .collect();
    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    std::thread::sleep(Duration::from_secs(2));
    let idle = server.rss_kib()?;

    let server = Arc::new(server);
    let basic = format!("{}:{}", seed.client_id, seed.client_secret);
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let storm_started = Instant::now();
    let answers: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| {
                let (server, basic, barrier) = (server.clone(), basic.clone(), barrier.clone());
                scope.spawn(move || {
                    barrier.wait();
                    server.post_form("/token", &basic, body).is_ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    let storm = storm_started.elapsed();
    let peak = server.peak_rss_kib()?;
    let after_storm = server.rss_kib()?;

    let calm = Instant::now();
    let mut back_under = None;
    let mut last = after_storm;
    while calm.elapsed() < within {
        last = server.rss_kib()?;
        if last < target_mib * 1024 {
            back_under = Some(calm.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let settings = tessera::config::Settings::defaults()?;
    let threads = tessera::accounts::hash_pool::thread_count(settings.passwords.hash_threads);
    let m_cost = u64::from(settings.passwords.argon2_memory_kib);
    let bound = idle + threads as u64 * m_cost;
    let ok = answers.iter().filter(|a| **a).count();
    let mib = |kib: u64| kib as f64 / 1024.0;

    println!("## memory: {logins} concurrent password logins");
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| idle RSS before | {:.1} MiB |", mib(idle));
    println!(
        "| logins answered 200 | {ok} of {} in {:.2} s |",
        answers.len(),
        storm.as_secs_f64()
    );
    println!(
        "| peak RSS (VmHWM) | {:.1} MiB; idle + {threads} hash threads × {:.1} MiB m_cost = {:.1} MiB; peak − that = {:+.1} MiB |",
        mib(peak),
        mib(m_cost),
        mib(bound),
        mib(peak) - mib(bound)
    );
    println!("| RSS at the last answer | {:.1} MiB |", mib(after_storm));
    match back_under {
        Some(t) => println!(
            "| back under {target_mib} MiB | after {:.2} s ({:.1} MiB); target within {} s |",
            t.as_secs_f64(),
            mib(last),
            within.as_secs()
        ),
        None => println!(
            "| back under {target_mib} MiB | NOT within {} s (still {:.1} MiB) |",
            within.as_secs(),
            mib(last)
        ),
    }
    println!();
    Arc::into_inner(server)
        .context("the storm's threads are done")?
        .stop()
}
