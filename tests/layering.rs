//! The layering of `src/`: which top-level modules may use which, and no import cycles.
//!
//! Reads every `src/**/*.rs` of the library (not the binaries: `src/main.rs` and `src/bin/`
//! use the crate from outside), collects the top-level module each `crate::X` / `super::…`
//! path names, and checks the graph. Doc comments count (an intra-doc link breaks when its
//! target moves); plain `//` comment lines do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For each module named here, the only other top-level modules it may use. Modules not named
/// are unrestricted (but still may not form a cycle).
const ALLOWED: &[(&str, &[&str])] = &[
    // Newtypes and stored states at the bottom of everything.
    ("domain", &[]),
    // The translation catalogue and CLDR dates: words and dates in the reader's language.
    ("i18n", &[]),
    // Configuration parsed into domain types at load (the catalogue is loaded with it).
    ("config", &["domain", "i18n"]),
    // The only module with SQL: domain types in and out, nothing of how mail is made or sent.
    // (A list's schedule is parsed into a `schedule::Schedule` when read; `test_tools` holds
    // the throwaway PostgreSQL cluster its tests run on.)
    (
        "store",
        &["domain", "config", "schedule", "test_tools", "i18n"],
    ),
    // Crontab lines in a time zone.
    ("schedule", &["domain"]),
    // Which stories an edition carries (pure).
    ("digest", &["domain", "config"]),
    // Maud HTML and plain text from views (no store, no mail).
    ("render", &["domain", "config", "digest", "i18n"]),
    // MIME, DKIM and transports know nothing of the store, the edition or rendering.
    // (`test_tools` is the unit tests' rule for external verifiers such as dkimpy.)
    ("mail", &["domain", "config", "test_tools"]),
    // Building and recording editions: stories from the store, rendered, headers for mail.
    (
        "edition",
        &["domain", "config", "store", "digest", "render", "mail"],
    ),
    // Claims, workers, retry policy, outcomes: on top of the store, editions and mail.
    (
        "delivery",
        &[
            "domain", "config", "store", "edition", "mail", "render", "i18n",
        ],
    ),
    // What comes back (DSNs, complaints, mailto: unsubscribes): read with mail's VERP, matched
    // against the store and delivery's Message-IDs, never sending anything.
    (
        "bounces",
        &["domain", "config", "store", "mail", "delivery"],
    ),
    // Bounces, complaints and mailto unsubscribes coming back: matched to deliveries
    // (Message-IDs, VERP) and recorded in the store.
    (
        "bounces",
        &["domain", "config", "store", "delivery", "mail"],
    ),
    // Newsroom intake: feeds fetched, parsed by import's readers, stored through the store.
    ("intake", &["domain", "config", "store", "import"]),
    // Reader pages and operator endpoints: the store, never the sender. The CMS API records
    // breaking editions through `edition` (which only writes rows the sender then delivers).
    (
        "web",
        &[
            "domain", "config", "store", "render", "schedule", "edition", "i18n",
        ],
    ),
    // The newsroom console: the store's users and sessions, breaking editions through
    // `edition`, served with the reader pages' server code (`web`); subscriber CSV through
    // `intake` and `import`'s writer, as the CLI does; a list's language from `i18n`; never
    // the sender.
    (
        "console",
        &[
            "domain", "config", "store", "render", "schedule", "edition", "web", "intake",
            "import", "i18n",
        ],
    ),
];

/// Files left out of the graph, each with the reason.
const EXEMPT: &[(&str, &str)] = &[
    // The unit tests' tool rule (compiled only for tests) reads a file under tests/.
    ("src/test_tools.rs", "test-only"),
];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules `src/lib.rs` declares.
fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.trim().to_owned())
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.expect("read a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/mail/transport/mod.rs` is `[mail, transport]`,
/// `src/mail/dkim.rs` is `[mail, dkim]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_owned());
        }
    }
    parts
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifiers a path starting at `rest` names at its first segment: one for `x::…`,
/// each group member's first segment for `{x::a, y}`.
fn first_segments(rest: &str) -> Vec<String> {
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'{') {
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &rest[1..end];
        let mut items = Vec::new();
        let mut depth = 0usize;
        let mut start = 0;
        for (i, b) in inner.bytes().enumerate() {
            match b {
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    items.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&inner[start..]);
        return items
            .into_iter()
            .filter_map(|item| {
                let item = item.trim_start();
                let n = item.bytes().take_while(|b| is_ident_byte(*b)).count();
                (n > 0).then(|| item[..n].to_owned())
            })
            .collect();
    }
    let n = bytes.iter().take_while(|b| is_ident_byte(**b)).count();
    if n == 0 {
        Vec::new()
    } else {
        vec![rest[..n].to_owned()]
    }
}

/// The top-level modules (any identifier; the caller filters) that `text`, the source of the
/// module at `path`, refers to through `crate::` or enough `super::` to reach the crate root.
fn references(text: &str, path: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Joined back with spaces so that a `use` group spread over lines reads as one.
    let code: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//") || t.starts_with("///") || t.starts_with("//!")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_start = i == 0 || !is_ident_byte(bytes[i - 1]);
        if !at_start || !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        if let Some(after) = rest.strip_prefix("crate::") {
            found.extend(first_segments(after));
            i += "crate::".len();
            continue;
        }
        if rest.starts_with("super::") {
            let mut ups = 0;
            let mut after = rest;
            while let Some(r) = after.strip_prefix("super::") {
                ups += 1;
                after = r;
            }
            if ups >= path.len() {
                found.extend(first_segments(after));
            }
            i += rest.len() - after.len();
            continue;
        }
        i += 1;
    }
    found
}

/// module -> used module -> files that use it.
fn graph() -> Graph {
    let modules = top_level_modules();
    assert!(
        modules.contains("mail") && modules.contains("domain"),
        "src/lib.rs declares {modules:?}"
    );
    let root = src();
    let mut files = Vec::new();
    for m in &modules {
        rust_files(&root.join(m), &mut files);
        let single = root.join(format!("{m}.rs"));
        if single.is_file() {
            files.push(single);
        }
    }
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src/").to_owned();
        let shown = format!("src/{}", rel.display());
        if EXEMPT.iter().any(|(p, _)| *p == shown) {
            continue;
        }
        let path = module_path(&rel);
        let from = path[0].clone();
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let uses = g.entry(from.clone()).or_default();
        for to in references(&text, &path) {
            if to != from && modules.contains(&to) {
                uses.entry(to).or_default().insert(shown.clone());
            }
        }
    }
    g
}

/// Every cycle reachable by depth-first search, as `a -> b -> … -> a`.
fn cycles(g: &Graph) -> Vec<String> {
    fn visit(
        g: &Graph,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_owned());
            out.push(cycle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_owned());
        for next in g.get(node).into_iter().flat_map(|m| m.keys()) {
            visit(g, next, stack, done, out);
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in g.keys() {
        visit(g, node, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let g = graph();
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles between top-level modules of src/:\n  {}\nfiles per edge: {g:#?}",
        found.join("\n  ")
    );
}

#[test]
fn modules_use_only_what_the_layering_table_allows() {
    let g = graph();
    let modules = top_level_modules();
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        assert!(
            modules.contains(*module),
            "the table names {module}, which src/lib.rs does not declare"
        );
        for (used, files) in g.get(*module).into_iter().flatten() {
            if !allowed.contains(&used.as_str()) {
                wrong.push(format!("{module} uses {used} in {files:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Not vacuous: the scanner does see mail's real dependencies.
    assert!(
        g["mail"].contains_key("domain") && g["mail"].contains_key("config"),
        "{:?}",
        g["mail"]
    );
}

#[test]
fn exempt_files_exist() {
    for (p, why) in EXEMPT {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(p).is_file(),
            "{p} is exempt ({why}) but gone: drop it from EXEMPT"
        );
    }
}

#[test]
fn references_are_found_in_groups_paths_and_docs_but_not_plain_comments() {
    let text = "use crate::{config::{self, Smtp}, domain::EmailAddress};\n\
                use crate::render\n    ::Template;\n\
                // crate::store is only mentioned\n\
                /// See [`crate::edition::Edition`].\n\
                fn f() { let _ = super::super::web::x; super::dkim::y(); }\n";
    let found = references(text, &["mail".into(), "transport".into()]);
    let want: BTreeSet<String> = ["config", "domain", "render", "edition", "web"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    // `crate::render\n    ::Template` is split across lines: the module name still counts.
    assert_eq!(found, want);
    assert_eq!(
        module_path(Path::new("mail/transport/mod.rs")),
        ["mail", "transport"]
    );
    assert_eq!(module_path(Path::new("domain.rs")), ["domain"]);
}
