//! The `palisade` command: parses the command line, sets up logging, runs
//! the command through the library and maps how it ended to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use palisade::{Cli, EXIT_USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    // try_parse, because clap's own exit uses 2, which is our "hosts failed".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            usage_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            // --help and --version: clap's own text, on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    init_logging(cli.global.verbose);
    match palisade::run(cli).await {
        Ok(status) => status.exit_code(),
        Err(err) => {
            // One line, whatever a file put in the names it quotes.
            let message = format!("{err:#}");
            let _ = writeln!(std::io::stderr(), "palisade: {}", palisade::escape(&message));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// A usage error on stderr. clap echoes the flag's value as given, so a
/// value holding a carriage return or an escape sequence would act on the
/// terminal: such a message is printed escaped, like every other message
/// (and plain); one with nothing to escape keeps clap's colours.
fn usage_error(e: &clap::Error) {
    let plain = e.render().to_string();
    let safe = palisade::escape_lines(&plain);
    if safe == plain {
        let _ = e.print();
    } else {
        let _ = std::io::stderr().write_all(safe.as_bytes());
    }
}

/// Logs go to stderr, so `--json` keeps stdout clean, and around the
/// progress bar, so that neither tears the other. Warnings show by default;
/// `-v` adds each host's stage timings, `-vv` its remote steps' own lines,
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
        .with_writer(palisade::LogWriter::stderr())
        .with_ansi(palisade::colour_enabled(palisade::Stream::Stderr))
        .without_time()
        .with_target(false)
        .init();
}
