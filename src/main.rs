use clap::Parser;

fn main() {
    // Capture argv before anything can overwrite it with a process title.
    ferricorn::proctitle::original_args();
    // `ferricorn upgrade …` is an operator command, not a server: it has its
    // own small argument list and must not be parsed as server flags.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "upgrade") {
        let rest: Vec<String> = args[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
        std::process::exit(ferricorn::upgrade_cmd::run(&rest));
    }
    let cli = ferricorn::cli::Cli::parse();
    std::process::exit(ferricorn::startup::run(&cli));
}
