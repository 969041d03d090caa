//! Issue 19 item 3: the deploy topology run for real. `deploy/topology.sh` starts what
//! docker-compose.yml describes (nginx with deploy/nginx.conf, three replicas, a fresh
//! PostgreSQL database) and the soak driver `bench/src/topology.rs` (the same file
//! `tessera-bench topology` runs for a minute or more) loads it for a few seconds through a
//! `kill -9` and a graceful restart, then checks the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[path = "../../bench/src/topology.rs"]
#[allow(dead_code)]
mod driver;

use driver::{Fault, Plan, Topology};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("deploy/topology.sh")
}

fn check_nginx(conf: &Path) -> std::process::Output {
    std::process::Command::new(script())
        .arg("check-nginx")
        .env("NGINX_CONF", conf)
        .output()
        .expect("deploy/topology.sh check-nginx")
}

/// `nginx -t` on deploy/nginx.conf with only the upstream names (which resolve in Docker's
/// network alone) and the temporary paths filled in; and a broken copy is refused, so the
/// check can fail.
#[test]
fn nginx_accepts_the_real_deploy_config() {
    let real = repo().join("deploy/nginx.conf");
    let checked = check_nginx(&real);
    assert!(
        checked.status.success(),
        "nginx -t refused deploy/nginx.conf: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stderr).contains("syntax is ok"));

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("nginx.conf");
    let text = std::fs::read_to_string(&real).expect("nginx.conf");
    let text = text.replace("proxy_next_upstream ", "proxy_next_upstreams ");
    std::fs::write(&broken, text).expect("write");
    let refused = check_nginx(&broken);
    assert!(
        !refused.status.success(),
        "a misspelt directive passed nginx -t"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("proxy_next_upstreams"));
}

/// The script runs what docker-compose.yml describes: the same three replicas nginx.conf
/// names, and every variable the script gives a replica is one compose gives it too.
#[test]
fn the_script_nginx_and_compose_describe_the_same_topology() {
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose");
    let nginx = std::fs::read_to_string(repo().join("deploy/nginx.conf")).expect("nginx.conf");
    let script = std::fs::read_to_string(script()).expect("script");
    for n in 1..=3 {
        assert!(
            compose.contains(&format!("\n  tessera-{n}:\n")),
            "compose: tessera-{n}"
        );
        assert!(
            nginx.contains(&format!("server tessera-{n}:8080 ")),
            "nginx: tessera-{n}"
        );
    }
    assert!(!compose.contains("tessera-4:") && !nginx.contains("tessera-4:"));
    let replica = script
        .split("\nstart_replica() {")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("start_replica in the script");
    let exported: Vec<&str> = replica
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split('=').next())
        .collect();
    assert!(exported.len() >= 8, "{exported:?}");
    for name in exported {
        assert!(
            compose.contains(&format!("    {name}: ")),
            "compose lacks {name}"
        );
    }
    assert!(compose.contains("./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_the_topology_loses_nothing_across_a_kill_and_a_graceful_restart() {
    let admin = crate::testkit::database::postgres_admin_url()
        .expect("PostgreSQL only: set TEST_DATABASE_URL");
    let tessera = Path::new(env!("CARGO_BIN_EXE_tessera"));
    let topology = tokio::task::spawn_blocking(move || {
        let env = [
            ("PG_ADMIN_URL", admin.as_str()),
            ("TESSERA_TOKENS_REFRESH_REUSE_GRACE_SECS", "10"),
            ("TESSERA_PASSWORDS_ARGON2_MEMORY_KIB", "1024"),
            ("TESSERA_PASSWORDS_ARGON2_ITERATIONS", "1"),
            ("TESSERA_LOG", "warn"),
        ];
        Topology::up(&script(), tessera, &env)
    })
    .await
    .expect("join")
    .expect("deploy/topology.sh up");
    let topology = Arc::new(topology);
    let actors = {
        let topology = topology.clone();
        tokio::task::spawn_blocking(move || driver::prepare(&topology, 8))
            .await
            .expect("join")
            .expect("a client and users")
    };
    let plan = Plan {
        // The graceful restart takes the drain (server.drain_secs, 5 s) and a start.
        duration: Duration::from_secs(13),
        jwks_readers: 2,
        refreshes_per_login: 10,
        faults: vec![
            (
                Duration::from_millis(1500),
                Fault::Kill {
                    replica: 1,
                    restart_after: Duration::from_secs(1),
                },
            ),
            (Duration::from_secs(4), Fault::Restart { replica: 2 }),
        ],
    };
    let report = driver::run(topology.clone(), actors, plan)
        .await
        .expect("the soak runs");
    println!("{}", report.markdown());
    let missed = report.missed_targets();
    assert!(missed.is_empty(), "{}\n{missed:#?}", report.markdown());
    // The load was real: every kind was sent, families were started and checked.
    for (kind, sent, _) in &report.by_kind {
        assert!(*sent >= 20, "{kind:?}: only {sent}");
    }
    assert!(report.families_held >= 8 && report.families_in_database >= report.families_held);
    assert_eq!(report.kills.len(), 1);
    assert_eq!(report.restarts.len(), 1);
    let topology = Arc::try_unwrap(topology).ok().expect("one owner");
    tokio::task::spawn_blocking(move || topology.down())
        .await
        .expect("join")
        .expect("down");
}

/// One request on a kept-alive connection; the answer's status line and headers (lower
/// case) and body.
fn exchange(stream: &mut std::net::TcpStream, path: &str) -> (String, String) {
    send(stream, path);
    answer(stream)
}

fn send(stream: &mut std::net::TcpStream, path: &str) {
    use std::io::Write;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
}

/// The next answer on `stream`: its status line and headers (lower case), and its body.
fn answer(stream: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return (head.to_ascii_lowercase(), body.to_string());
            }
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the answer: {text}");
        data.extend_from_slice(&buf[..n]);
    }
}

/// SIGTERM: at once no new connection is accepted (a proxy retries it elsewhere, the request
/// not sent), while a kept-alive connection is still served, its answer saying
/// `Connection: close` (and /readyz 503); the process exits after `server.drain_secs`.
#[test]
fn a_replica_told_to_stop_refuses_new_connections_and_closes_kept_ones_after_their_answer() {
    use std::io::Read;
    let env = crate::testkit::TestEnv::new();
    let server =
        crate::testkit::ServerProcess::start_with(&env, &[("TESSERA_SERVER_DRAIN_SECS", "2")]);
    let address = server.address.trim_start_matches("http://").to_string();
    let mut kept = std::net::TcpStream::connect(&address).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (head, _) = exchange(&mut kept, "/readyz");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    let signalled = std::time::Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let mut refused = false;
    while signalled.elapsed() < Duration::from_secs(1) {
        match std::net::TcpStream::connect(&address) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(refused, "new connections are still accepted after SIGTERM");

    let (head, body) = exchange(&mut kept, "/readyz");
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(body.contains("draining"), "{body}");
    let mut rest = Vec::new();
    assert_eq!(
        kept.read_to_end(&mut rest).expect("read to the end"),
        0,
        "closed after the answer"
    );

    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "exited after {took:?}, before the drain ended"
    );
}

/// A connection the kernel had queued before SIGTERM, its request already written, is answered
/// when the replica stops listening, not reset: a proxy does not resend a POST it has sent, so
/// a reset there is a failed request. One worker that serves one connection at a time keeps a
/// second connection in the listen queue for as long as the first stays open.
#[test]
fn a_connection_waiting_in_the_listen_queue_at_sigterm_is_answered_not_reset() {
    use std::io::Read;
    let env = crate::testkit::TestEnv::new();
    let server = crate::testkit::ServerProcess::start_with(
        &env,
        &[
            ("TESSERA_SERVER_DRAIN_SECS", "2"),
            ("TESSERA_SERVER_WORKERS", "1"),
            ("TESSERA_SERVER_MAX_CONNECTIONS_PER_WORKER", "1"),
        ],
    );
    let address = server.address.trim_start_matches("http://").to_string();
    let mut served = std::net::TcpStream::connect(&address).expect("connect");
    served
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (head, _) = exchange(&mut served, "/readyz");
    assert!(head.starts_with("http/1.1 200"), "{head}");

    let mut queued = std::net::TcpStream::connect(&address).expect("the kernel completes it");
    send(&mut queued, "/.well-known/jwks.json");
    queued
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waiting = queued.read(&mut byte);
    assert!(
        matches!(&waiting, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the second connection should wait in the listen queue, not be served: {waiting:?}"
    );

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    // The replica is draining while the queued connection still waits: the first connection's
    // next answer says so, and closes it, which frees the worker for the queued one. (Until
    // the signal is handled, the answers are 200 and keep the connection.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (head, body) = loop {
        let (head, body) = exchange(&mut served, "/readyz");
        if !head.starts_with("http/1.1 200") || std::time::Instant::now() > deadline {
            break (head, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(body.contains("draining"), "{body}");

    queued
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (head, body) = answer(&mut queued);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(body.contains("\"keys\""), "{body}");

    let status = server.stop();
    assert!(status.success(), "{status:?}");
}
