//! The server's modules depend on each other one way only: a graph of the
//! `use` lines of `src/` (each path resolved to the module file it names)
//! has no cycle, and the engine uses neither HTTP, Redis, SQLite nor any
//! module that assembles or transports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs`
/// are `crate::a::b`, `src/lib.rs` is `crate`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    std::iter::once("crate".to_string()).chain(parts).collect::<Vec<_>>().join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
            out.push(path);
        }
    }
}

/// The `use` statements of a file's own module (inline test modules, which
/// come last, are left out), each as one line of text without `use`.
fn use_statements(text: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(acc) = current.as_mut() {
            acc.push_str(trimmed);
        } else if let Some(rest) = trimmed.split_once("use ").filter(|(before, _)| is_visibility(before)) {
            current = Some(rest.1.to_string());
        }
        if current.as_ref().is_some_and(|acc| acc.ends_with(';')) {
            out.push(current.take().unwrap_or_default().trim_end_matches(';').to_string());
        }
    }
    out
}

fn is_visibility(before: &str) -> bool {
    let before = before.trim();
    before.is_empty() || before == "pub" || (before.starts_with("pub(") && before.ends_with(')'))
}

/// Paths written inline in code (`crate::a::b(..)`, `super::c::D`), outside
/// `use` lines and comments.
fn inline_paths(text: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//") && !l.contains("use ")) {
        for start in ["crate::", "super::"] {
            let mut rest = line;
            while let Some(at) = rest.find(start) {
                let tail = &rest[at..];
                let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
                out.push(tail[..end].trim_end_matches(':').to_string());
                rest = &tail[end..];
            }
        }
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(expand).map(|p| format!("{prefix}{p}")).collect()
}

/// The module a `use` path names, as seen from module `from`; `None` for
/// paths outside the crate.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let path = path.split(" as ").next().unwrap_or(path);
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = from.split("::").map(str::to_string).collect();
    match segs.first().copied() {
        Some("crate") => {
            base = vec!["crate".into()];
            segs.remove(0);
        }
        Some("self") => {
            segs.remove(0);
        }
        Some("super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        Some(first) => {
            let child = format!("{from}::{first}");
            if !modules.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    let mut best = base.join("::");
    let mut cur = base;
    for seg in segs {
        cur.push(seg.to_string());
        let name = cur.join("::");
        if modules.contains(&name) {
            best = name;
        } else {
            break;
        }
    }
    Some(best)
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("read source");
        let edges = graph.entry(from.clone()).or_default();
        let paths = use_statements(&text).iter().flat_map(|s| expand(s)).chain(inline_paths(&text)).collect::<Vec<_>>();
        {
            for path in paths {
                if let Some(to) = resolve(&from, &path, &modules)
                    && to != from
                {
                    edges.insert(to);
                }
            }
        }
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    assert!(graph.len() > 30, "too few modules found: {graph:?}");
    assert!(graph["crate::server"].contains("crate::redis"), "the parser sees the assembly: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("modules import each other: {}", cycle.join(" -> "));
    }
    for (module, uses) in &graph {
        println!("{module} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
}

#[test]
fn the_engine_knows_nothing_of_http_redis_or_sqlite() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join("engine");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 15);
    let banned = ["redis", "rusqlite", "axum", "hyper", "tower_http", "leptos", "tokio_tungstenite"];
    let outside = ["crate::redis", "crate::sqlite", "crate::transport", "crate::server", "crate::config"];
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for stmt in use_statements(&text) {
            let first = stmt.trim_start_matches("::").split("::").next().unwrap_or_default();
            assert!(!banned.contains(&first), "{}: use {stmt}", file.display());
            assert!(!outside.iter().any(|o| stmt.starts_with(o)), "{}: use {stmt}", file.display());
        }
    }
}

#[test]
fn the_checker_finds_a_cycle_and_expands_groups() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(expand("super::{a::{B, C}, d}"), ["super::a::B", "super::a::C", "super::d"]);
    let stmts = use_statements("use a::b;\npub(super) use crate::{\n    x,\n    y,\n};\n#[cfg(test)]\nuse z;");
    assert_eq!(stmts, ["a::b", "crate::{x,y,}"]);
    assert_eq!(
        inline_paths("let x = crate::redis::connect(a, super::b::C);\n// crate::no"),
        ["crate::redis::connect", "super::b::C"]
    );
}
