//! The shape of the code, checked: a dependency picture of the sources drawn from their imports
//! has no circle, and nothing under HTTP or the CLI reaches the repository layer.
//!
//! The picture is drawn per file. An edge goes from a file to the file that defines the module
//! a path names: `use crate::a::b::C` points at `a/b.rs` (or `a/b/mod.rs`), or at `a.rs` when
//! `b` is an item of `a`; `super::` and `self::` resolve from the file's own module, and
//! `tessera_core::` / `tessera_proto::` from those crates' roots. A `mod` declaration is not an
//! edge (a parent owning a child is not a dependency); a `pub use` re-export is. Unit tests at
//! the end of a file (`#[cfg(test)]`) are left out: they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::testkit::rust_files;

/// The crates whose sources are checked: the name paths use for them, and their `src`.
fn crates() -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        ("tessera", root.join("src")),
        ("tessera_core", root.join("crates/core/src")),
        ("tessera_proto", root.join("crates/proto/src")),
    ]
    .into_iter()
    .filter(|(_, dir)| dir.is_dir())
    .collect()
}

/// A source file, named by crate and module path (`tessera_core::refresh::grant`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Module {
    krate: &'static str,
    path: Vec<String>,
}

impl std::fmt::Display for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.krate)?;
        for part in &self.path {
            write!(f, "::{part}")?;
        }
        Ok(())
    }
}

/// Every source file of every crate, with its module path.
fn modules() -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    for (krate, src) in crates() {
        let mut files = Vec::new();
        files.extend(rust_files(&src));
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let mut path: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if path.last().is_some_and(|l| l == "mod") {
                path.pop();
            }
            if path == ["lib"] || path == ["main"] {
                path.clear();
            }
            // main.rs and lib.rs are both the root of `tessera`; the binary's root is a
            // separate crate that only calls the library, so it is left out.
            if relative == Path::new("main.rs") {
                continue;
            }
            found.insert(Module { krate, path }, file);
        }
    }
    found
}

/// The text without comments, string literals and the unit tests at the end.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every path a file names: `use` trees expanded (`use a::{b, c::d}` gives `a::b` and
/// `a::c::d`), and qualified paths in code (`crate::x::y(…)`, or `child::f(…)` for a module
/// the file declares).
fn paths_in(code: &str, children: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let after = &rest[at..];
        let end = after.find(';').unwrap_or(after.len());
        expand_use_tree(after[..end].trim(), &mut Vec::new(), &mut paths);
        rest = &after[end..];
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (start, _) in code.match_indices("::") {
        // The first segment of a qualified path, found from its first `::`.
        let head_start = code[..start]
            .rfind(|c: char| !is_ident(c))
            .map_or(0, |i| i + 1);
        let before = code[..head_start].chars().last();
        if before == Some(':') {
            continue;
        }
        let head = &code[head_start..start];
        if !matches!(
            head,
            "crate" | "super" | "self" | "tessera_core" | "tessera_proto"
        ) && !children.iter().any(|c| c == head)
        {
            continue;
        }
        let mut path = vec![head.to_string()];
        let mut tail = &code[start..];
        while let Some(next) = tail.strip_prefix("::") {
            let len = next.find(|c: char| !is_ident(c)).unwrap_or(next.len());
            if len == 0 {
                break;
            }
            path.push(next[..len].to_string());
            tail = &next[len..];
        }
        paths.push(path);
    }
    paths
}

/// Where the next `use` item's path starts (after `use ` and any `pub`/`pub(crate)` before it).
fn find_use(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = code[from..].find("use ") {
        let at = from + at;
        let boundary = code[..at]
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '}' || c == '{' || c == ')');
        if boundary {
            return Some(at + 4);
        }
        from = at + 4;
    }
    None
}

fn expand_use_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let close = tree.rfind('}').unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let depth = prefix.len();
        prefix.extend(head);
        for part in split_top_level(inner) {
            expand_use_tree(part, prefix, out);
        }
        prefix.truncate(depth);
    } else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut full = prefix.clone();
        full.extend(
            path.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "*" && *s != "self")
                .map(String::from),
        );
        if !full.is_empty() {
            out.push(full);
        }
    }
}

fn split_top_level(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// The file a path leads to from `from`, if it is one of ours: the longest prefix of the path
/// that is a module with a file.
fn resolve(from: &Module, path: &[String], known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let (krate, mut base, rest): (&'static str, Vec<String>, &[String]) =
        match path.first()?.as_str() {
            // `tessera` re-exports the core's modules under their old names.
            "crate" if from.krate == "tessera" && reexported_from_core(path.get(1), known) => {
                ("tessera_core", Vec::new(), &path[1..])
            }
            "crate" => (from.krate, Vec::new(), &path[1..]),
            "tessera_core" => ("tessera_core", Vec::new(), &path[1..]),
            "tessera_proto" => ("tessera_proto", Vec::new(), &path[1..]),
            "self" => (from.krate, from.path.clone(), &path[1..]),
            "super" => {
                let mut base = from.path.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (from.krate, base, rest)
            }
            // A path from a child module declared in this file (`use issue::Issued` in a mod.rs).
            first
                if known.contains_key(&Module {
                    krate: from.krate,
                    path: from
                        .path
                        .iter()
                        .cloned()
                        .chain([first.to_string()])
                        .collect(),
                }) =>
            {
                (from.krate, from.path.clone(), path)
            }
            _ => return None,
        };
    let mut best = Module {
        krate,
        path: base.clone(),
    };
    for segment in rest {
        base.push(segment.clone());
        let candidate = Module {
            krate,
            path: base.clone(),
        };
        if known.contains_key(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    known.contains_key(&best).then_some(best)
}

/// Whether `tessera::<name>` is a module of the core (re-exported by `tessera`'s lib.rs).
fn reexported_from_core(name: Option<&String>, known: &BTreeMap<Module, PathBuf>) -> bool {
    let Some(name) = name else {
        return false;
    };
    let own = Module {
        krate: "tessera",
        path: vec![name.clone()],
    };
    let core = Module {
        krate: "tessera_core",
        path: vec![name.clone()],
    };
    !known.contains_key(&own) && known.contains_key(&core)
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).expect("readable source");
        let targets = edges.entry(module.clone()).or_default();
        let children: Vec<String> = known
            .keys()
            .filter(|m| {
                m.krate == module.krate
                    && m.path.len() == module.path.len() + 1
                    && m.path.starts_with(&module.path)
            })
            .filter_map(|m| m.path.last().cloned())
            .collect();
        for path in paths_in(&code_of(&text), &children) {
            if let Some(target) = resolve(module, &path, &known)
                && target != *module
            {
                targets.insert(target);
            }
        }
    }
    edges
}

/// Strongly connected components of more than one file (Tarjan), each sorted.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn the_import_picture_of_the_sources_has_no_circle() {
    let edges = graph();
    assert!(
        edges.len() > 40,
        "the sources were not found: {}",
        edges.len()
    );
    let found = circles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let inside: Vec<String> = c
                .iter()
                .flat_map(|from| {
                    edges[from]
                        .iter()
                        .filter(|to| c.contains(to))
                        .map(move |to| format!("    {from} -> {to}"))
                })
                .collect();
            format!(
                "  a circle through {} files:\n{}",
                c.len(),
                inside.join("\n")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "{} circle(s) in the import picture:\n{}",
        found.len(),
        described.join("\n")
    );
}

#[test]
fn no_http_handler_or_cli_command_reaches_the_repository_layer() {
    let edges = graph();
    let is_edge = |m: &Module| m.path.first().is_some_and(|p| p == "http") || m.path == ["cli"];
    let is_repo = |m: &Module| m.path.starts_with(&["db".to_string(), "repo".to_string()]);
    let mut offenders = Vec::new();
    for (from, targets) in &edges {
        if !is_edge(from) {
            continue;
        }
        for to in targets.iter().filter(|t| is_repo(t)) {
            offenders.push(format!("  {from} -> {to}"));
        }
    }
    assert!(
        edges.keys().any(is_edge),
        "no HTTP modules found: the check looks in the wrong place"
    );
    assert!(
        offenders.is_empty(),
        "HTTP and the CLI call use cases, never the repository:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_a_repository_call() {
    let a = Module {
        krate: "tessera",
        path: vec!["a".into()],
    };
    let b = Module {
        krate: "tessera",
        path: vec!["b".into()],
    };
    let known: BTreeMap<Module, PathBuf> =
        [(a.clone(), PathBuf::new()), (b.clone(), PathBuf::new())]
            .into_iter()
            .collect();
    let from_a = paths_in(
        &code_of("use crate::{b::{Thing, other}, c};\nfn f() { crate::b::g() }"),
        &[],
    );
    assert!(
        from_a
            .iter()
            .all(|p| resolve(&a, p, &known).is_none_or(|m| m == b))
    );
    assert!(
        from_a
            .iter()
            .any(|p| resolve(&a, p, &known) == Some(b.clone()))
    );
    let edges: BTreeMap<Module, BTreeSet<Module>> = [
        (a.clone(), [b.clone()].into_iter().collect()),
        (b.clone(), [a.clone()].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    assert_eq!(circles(&edges), vec![vec![a, b]]);
    // A comment or a string naming a path is no import.
    // A child module named in code is a dependency on it.
    assert_eq!(
        paths_in("fn f() { b::g() }", &["b".to_string()]),
        vec![vec!["b", "g"]]
    );
    assert!(paths_in(&code_of("// use crate::b;\nlet s = \"crate::b::x\";"), &[]).is_empty());
}
