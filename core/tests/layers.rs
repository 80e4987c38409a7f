//! Keeps the house's layering (DESIGN.md, "Rooms"): reads core/src/**.rs, collects each
//! top-level room's references to other rooms (`crate::<room>`, and `crate::<Name>` for
//! what lib.rs re-exports from a room), and fails, naming file:line, when a room uses
//! one it may not. Also keeps the fronts' rule: each front (ffi, the bindings, the
//! bench) depends on the core and on no other front.
//!
//! The rules, floor by floor (a room may use the rooms listed for it, nothing else):
//! - `sys`, `error`, `sync`: nothing of ours (the floor).
//! - `config`: only the floor: the option values it names are defined in it, so it
//!   imports nothing above it.
//! - `sched`, `fair`, `stats`, `frame`, `cpu`, `accept`, `tls`: what is listed below; none of them
//!   reaches into the loop.
//! - `engine`, `conn`, `worker`, `handler`: the one loop (engine/shared.rs says why);
//!   they may use each other and everything below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FLOOR: &[&str] = &["error", "sync", "sys"];
const LOOP: &[&str] = &["engine", "conn", "worker", "handler"];

/// The rooms each room outside the loop may use, besides the floor.
fn allowed(room: &str) -> Option<&'static [&'static str]> {
    Some(match room {
        "sys" | "error" | "sync" => &[],
        "config" => &[],
        "sched" => &[],
        "stats" => &[],
        "frame" => &["config"],
        "fair" => &[],
        "cpu" => &["sched", "fair"],
        "accept" => &["config", "stats"],
        // TLS sessions are sans-IO: the connection (in the loop) moves their bytes.
        "tls" => &["config"],
        // The README's and docs/ pages' Rust blocks, compiled only as doctests.
        "doc_examples" => &[],
        _ => return None,
    })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("core/src is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The room a source file belongs to: its top-level folder, or its own name.
fn room_of(rel: &Path) -> String {
    let first = rel.components().next().expect("a path under src").as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Code without comments: `//` to the end of the line (doc comments included, since a
/// doc link is not a dependency). Good enough for this crate, which has no `//` inside
/// string literals next to a `crate::` path.
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// What lib.rs re-exports, by name, and from which room (`pub use room::...::{A, B}`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let text: String = lib.lines().map(code).collect::<Vec<_>>().join("\n");
    for stmt in text.split(';') {
        let Some(i) = stmt.find("pub use ") else { continue };
        let path = stmt[i + "pub use ".len()..].trim();
        let room = ident_at(path).to_string();
        let names = match (path.find('{'), path.rfind('}')) {
            (Some(a), Some(b)) => path[a + 1..b].to_string(),
            _ => path.rsplit("::").next().unwrap_or("").to_string(),
        };
        for n in names.split(',') {
            let n = n.trim();
            let n = n.rsplit(" as ").next().unwrap_or(n).trim();
            let n = n.rsplit("::").next().unwrap_or(n).trim();
            if !n.is_empty() && n != "self" {
                map.insert(n.to_string(), room.clone());
            }
        }
    }
    map
}

#[test]
fn rooms_use_only_the_rooms_below_them() {
    let src = src();
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let rooms: BTreeSet<String> =
        all.iter().map(|p| room_of(p.strip_prefix(&src).unwrap())).filter(|r| r != "lib").collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let names = reexports(&lib);

    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    for path in &all {
        let rel = path.strip_prefix(&src).unwrap();
        let room = room_of(rel);
        if room == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let line = code(line);
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let mut targets = Vec::new();
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a::X, b}`: each path's first segment.
                    let inner = &group[..group.find('}').unwrap_or(group.len())];
                    targets.extend(inner.split(',').map(|s| ident_at(s.trim()).to_string()));
                } else {
                    targets.push(ident_at(rest).to_string());
                }
                for t in targets {
                    let target = if rooms.contains(&t) {
                        t
                    } else if let Some(r) = names.get(&t) {
                        r.clone()
                    } else {
                        continue;
                    };
                    if target == room {
                        continue;
                    }
                    uses.entry(room.clone()).or_default().insert(target.clone());
                    if LOOP.contains(&room.as_str())
                        || (FLOOR.contains(&target.as_str()) && !FLOOR.contains(&room.as_str()))
                    {
                        continue;
                    }
                    let ok = allowed(&room).is_some_and(|a| a.contains(&target.as_str()));
                    if !ok {
                        broken.push(format!(
                            "core/src/{}:{}: `{room}` uses `{target}`, which is not below it: {}",
                            rel.display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    for room in &rooms {
        assert!(
            LOOP.contains(&room.as_str()) || allowed(room).is_some(),
            "core/src/{room}: a room without a rule; add it to `allowed` in core/tests/layers.rs"
        );
    }
    if !broken.is_empty() {
        let map: Vec<String> = uses
            .iter()
            .map(|(r, t)| format!("  {r} -> {}", t.iter().cloned().collect::<Vec<_>>().join(", ")))
            .collect();
        panic!("the layering is broken:\n{}\n\nwhat each room uses now:\n{}", broken.join("\n"), map.join("\n"));
    }
}

#[test]
fn each_front_depends_on_the_core_and_no_other_front() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let core = root.join("core").canonicalize().unwrap();
    for front in ["ffi", "bindings/python", "bindings/node", "bench"] {
        let dir = root.join(front);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for (n, line) in manifest.lines().enumerate() {
            let Some(i) = line.find("path = \"") else { continue };
            let p = &line[i + "path = \"".len()..];
            let p = &p[..p.find('"').unwrap()];
            let to = dir.join(p).canonicalize().unwrap_or_else(|_| dir.join(p));
            assert!(
                to == core || to.starts_with(&dir),
                "{front}/Cargo.toml:{}: depends on {}; a front depends on the core only (DESIGN.md, Rooms)",
                n + 1,
                to.display()
            );
        }
    }
}
