//! The files made from the option table and the metrics list: README's option and
//! metric tables, the Node `.d.ts` option type and the Python `Options` type. This test
//! regenerates each and fails when a committed copy drifts; `make generated` (which sets
//! `CORRAL_BLESS=1`) rewrites them.

use std::path::{Path, PathBuf};

use corral::metrics;
use corral::options::{Applies, Front, Kind, OPTIONS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn applies(a: Applies) -> &'static str {
    match a {
        Applies::Both => "serve and handoff",
        Applies::Serve => "serve",
        Applies::Handoff => "handoff",
    }
}

fn readme_options() -> String {
    let mut o = String::from("| option | values | default | applies to | |\n| --- | --- | --- | --- | --- |\n");
    for opt in OPTIONS {
        let range = opt.range(&Front::RUST).replace(" (text with a unit: ns, us, ms, s, m, h)", "");
        let models = opt
            .models
            .map(|m| format!(" ({} model)", m.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")))
            .unwrap_or_default();
        o += &format!(
            "| `{}` | {} | {} | {}{models} | {} |\n",
            opt.name,
            range,
            opt.default,
            applies(opt.applies),
            opt.doc
        );
    }
    o
}

fn readme_metrics() -> String {
    let mut o = String::from("| metric | kind | per | unit | |\n| --- | --- | --- | --- | --- |\n");
    for m in metrics::all() {
        o += &format!(
            "| `{}` | {} | {} | {} | {} |\n",
            m.name,
            m.kind.name(),
            m.scope().name(),
            if m.unit.is_empty() { "count" } else { m.unit },
            m.help
        );
    }
    o
}

fn node_options() -> String {
    let mut o = String::from("export interface EngineOptions {\n");
    for opt in OPTIONS.iter().filter(|o| !o.cpu_pool) {
        let ty = match opt.kind {
            Kind::Bool => "boolean".to_string(),
            Kind::Count { .. } => "number".to_string(),
            Kind::Duration { .. } => "number | string".to_string(),
            Kind::Choice(names) => names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(" | "),
            Kind::Text { .. } => "string".to_string(),
        };
        o += &format!(
            "  /** {} {}. Default {}; applies to {} engines. */\n  {}?: {ty}\n",
            opt.doc,
            capital(&opt.range(&Front::NODE)),
            opt.default,
            applies(opt.applies),
            Front::NODE.spell(opt.name)
        );
    }
    o + "}\n"
}

fn python_options() -> String {
    let mut o = String::from(
        "class Options(TypedDict, total=False):\n    \"\"\"The engine options every entry point takes by keyword.\"\"\"\n\n",
    );
    for opt in OPTIONS {
        let ty = match opt.kind {
            Kind::Bool => "bool".to_string(),
            Kind::Count { .. } => "int".to_string(),
            Kind::Duration { .. } => "Union[float, str]".to_string(),
            Kind::Choice(names) => {
                format!("Literal[{}]", names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))
            }
            Kind::Text { .. } => "str".to_string(),
        };
        o += &format!(
            "    # {} {}. Default {}; applies to {} engines.\n    {}: {ty}\n",
            opt.doc,
            capital(&opt.range(&Front::PYTHON)),
            opt.default,
            applies(opt.applies),
            opt.name
        );
    }
    o
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Replaces the text between the `begin` and `end` marker lines of `path` with `body`,
/// or (without CORRAL_BLESS) checks that it is already there.
fn check(path: &str, begin: &str, end: &str, body: &str) -> Result<(), String> {
    let p = root().join(path);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{path}: {e}"))?;
    let b = text.find(begin).ok_or(format!("{path}: no {begin:?} marker"))? + begin.len();
    let e = text[b..].find(end).ok_or(format!("{path}: no {end:?} marker"))? + b;
    let want = format!("\n{body}");
    if text[b..e] == want {
        return Ok(());
    }
    if std::env::var_os("CORRAL_BLESS").is_some() {
        std::fs::write(&p, format!("{}{want}{}", &text[..b], &text[e..])).map_err(|e| e.to_string())?;
        return Ok(());
    }
    Err(format!("{path} is out of date with the option table or metrics list: run `make generated` and commit"))
}

#[test]
fn generated_files_match_the_tables() {
    let results = [
        check("README.md", "<!-- options:begin -->", "<!-- options:end -->", &readme_options()),
        check("README.md", "<!-- metrics:begin -->", "<!-- metrics:end -->", &readme_metrics()),
        check("bindings/node/index.d.ts", "// options:begin (generated)", "// options:end", &node_options()),
        check(
            "bindings/python/python/corral/_options.py",
            "# options:begin (generated)",
            "# options:end",
            &python_options(),
        ),
    ];
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
