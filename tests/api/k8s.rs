//! Issue 19 item 6: the Kubernetes manifests in deploy/k8s/ pass kubernetes-validate (PyPI;
//! it bundles the schemas and runs offline; `.ci/run` installs it), strictly, and a broken
//! manifest does not; they keep what the issue asks; and a replica starts with the service
//! links Kubernetes injects when `enableServiceLinks` is left on.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::testkit::{ServerProcess, TestEnv};

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(file: &Path) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs (pip install kubernetes-validate)")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/k8s")
            .join(name),
    )
    .expect(name)
}

#[test]
fn every_manifest_passes_kubernetes_validate_and_a_broken_one_does_not() {
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "deployment.yaml",
        "migrate-job.yaml",
        "pdb.yaml",
        "secret.yaml",
        "service.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let out = validate(file);
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let deployment = read("deployment.yaml");
    for (what, broken) in [
        (
            "a string for a number",
            deployment.replace("replicas: 3", "replicas: three"),
        ),
        (
            "a field that does not exist",
            deployment.replace("replicas: 3", "replica: 3"),
        ),
        (
            "a probe without a port",
            deployment.replacen("              port: http\n", "", 1),
        ),
    ] {
        assert_ne!(broken, deployment, "{what}: the edit applies");
        let file = dir.path().join("deployment.yaml");
        std::fs::write(&file, broken).expect("write");
        assert!(
            !validate(&file).status.success(),
            "{what} passed kubernetes-validate"
        );
    }
}

#[test]
fn the_manifests_run_replicas_with_keys_in_the_database_and_no_working_secret() {
    let deployment = read("deployment.yaml");
    for needed in [
        "replicas: 3",
        "enableServiceLinks: false",
        "path: /readyz",
        "path: /healthz",
        "name: TESSERA_KEYS_STORE\n              value: database",
        "name: TESSERA_KEY_ENCRYPTION_KEY\n              valueFrom:",
        "name: TESSERA_METRICS_BIND\n              value: 0.0.0.0:9100",
        "- name: metrics\n              containerPort: 9100",
        "key: database-url",
        "key: key-encryption-key",
    ] {
        assert!(
            deployment.contains(needed),
            "deployment.yaml lacks {needed:?}"
        );
    }
    assert!(read("migrate-job.yaml").contains("args: [\"migrate\"]"));
    assert!(read("pdb.yaml").contains("kind: PodDisruptionBudget"));
    // The Secret holds placeholders only: none is 32 bytes of standard base64.
    let secret = read("secret.yaml");
    let values: Vec<&str> = secret
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(": \""))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert_eq!(values.len(), 2, "{values:?}");
    for value in values {
        assert!(value.contains("REPLACE-ME"), "{value}");
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value);
        assert!(
            !matches!(decoded, Ok(b) if b.len() == 32),
            "{value} is a usable key"
        );
    }
}

/// What Kubernetes injects for Services named `tessera` (ports `http` and `metrics`) and
/// `tessera-metrics`: the replica starts, serves, and names them once as ignored.
#[tokio::test]
async fn a_replica_starts_with_kubernetes_service_links_in_its_environment() {
    let env = TestEnv::new();
    let links = [
        ("TESSERA_SERVICE_HOST", "10.0.0.1"),
        ("TESSERA_SERVICE_PORT", "8080"),
        ("TESSERA_SERVICE_PORT_HTTP", "8080"),
        ("TESSERA_SERVICE_PORT_METRICS", "9100"),
        ("TESSERA_PORT", "tcp://10.0.0.1:8080"),
        ("TESSERA_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("TESSERA_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("TESSERA_PORT_8080_TCP_PORT", "8080"),
        ("TESSERA_PORT_8080_TCP_PROTO", "tcp"),
        ("TESSERA_PORT_9100_TCP", "tcp://10.0.0.1:9100"),
        ("TESSERA_METRICS_SERVICE_HOST", "10.0.0.2"),
        ("TESSERA_METRICS_PORT", "tcp://10.0.0.2:9100"),
        ("TESSERA_METRICS_PORT_9100_TCP_PORT", "9100"),
    ];
    let server = ServerProcess::start_with(&env, &links);
    let health = reqwest::get(format!("{}/healthz", server.address))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let (status, logs) = server.stop_keeping_logs();
    assert!(status.success());
    let warning = logs
        .iter()
        .find(|l| l.contains("ignoring TESSERA_* environment variables"))
        .expect("the ignored variables are named");
    for (name, _) in links {
        assert!(warning.contains(name), "{name} not named in {warning}");
    }
}
