use clap::Parser;

fn main() {
    // Capture argv before anything can overwrite it with a process title.
    ferricorn::proctitle::original_args();
    let cli = ferricorn::cli::Cli::parse();
    std::process::exit(ferricorn::startup::run(&cli));
}
