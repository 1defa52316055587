use std::process::ExitCode;

use clap::Parser;
use palisade::cli::Cli;
use palisade::report::EXIT_USAGE;

#[tokio::main]
async fn main() -> ExitCode {
    // try_parse, because clap's own exit uses 2, which is our "hosts failed".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    init_logging(cli.global.verbose);
    match palisade::cmd::run(cli).await {
        Ok(verdict) => verdict.exit_code(),
        Err(err) => {
            // One line, whatever a file put in the names it quotes.
            let message = format!("{err:#}");
            eprintln!("palisade: {}", palisade::report::terminal::escape(&message));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Logs go to stderr, so `--json` keeps stdout clean, and around the
/// progress bar, so that neither tears the other. Warnings show by default;
/// `-v` adds each host's phase timings, `-vv` its remote steps' own lines,
/// and `RUST_LOG` wins over both.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "palisade=warn",
        1 => "palisade=info",
        _ => "palisade=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(palisade::report::progress::LogWriter::stderr())
        .with_ansi(palisade::report::colour::enabled(
            palisade::report::colour::Stream::Stderr,
        ))
        .without_time()
        .with_target(false)
        .init();
}
