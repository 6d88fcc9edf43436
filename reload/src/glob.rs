//! Just enough globbing for `--reload-extra-file`: `*` and `?` within a
//! path component, `**` for any number of directories. Patterns are
//! expanded again on every reload, so files created later are found.

use std::path::{Component, Path, PathBuf};

pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A pattern split into its literal directory prefix and the rest.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The deepest directory with no wildcard in it.
    pub root: PathBuf,
    parts: Vec<String>,
}

impl Pattern {
    pub fn new(pattern: &str, base: &Path) -> Pattern {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let mut root = PathBuf::new();
        let mut parts = Vec::new();
        for c in full.components() {
            let text = c.as_os_str().to_string_lossy().to_string();
            if parts.is_empty() && !is_pattern(&text) {
                match c {
                    Component::Normal(_) | Component::RootDir | Component::Prefix(_) => {
                        root.push(c.as_os_str())
                    }
                    Component::ParentDir => {
                        root.pop();
                    }
                    Component::CurDir => {}
                }
            } else {
                parts.push(text);
            }
        }
        Pattern { root, parts }
    }

    /// Files matching now.
    pub fn expand(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if self.parts.is_empty() {
            if self.root.is_file() {
                out.push(self.root.clone());
            }
            return out;
        }
        walk(&self.root, &self.parts, &mut out);
        out.sort();
        out
    }

    /// Whether `path` matches (for files created after the last expansion).
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.root) else {
            return false;
        };
        let names: Vec<String> = rest
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        match_parts(&self.parts, &names)
    }

    /// Whether files under the (new) directory `dir` could match: it lies
    /// below the literal root and a directory part of the pattern follows.
    pub fn may_hold(&self, dir: &Path) -> bool {
        dir.starts_with(&self.root) && dir != self.root && self.parts.len() > 1
    }

    /// Directories in which a new matching file could appear.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out = vec![self.root.clone()];
        if self
            .parts
            .iter()
            .any(|p| p.contains('*') || p.contains('?'))
            && self.parts.len() > 1
        {
            collect_dirs(&self.root, &mut out, 0);
        }
        out
    }
}

pub(crate) fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir()
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.') || n == "__pycache__")
        {
            out.push(p.clone());
            collect_dirs(&p, out, depth + 1);
        }
    }
}

fn walk(dir: &Path, parts: &[String], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if first == "**" {
        // Zero directories...
        walk(dir, rest, out);
        // ...or one more, still under "**".
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    walk(&p, parts, out);
                }
            }
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !wildcard(first, &name) {
            continue;
        }
        let p = e.path();
        if rest.is_empty() {
            if p.is_file() {
                out.push(p);
            }
        } else if p.is_dir() {
            walk(&p, rest, out);
        }
    }
}

fn match_parts(parts: &[String], names: &[String]) -> bool {
    match parts.split_first() {
        None => names.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=names.len()).any(|skip| match_parts(rest, &names[skip..]))
        }
        Some((first, rest)) => names
            .split_first()
            .is_some_and(|(n, others)| wildcard(first, n) && match_parts(rest, others)),
    }
}

/// `*` and `?` within one name; a leading `.` must be matched literally.
fn wildcard(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard("*.html", "index.html"));
        assert!(!wildcard("*.html", "index.htm"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("*", ".hidden"));
    }

    #[test]
    fn patterns_expand_and_match_recursively() {
        let dir = std::env::temp_dir().join(format!("glob-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("templates/admin")).unwrap();
        for f in [
            "templates/base.html",
            "templates/admin/list.html",
            "templates/notes.txt",
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let flat = Pattern::new("templates/*.html", &dir);
        assert_eq!(flat.expand(), vec![dir.join("templates/base.html")]);
        let deep = Pattern::new("templates/**/*.html", &dir);
        assert_eq!(
            deep.expand(),
            vec![
                dir.join("templates/admin/list.html"),
                dir.join("templates/base.html")
            ]
        );
        assert!(deep.matches(&dir.join("templates/admin/new.html")));
        assert!(!deep.matches(&dir.join("templates/admin/new.txt")));
        assert!(deep.dirs().contains(&dir.join("templates/admin")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
