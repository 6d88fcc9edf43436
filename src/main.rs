fn main() {
    // Capture argv before anything can overwrite it with a process title.
    ferricorn::proctitle::original_args();
    // `ferricorn upgrade …` is an operator command, not a server: it has its
    // own small argument list and must not be parsed as server flags.
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.get(1).is_some_and(|a| a == "upgrade") {
        std::process::exit(ferricorn::upgrade_cmd::run(&args[2..]));
    }
    std::process::exit(ferricorn::startup::run(args));
}
