//! docs/settings.md, generated from the table so the reference cannot drift
//! from what the server accepts. A unit test fails when the file is stale;
//! `FERRICORN_UPDATE_DOCS=1 cargo test --lib settings::docs` rewrites it.

use super::table::{Applies, Default, Kind, Section, Setting, SETTINGS};

fn default_text(d: Default) -> String {
    match d {
        Default::None => "`None`".into(),
        Default::Bool(b) => format!("`{}`", if b { "True" } else { "False" }),
        Default::Int(n) => format!("`{n}`"),
        Default::Float(x) => format!("`{:?}`", x),
        Default::Str(s) => format!("`{}`", s.replace('`', "\\`")),
        Default::List([]) => "`[]`".into(),
        Default::List(items) => format!("`{:?}`", items),
        Default::Dict([]) => "`{}`".into(),
        Default::Dict(items) => {
            let inner: Vec<String> = items.iter().map(|(k, v)| format!("'{k}': '{v}'")).collect();
            format!("`{{{}}}`", inner.join(", "))
        }
        Default::Computed(text) => text.to_string(),
    }
}

fn flag_text(flag: &str, kind: Kind, meta: Option<&str>) -> String {
    match kind {
        Kind::Bool | Kind::NegFlag => format!("`{flag}`"),
        _ => format!("`{flag} {}`", meta.unwrap_or("STRING")),
    }
}

pub fn settings_markdown() -> String {
    let mut out = String::new();
    push_preamble(&mut out);
    for section in Section::ALL {
        out.push_str(&format!("## {}\n\n", section.title()));
        for s in SETTINGS.iter().filter(|s| s.section == section) {
            push_setting(&mut out, s);
        }
    }
    out
}

/// The title, the generated-file notice, and where settings come from.
fn push_preamble(out: &mut String) {
    out.push_str("# Settings\n\n");
    out.push_str(
        "<!-- Generated from src/settings/table.rs by settings_markdown(); do not edit by hand.\n",
    );
    out.push_str(
        "     Regenerate with: FERRICORN_UPDATE_DOCS=1 cargo test --lib settings::docs -->\n\n",
    );
    out.push_str(
        "ferricorn takes gunicorn's settings under gunicorn's names and flags. Each setting is read, \
         lowest precedence first, from:\n\n\
         1. its default (some defaults come from an environment variable, as in gunicorn);\n\
         2. the config file: `-c PATH`, `-c file:PATH` or `-c python:MODULE`; without `-c`, \
         `./gunicorn.conf.py`, else `./ferricorn.toml`, when present;\n\
         3. `$GUNICORN_CMD_ARGS`, then `$FERRICORN_CMD_ARGS` (command-line flags in a variable);\n\
         4. the command line.\n\n\
         A Python config file is executed like gunicorn's: module-level names that are settings are \
         taken, other names are ignored. A TOML file takes the same keys at the top level \
         (`workers = 3`, `bind = [\"127.0.0.1:8000\"]`, `raw_env = [\"A=1\"]`); an unknown key there is \
         an error. Server hooks are callables in a Python config, or `\"module.function\"` strings in either.\n\n\
         Settings marked *no effect* are accepted so that existing gunicorn configurations keep \
         working, and a warning is logged when one is set to anything but its default. Settings marked \
         *not acted on yet* will be honoured by a later version and are warned about the same way.\n\n",
    );
}

/// One setting's entry: its facts, its description, and what it does not do here.
fn push_setting(out: &mut String, s: &Setting) {
    out.push_str(&format!("### `{}`\n\n", s.name));
    out.push_str(&facts(s).join("  \n"));
    out.push_str("\n\n");
    out.push_str(s.doc);
    if !s.more.is_empty() {
        out.push(' ');
        out.push_str(s.more);
    }
    out.push_str("\n\n");
    match s.applies {
        Applies::Yes => {}
        Applies::NoEffect(why) => out.push_str(&format!("*No effect in ferricorn:* {why}.\n\n")),
        Applies::NotYet(why) => out.push_str(&format!("*Not acted on yet:* {why}.\n\n")),
    }
}

/// The bold-labelled lines under a setting's heading.
fn facts(s: &Setting) -> Vec<String> {
    let mut facts = Vec::new();
    if s.has_cli() {
        let flags: Vec<String> = s
            .flags
            .iter()
            .map(|f| flag_text(f, s.kind, s.meta))
            .collect();
        facts.push(format!("**Command line:** {}", flags.join(", ")));
    } else {
        facts.push("**Command line:** none (config file only)".into());
    }
    facts.push(format!("**Type:** {}", type_text(s)));
    facts.push(format!("**Default:** {}", default_text(s.default)));
    if let Some(var) = s.env_default {
        facts.push(format!("**Default from:** `${var}`"));
    }
    if s.ferricorn_only {
        facts.push("**ferricorn only**".into());
    }
    facts
}

fn type_text(s: &Setting) -> String {
    match s.kind {
        Kind::Choice(words) => format!(
            "one of {}",
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::Hook(_) if s.name == "post_request" => {
            "callable taking 2 to 4 arguments, or \"module.function\"".into()
        }
        Kind::Hook(n) => format!(
            "callable taking {n} argument{}, or \"module.function\"",
            if n == 1 { "" } else { "s" }
        ),
        k => k.describe().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_settings_md_is_generated_from_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("settings.md");
        let want = settings_markdown();
        if std::env::var_os("FERRICORN_UPDATE_DOCS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/settings.md is out of date with src/settings/table.rs; regenerate it with \
             FERRICORN_UPDATE_DOCS=1 cargo test --lib settings::docs"
        );
    }

    #[test]
    fn every_setting_is_documented_once() {
        let md = settings_markdown();
        for s in SETTINGS {
            assert_eq!(
                md.matches(&format!("### `{}`\n", s.name)).count(),
                1,
                "{}",
                s.name
            );
        }
    }
}
