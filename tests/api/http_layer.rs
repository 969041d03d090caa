//! HTTP handlers and the command line reach the database only through the use cases
//! (`tessera::usecases`) and the domain modules, never through the repository layer
//! (`db::repo`): that is what keeps the two callers writing the same things.

use std::path::{Path, PathBuf};

/// Lines of Rust code, `//` comments (doc comments too) taken out, naming `repo` as an
/// identifier: a path through the repository layer, however it is imported.
fn repository_uses(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(number, line)| {
            let code = line.split("//").next().unwrap_or_default();
            code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == "repo")
                .then(|| (number + 1, line.trim().to_string()))
        })
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_scan_sees_every_way_of_naming_the_repository() {
    for code in [
        "use crate::db::repo;",
        "use crate::db::{DbError, repo};",
        "    crate::db::repo::users::find_by_id(conn, id)",
        "let x = repo::revoked::insert(conn, jti, exp)?; // ends it",
    ] {
        assert_eq!(repository_uses(code).len(), 1, "{code}");
    }
    for code in [
        "// the repository layer (`db::repo`) is not for handlers",
        "use crate::usecases::users;",
        "let report = reporter(repository);",
    ] {
        assert!(repository_uses(code).is_empty(), "{code}");
    }
}

#[test]
fn http_handlers_and_the_cli_never_call_the_repository_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("cli.rs")];
    rust_files(&root.join("http"), &mut files);
    assert!(
        files.len() > 5,
        "the HTTP sources are where this test expects: {files:?}"
    );
    let mut offences = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for (line, code) in repository_uses(&source) {
            offences.push(format!("{}:{line}: {code}", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "call a use case (tessera::usecases) instead:\n{}",
        offences.join("\n")
    );
}
