//! TOML config files (`ferricorn.toml`): the same keys as a Python config,
//! at the top level. TOML is ferricorn's own format, so it is strict where
//! a Python config is lenient: an unknown key is an error that names the
//! line and suggests the setting that was probably meant.

use super::table::{find, SETTINGS};
use super::value::Value;
use super::{FileEntry, Location, Raw, SettingsError};
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub fn parse(path: &Path, text: &str) -> Result<Vec<FileEntry>, SettingsError> {
    let at = |line: Option<usize>| Location::File {
        path: path.to_path_buf(),
        line,
    };
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        SettingsError::invalid(
            at(line),
            format!("TOML syntax error: {}", e.message().trim()),
        )
    })?;
    let mut out = Vec::new();
    for (key, value) in table.get_ref().iter() {
        let name: &str = key.get_ref();
        let line = Some(line_of(text, key.span().start));
        let Some(setting) = find(name) else {
            let hint = match suggest(name) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            return Err(SettingsError::invalid(
                at(line),
                format!("unknown setting `{name}`{hint}"),
            ));
        };
        let v = convert(value.get_ref())
            .map_err(|m| SettingsError::invalid(at(line), format!("{name}: {m}")))?;
        out.push(FileEntry {
            setting,
            raw: Raw::Value(v),
            line,
        });
    }
    Ok(out)
}

fn convert(v: &DeValue<'_>) -> Result<Value, String> {
    Ok(match v {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let parsed = i64::from_str_radix(digits.trim_start_matches('+'), i.radix())
                .map_err(|_| format!("{} is not a usable integer", i.as_str()))?;
            Value::Int(parsed)
        }
        DeValue::Float(f) => Value::Float(
            f.as_str()
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{f} is not a usable number"))?,
        ),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => return Err("dates and times are not setting values".into()),
        DeValue::Array(items) => Value::List(
            items
                .iter()
                .map(|i| convert(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => Value::Dict(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), convert(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// The setting a mistyped key most likely meant: a command-line spelling of
/// a setting first (`access-logfile` is `accesslog`), then the closest name.
pub fn suggest(key: &str) -> Option<&'static str> {
    let norm = key
        .trim_start_matches('-')
        .replace('-', "_")
        .to_ascii_lowercase();
    if let Some(s) = find(&norm) {
        return Some(s.name);
    }
    for s in SETTINGS {
        for flag in s.flags.iter().chain(s.aliases) {
            if flag.starts_with("--") && flag.trim_start_matches('-').replace('-', "_") == norm {
                return Some(s.name);
            }
        }
    }
    let (best, dist) = SETTINGS
        .iter()
        .map(|s| (s.name, edit_distance(&norm, s.name)))
        .min_by_key(|(_, d)| *d)?;
    (dist <= (norm.len() / 3).max(2)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize)
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lines() {
        let text = "# comment\nworkers = 3\nbind = [\"127.0.0.1:8000\"]\numask = 0o22\n[secure_scheme_headers]\nX-PROTO = \"https\"\n";
        let entries = parse(Path::new("f.toml"), text).unwrap();
        let get = |n: &str| entries.iter().find(|e| e.setting.name == n).unwrap();
        assert_eq!(get("workers").line, Some(2));
        assert!(matches!(&get("workers").raw, Raw::Value(Value::Int(3))));
        assert!(matches!(&get("umask").raw, Raw::Value(Value::Int(18))));
        assert!(
            matches!(&get("secure_scheme_headers").raw, Raw::Value(Value::Dict(d)) if d[0].0 == "X-PROTO")
        );
    }

    #[test]
    fn unknown_keys_suggest() {
        assert_eq!(suggest("worker"), Some("workers"));
        assert_eq!(suggest("access-logfile"), Some("accesslog"));
        assert_eq!(suggest("log_file"), Some("errorlog"));
        assert_eq!(suggest("preload"), Some("preload_app"));
        assert_eq!(suggest("keep_alive"), Some("keepalive"));
        assert_eq!(suggest("limit-request-line"), Some("limit_request_line"));
        assert_eq!(suggest("zzzzzzzzzzzzzzzzzz"), None);
        let err = parse(Path::new("f.toml"), "workers = 2\n\ntimeuot = 5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.toml:3: unknown setting `timeuot`; did you mean `timeout`?"
        );
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = parse(Path::new("f.toml"), "workers = 2\nbind = [\n").unwrap_err();
        assert!(err.to_string().starts_with("f.toml:"), "{err}");
    }
}
