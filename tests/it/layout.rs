//! The layout stays one way down: no two modules of the crate import each other, directly or
//! around a loop. Checked on the source itself, so a change that adds a cycle fails here.
//!
//! Every path a module names (`crate::…`, `super::…`, `self::…`, in `use` or inline) is
//! resolved to the module it reaches. An edge counts between siblings — modules with the same
//! parent — after lifting both ends to the children of their nearest common ancestor; a module
//! using its own parent or child is structure, not a cycle. Test code (`#[cfg(test)] mod tests`)
//! is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["store", "db"]`; the crate root is `[]`.
type Module = Vec<String>;

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let modules: BTreeMap<Module, PathBuf> =
        files.into_iter().filter_map(|file| Some((module_of(&src, &file)?, file))).collect();
    assert!(modules.len() > 30, "found only {} modules under {}", modules.len(), src.display());
    let known: BTreeSet<Module> = modules.keys().cloned().collect();

    // Sibling edges, grouped by the parent they share.
    let mut edges: BTreeMap<Module, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read source");
        for target in references(&code_only(&text), module) {
            let target = longest_known(&known, &target);
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == target.len() {
                continue; // itself, an ancestor or a descendant
            }
            let parent = module[..common].to_vec();
            edges
                .entry(parent)
                .or_default()
                .insert((module[common].clone(), target[common].clone()));
        }
    }
    assert!(
        edges.get(&Vec::new()).is_some_and(|top| top.contains(&("server".into(), "mcp".into()))),
        "the checker no longer sees server → mcp: {edges:?}"
    );

    let mut cycles = Vec::new();
    for (parent, group) in &edges {
        if let Some(cycle) = find_cycle(group) {
            let place = if parent.is_empty() { "crate".to_owned() } else { parent.join("::") };
            cycles.push(format!("in {place}: {}", cycle.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles between modules:\n{}", cycles.join("\n"));
}

/// The store's tables, by room. Every table the migrations create is in exactly one list.
const ACCESS_TABLES: &[&str] = &[
    "workspaces",
    "owner_credentials",
    "mcp_keys",
    "audit_events",
    "oauth_clients",
    "oauth_sessions",
    "oauth_codes",
    "key_calls",
    "key_usage_hours",
    "key_origins",
    "members",
    "member_roles",
    "member_credentials",
    "invitations",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "workspace_policies",
    "audit_sinks",
    // 0016 rebuilds key_calls under this name, then renames it back.
    "key_calls_rebuilt",
];
const CONTENT_TABLES: &[&str] = &[
    "journeys",
    "stages",
    "steps",
    "items",
    "item_links",
    "comments",
    "personas",
    "journey_personas",
    "search_docs",
    "search_fts",
    "hidden_docs",
    "workspace_counts",
];

/// The store is two rooms (see `src/store/mod.rs`): the content room reaches the access room
/// only through `store::access::edge`, the access room never reaches the content room, and no
/// statement of the content room names a table of the access room.
#[test]
fn the_content_room_reaches_the_access_room_only_through_its_edge() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let modules: BTreeMap<Module, PathBuf> =
        files.into_iter().filter_map(|file| Some((module_of(&src, &file)?, file))).collect();
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    let room = |name: &str| vec!["store".to_owned(), name.to_owned()];
    let (access, content) = (room("access"), room("content"));
    let edge: Module = [access.clone(), vec!["edge".to_owned()]].concat();
    assert!(known.contains(&edge), "store::access::edge is gone");

    let mut crossings = Vec::new();
    let mut tables_named = Vec::new();
    let mut content_reaches_edge = false;
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read source");
        let code = code_only(&text);
        for target in references(&code, module) {
            let target = longest_known(&known, &target);
            if module.starts_with(&content) && target.starts_with(&access) {
                if target == edge {
                    content_reaches_edge = true;
                } else {
                    crossings.push(format!("{} → {}", module.join("::"), target.join("::")));
                }
            }
            if module.starts_with(&access) && target.starts_with(&content) {
                crossings.push(format!("{} → {}", module.join("::"), target.join("::")));
            }
        }
        if module.starts_with(&content) {
            for table in ACCESS_TABLES {
                if names_table(&code, table) {
                    tables_named.push(format!("{} names {table}", module.join("::")));
                }
            }
        }
    }
    assert!(content_reaches_edge, "the checker no longer sees content → access::edge");
    assert!(crossings.is_empty(), "the rooms cross outside the edge:\n{}", crossings.join("\n"));
    assert!(
        tables_named.is_empty(),
        "the content room's SQL names the access room's tables (ask access::edge):\n{}",
        tables_named.join("\n")
    );

    // Every table the migrations create belongs to one room, so a new one must be placed.
    let migrations = src.join("store/migrations/sqlite");
    let mut created = BTreeSet::new();
    for entry in std::fs::read_dir(&migrations).expect("read migrations").flatten() {
        let sql = std::fs::read_to_string(entry.path()).expect("read migration");
        for line in sql.lines() {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("CREATE TABLE ")
                .or_else(|| line.strip_prefix("CREATE VIRTUAL TABLE "));
            if let Some(rest) = rest {
                let rest = rest.trim_start_matches("IF NOT EXISTS ");
                let name: String =
                    rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                created.insert(name);
            }
        }
    }
    assert!(created.contains("mcp_keys") && created.contains("items"), "{created:?}");
    for table in &created {
        let placed = ACCESS_TABLES.contains(&table.as_str()) as u8
            + CONTENT_TABLES.contains(&table.as_str()) as u8;
        assert_eq!(placed, 1, "the table {table} must be in exactly one room's list");
    }
}

/// Whether `code` names `table` inside a string literal that reads as SQL.
fn names_table(code: &str, table: &str) -> bool {
    string_literals(code).iter().any(|literal| {
        let sql = ["SELECT", "INSERT", "UPDATE", "DELETE", "FROM", "JOIN"]
            .iter()
            .any(|word| literal.contains(word));
        sql && literal.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == table)
    })
}

/// The text of each `"…"` literal in `code` (escapes kept as written; `'"'` is not one).
fn string_literals(code: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = code.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == '"' && previous != '\\' && !(previous == '\'' && chars.peek() == Some(&'\'')) {
            let mut literal = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        literal.push(c);
                        literal.extend(chars.next());
                    }
                    '"' => break,
                    _ => literal.push(c),
                }
            }
            literals.push(literal);
            previous = '"';
        } else {
            previous = c;
        }
    }
    literals
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/db/mod.rs` → `store::db`; `src/lib.rs` → the root; `src/main.rs` is the binary.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> =
        relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    match parts.last().map(String::as_str) {
        Some("main") if parts.len() == 1 => return None,
        Some("lib") if parts.len() == 1 => parts.clear(),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts)
}

/// The source without whole-line comments and without the test module.
fn code_only(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end].lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every module path named in `code`, resolved from `module`.
fn references(code: &str, module: &Module) -> Vec<Module> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let start = ["crate::", "super::", "self::"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min_by_key(|(i, _)| *i);
        let Some((offset, _)) = start else { break };
        let begin = at + offset;
        let word_before =
            begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_');
        let (paths, consumed) = parse_path(&code[begin..]);
        at = begin + consumed.max(1);
        if word_before {
            continue;
        }
        for path in paths {
            if let Some(resolved) = resolve(module, &path) {
                found.push(resolved);
            }
        }
    }
    found
}

/// Reads `a::b::{c, d::e}` into its full paths; returns them and how many bytes it read.
fn parse_path(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        let word_end = text[i..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| i + e);
        if word_end > i {
            segments.push(text[i..word_end].to_owned());
        }
        i = word_end;
        if text[i..].starts_with("::{") {
            // A group: each member is a path below `segments`.
            let mut depth = 0;
            let open = i + 2;
            let mut close = open;
            for (k, b) in bytes.iter().enumerate().skip(open) {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut paths = Vec::new();
            for member in split_top_level(&text[open + 1..close]) {
                let (inner, _) = parse_path(member.trim());
                for tail in inner {
                    paths.push(segments.iter().cloned().chain(tail).collect());
                }
            }
            return (paths, close + 1);
        }
        if text[i..].starts_with("::") {
            i += 2;
            continue;
        }
        return (vec![segments], i);
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// A path as written in `module` → the absolute path it names.
fn resolve(module: &Module, path: &[String]) -> Option<Module> {
    let mut base: Module = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            base = module.clone();
            rest = &path[1..];
        }
        Some("super") => {
            base = module.clone();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    Some(base)
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_known(known: &BTreeSet<Module>, path: &Module) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// A cycle in a directed graph, as the names along it.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for to in next.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(to, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        if let Some(cycle) = visit(start, &next, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}
