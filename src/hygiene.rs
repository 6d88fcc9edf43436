//! Checks on the source itself, so the rules the code keeps stay kept:
//! the one-way flow between modules, and `unsafe` only where it must be,
//! each with the reason it holds.

use std::path::{Path, PathBuf};

/// Most `unsafe` the crates may hold outside their tests. Each one left is
/// something no safe wrapper covers (CPython's API, fork and exec, the
/// shared heartbeat memory, the process title); a new one needs a reason
/// good enough to raise this.
const UNSAFE_BUDGET: usize = 45;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file before its `#[cfg(test)]` module, with their numbers.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn code_part(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// `line` without its string literals (what a message says is not code).
fn without_strings(line: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in line.chars() {
        match (in_string, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, true, _) => escaped = false,
            (_, false, '"') => in_string = !in_string,
            (false, _, c) => out.push(c),
            _ => {}
        }
    }
    out
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

fn workspace_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "upgrade/src", "reload/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
}

#[test]
fn workers_wsgi_and_hooks_import_nothing_from_the_master() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for dir in ["worker", "wsgi", "hooks", "http", "python"] {
        let mut files = Vec::new();
        rust_files(&src.join(dir), &mut files);
        for file in files {
            for (n, line) in code_lines(&file) {
                if code_part(&line).contains("crate::master") {
                    offenders.push(format!("{}:{n}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the data flows master -> worker -> wsgi; move what these need out of master/:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_unsafe_says_why_it_holds_and_they_stay_within_budget() {
    let mut count = 0;
    let mut unexplained = Vec::new();
    for file in workspace_sources() {
        let lines = code_lines(&file);
        for (i, (n, line)) in lines.iter().enumerate() {
            if !has_word(&without_strings(code_part(line)), "unsafe") {
                continue;
            }
            count += 1;
            // The reason sits in the comment just above, or a few lines up
            // when the block is inside a longer statement: up to a blank
            // line, and never one shared with the unsafe before it.
            let explained = lines[i.saturating_sub(12)..i]
                .iter()
                .rev()
                .take_while(|(_, l)| {
                    !l.trim().is_empty() && !has_word(&without_strings(code_part(l)), "unsafe")
                })
                .any(|(_, l)| l.contains("SAFETY:"));
            if !explained {
                unexplained.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "each unsafe needs a `// SAFETY:` comment above it saying why it holds:\n{}",
        unexplained.join("\n")
    );
    assert!(
        count <= UNSAFE_BUDGET,
        "{count} unsafe outside tests, over the budget of {UNSAFE_BUDGET}: use nix, rustix or a safe wrapper"
    );
}
