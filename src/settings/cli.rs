//! The command line, built from the settings table: every setting with
//! flags becomes an option, with its doc line and default as help, grouped
//! by section as in gunicorn's documentation.

use super::table::{Default, Kind, Section, Setting, SETTINGS};
use super::value::Value;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

const APP_ARG: &str = "WSGI_APP";
/// Not a setting: a benchmark switch, kept out of the table, `--help` and the docs.
const REFERENCE_ARG: &str = "reference_responder";

/// What one command line (or `$GUNICORN_CMD_ARGS`) explicitly set, in
/// table order. Values are raw: validation happens when they are applied.
#[derive(Debug, Default)]
pub struct Parsed {
    pub wsgi_app: Option<String>,
    /// `--reference-responder`: answer every request from Rust, without
    /// Python (the ceiling the app path is measured against).
    pub reference_responder: bool,
    pub values: Vec<(&'static Setting, Value)>,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, v)| v)
    }
}

fn help_default(s: &Setting) -> String {
    match s.default {
        Default::None => "None".into(),
        Default::Bool(b) => if b { "True" } else { "False" }.into(),
        Default::Int(n) => n.to_string(),
        Default::Float(x) => Value::Float(x).to_string(),
        Default::Str(t) => t.to_string(),
        Default::List(items) => {
            Value::List(items.iter().map(|i| Value::Str(i.to_string())).collect()).to_string()
        }
        Default::Dict(_) => "see docs".into(),
        Default::Computed(text) => text.to_string(),
    }
}

fn arg_for(s: &'static Setting, order: usize) -> Arg {
    let note = match s.applies {
        super::table::Applies::Yes => "",
        super::table::Applies::NoEffect(_) => " (no effect in ferricorn)",
        super::table::Applies::NotYet(_) => " (not acted on yet)",
    };
    let mut arg = Arg::new(s.name)
        .help(format!("{} [{}]{note}", s.doc, help_default(s)))
        .display_order(order);
    let mut longs = Vec::new();
    for flag in s.flags {
        if let Some(long) = flag.strip_prefix("--") {
            longs.push(long);
        } else if let Some(short) = flag.strip_prefix('-') {
            arg = arg.short(short.chars().next().expect("short flag has a letter"));
        }
    }
    if let Some((first, rest)) = longs.split_first() {
        arg = arg.long(*first);
        for alias in rest {
            arg = arg.visible_alias(*alias);
        }
    }
    for alias in s.aliases {
        arg = arg.alias(alias.trim_start_matches("--"));
    }
    match s.kind {
        Kind::Bool | Kind::NegFlag => arg.action(ArgAction::SetTrue),
        Kind::List | Kind::FileList => arg
            .action(ArgAction::Append)
            .value_name(s.meta.unwrap_or("STRING")),
        _ => arg
            .action(ArgAction::Set)
            .value_name(s.meta.unwrap_or("STRING")),
    }
}

/// The full command: every setting that has flags, plus the app argument,
/// `-v/--version` and `-h/--help`.
pub fn command() -> Command {
    let mut cmd = Command::new("ferricorn")
        .version(env!("FERRICORN_VERSION"))
        .about("ferricorn: a zero-downtime WSGI HTTP server for UNIX, a drop-in for gunicorn.")
        .override_usage("ferricorn [OPTIONS] [WSGI_APP]")
        .disable_version_flag(true)
        .after_help("Upgrade a running server to the binary and code now on disk, without downtime:\n  ferricorn upgrade --pid PIDFILE [--timeout SECONDS]")
        .arg(
            Arg::new(APP_ARG)
                .value_name("WSGI_APP")
                .help("The WSGI application: module, module:attr, module:factory() or module:factory('arg', n=1)."),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::Version)
                .help("Print the version and exit."),
        )
        .arg(Arg::new(REFERENCE_ARG).long("reference-responder").action(ArgAction::SetTrue).hide(true));
    let mut order = 0;
    for section in Section::ALL {
        cmd = cmd.next_help_heading(section.title());
        for s in SETTINGS
            .iter()
            .filter(|s| s.section == section && s.has_cli())
        {
            order += 1;
            cmd = cmd.arg(arg_for(s, order));
        }
    }
    cmd
}

/// Parse one command line. `args` excludes the program name. clap's errors
/// (including --help and --version, which clap reports as errors) are
/// returned for the caller to print and exit with.
pub fn parse(args: &[String]) -> Result<Parsed, clap::Error> {
    let argv = std::iter::once("ferricorn".to_string()).chain(args.iter().cloned());
    let m = command().try_get_matches_from(argv)?;
    let mut parsed = Parsed {
        wsgi_app: m.get_one::<String>(APP_ARG).cloned(),
        reference_responder: m.get_flag(REFERENCE_ARG),
        values: Vec::new(),
    };
    for s in SETTINGS.iter().filter(|s| s.has_cli()) {
        if m.value_source(s.name) != Some(ValueSource::CommandLine) {
            continue;
        }
        let v = match s.kind {
            Kind::Bool => Value::Bool(true),
            // --no-sendfile: present means "off".
            Kind::NegFlag => Value::Bool(false),
            Kind::List | Kind::FileList => Value::List(
                m.get_many::<String>(s.name)
                    .into_iter()
                    .flatten()
                    .map(|v| Value::Str(v.clone()))
                    .collect(),
            ),
            _ => match m.get_one::<String>(s.name) {
                Some(v) => Value::Str(v.clone()),
                None => continue,
            },
        };
        parsed.values.push((s, v));
    }
    Ok(parsed)
}

/// Split `$GUNICORN_CMD_ARGS` like Python's `shlex.split` (POSIX rules:
/// single quotes literal, double quotes with backslash escapes).
pub fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("no closing quotation".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err("no escaped character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_gunicorn_spellings() {
        let p = parse(&args(&[
            "-w",
            "3",
            "-b",
            "a:1",
            "--bind",
            "b:2",
            "--limit-request-field_size",
            "10",
            "--no-sendfile",
            "--preload",
            "--log-file",
            "err.log",
            "-e",
            "A=1",
            "app:wsgi",
        ]))
        .unwrap();
        assert_eq!(p.wsgi_app.as_deref(), Some("app:wsgi"));
        assert_eq!(p.get("workers"), Some(&Value::Str("3".into())));
        assert_eq!(
            p.get("bind"),
            Some(&Value::List(vec![
                Value::Str("a:1".into()),
                Value::Str("b:2".into())
            ]))
        );
        assert_eq!(
            p.get("limit_request_field_size"),
            Some(&Value::Str("10".into()))
        );
        assert_eq!(p.get("sendfile"), Some(&Value::Bool(false)));
        assert_eq!(p.get("preload_app"), Some(&Value::Bool(true)));
        assert_eq!(p.get("errorlog"), Some(&Value::Str("err.log".into())));
        assert_eq!(
            p.get("raw_env"),
            Some(&Value::List(vec![Value::Str("A=1".into())]))
        );
        assert_eq!(p.get("timeout"), None, "unset flags are not reported");
        let alias = parse(&args(&["--limit-request-field-size", "7"])).unwrap();
        assert_eq!(
            alias.get("limit_request_field_size"),
            Some(&Value::Str("7".into()))
        );
    }

    #[test]
    fn help_and_version_are_clap_exits() {
        let e = parse(&args(&["--help"])).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = e.to_string();
        assert!(help.contains("--limit-request-field_size"));
        assert!(!help.contains("Server Hooks"), "hooks have no flags");
        assert!(help.contains("Worker Processes"));
        assert_eq!(
            parse(&args(&["-v"])).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse(&args(&["--workers"])).unwrap_err().kind(),
            clap::error::ErrorKind::InvalidValue
        );
    }

    #[test]
    fn shell_split_matches_shlex() {
        assert_eq!(
            shell_split("-w 3  --name 'my app' -e \"A=x y\"").unwrap(),
            args(&["-w", "3", "--name", "my app", "-e", "A=x y"])
        );
        assert_eq!(
            shell_split(r#"a\ b "c\"d""#).unwrap(),
            args(&["a b", "c\"d"])
        );
        assert!(shell_split("'open").is_err());
        assert!(shell_split("").unwrap().is_empty());
    }
}
