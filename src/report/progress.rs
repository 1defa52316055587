//! A progress bar on stderr while hosts finish: only on a terminal, so logs
//! and `--json` consumers never see it. Log lines (`-v`) go through it
//! ([`LogWriter`]): the bar steps aside while a line is written, so neither
//! tears the other. As each host finishes, `-v` logs where its time went and
//! `-vv` what its remote steps printed.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use super::terminal::escape;
use crate::inventory::Host;
use crate::transport::HostOutcome;

/// The bar on screen now, if any: the log writer suspends it around every
/// line. One at a time, as one run shows one bar.
static SHOWING: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn showing() -> Option<ProgressBar> {
    SHOWING.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    failed: AtomicUsize,
}

impl Progress {
    /// A bar for `total` hosts when stderr is a terminal and the run is not
    /// `--json`; a silent one otherwise.
    pub(crate) fn new(total: usize, verb: &str, json: bool) -> Progress {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} hosts {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(verb.to_owned());
            bar
        });
        Progress::showing(bar)
    }

    /// Shows `bar` (if any), with log lines going around it.
    fn showing(bar: Option<ProgressBar>) -> Progress {
        if let Some(bar) = &bar {
            *SHOWING.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        }
        Progress {
            bar,
            failed: AtomicUsize::new(0),
        }
    }

    /// A host is done: count it (as failed with `failed`: unreached,
    /// failed, refused or rolled back, what the run's exit code counts), and
    /// log where its time went (`-v`) and what its remote steps printed on
    /// stderr (`-vv`).
    pub(crate) fn host_done<T, E>(&self, outcome: &HostOutcome<Host, T, E>, failed: bool) {
        let name = escape(outcome.host.name().as_str());
        tracing::info!("{name} {}: {}", outcome.host.address(), timings_line(outcome));
        for step in &outcome.log {
            let stage = step.stage.map_or("step", |p| p.as_str());
            for line in step.stderr.lines().filter(|l| !l.trim().is_empty()) {
                tracing::debug!("{name} {stage}: {}", escape(line));
            }
        }
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            // Count the host first, so no frame shows a failure it has not counted.
            bar.inc(1);
            let failed = self.failed.load(Ordering::Relaxed);
            if failed > 0 {
                bar.set_message(format!("{failed} failed"));
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            SHOWING.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

/// `connect 0.4 ms, kex 6.1 ms, ..., total 80.2 ms`, in the order a run goes
/// through its stages.
fn timings_line<T, E>(outcome: &HostOutcome<Host, T, E>) -> String {
    let parts: Vec<String> = outcome
        .timings
        .iter()
        .map(|(stage, took)| format!("{stage} {:.1} ms", took.as_secs_f64() * 1000.0))
        .collect();
    let ended = if outcome.result.is_ok() { "" } else { " (failed)" };
    format!("{}{ended}", parts.join(", "))
}

/// Where the log writer writes: stderr, or memory in tests.
type Output = Arc<dyn Fn() -> Box<dyn Write> + Send + Sync>;

/// The tracing writer: every log event goes out whole, in one write, with
/// the progress bar (when one is showing) taken off the screen around it.
#[derive(Clone)]
pub struct LogWriter {
    out: Output,
}

impl LogWriter {
    /// Logs to stderr, where the bar is.
    pub fn stderr() -> LogWriter {
        LogWriter::to(|| Box::new(std::io::stderr()))
    }

    /// Logs to what `out` gives (tests write to memory).
    pub(crate) fn to(out: impl Fn() -> Box<dyn Write> + Send + Sync + 'static) -> LogWriter {
        LogWriter { out: Arc::new(out) }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Event;

    fn make_writer(&'a self) -> Event {
        Event {
            buf: Vec::new(),
            out: self.out.clone(),
        }
    }
}

/// One log event, held until it is complete and written when dropped.
pub struct Event {
    buf: Vec<u8>,
    out: Output,
}

impl Write for Event {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let write = || {
            let mut out = (self.out)();
            let _ = out.write_all(&self.buf);
            let _ = out.flush();
        };
        match showing() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use indicatif::TermLike;

    use super::*;
    use crate::inventory::{Host, HostName, Role};
    use crate::timing::{Stage, Timings};
    use crate::transport::{HostError, StepLog};

    /// What reached the screen, in order: the bar's terminal operations
    /// and the log writer's lines, on one shared record.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Op {
        Bar(String),
        Clear,
        Up(usize),
        Log(String),
    }

    #[derive(Clone, Debug, Default)]
    struct Screen(Arc<Mutex<Vec<Op>>>);

    impl Screen {
        fn push(&self, op: Op) {
            self.0.lock().unwrap().push(op);
        }
        fn ops(&self) -> Vec<Op> {
            self.0.lock().unwrap().clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(Op::Up(n));
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(Op::Bar(format!("{s}\n")));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.push(Op::Bar(s.to_owned()));
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push(Op::Clear);
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Collects what the log writer writes, one `Op::Log` per write.
    struct LogSink(Screen);

    impl Write for LogSink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.push(Op::Log(String::from_utf8_lossy(data).into_owned()));
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn subscriber(screen: &Screen) -> impl tracing::Subscriber + use<> {
        let sink = screen.clone();
        tracing_subscriber::fmt()
            .with_writer(LogWriter::to(move || Box::new(LogSink(sink.clone()))))
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish()
    }

    fn outcome(name: &str, result: Result<(), HostError>) -> HostOutcome<Host, ()> {
        let address: IpAddr = "198.18.1.11".parse().unwrap();
        let name = HostName::parse(name).unwrap();
        let host = Host::new(name, Role::Agent, address, Default::default(), String::new());
        let mut timings = Timings::default();
        timings.add(Stage::Connect, Duration::from_micros(400));
        timings.add(Stage::Apply, Duration::from_micros(51_240));
        timings.add(Stage::Total, Duration::from_micros(80_000));
        HostOutcome {
            host,
            result,
            elapsed: Duration::from_millis(80),
            timings,
            log: vec![StepLog {
                stage: Some(Stage::Apply),
                stderr: "palisade: set made\n\u{1b}[2Jcleared\n".into(),
            }],
        }
    }

    #[test]
    fn a_log_line_is_written_whole_with_the_bar_off_the_screen_and_the_bar_comes_back() {
        let screen = Screen::default();
        let bar =
            ProgressBar::with_draw_target(Some(3), ProgressDrawTarget::term_like(Box::new(screen.clone())));
        bar.set_style(ProgressStyle::with_template("apply [{bar:10}] {pos}/{len} hosts").unwrap());
        let progress = Progress::showing(Some(bar.clone()));
        bar.inc(1);
        tracing::subscriber::with_default(subscriber(&screen), || {
            tracing::info!("node-01 198.18.1.11: connect 0.4 ms, total 80.0 ms");
        });
        bar.inc(1);
        progress.finish();

        let ops = screen.ops();
        let at = ops
            .iter()
            .position(|op| matches!(op, Op::Log(_)))
            .expect("the line was logged");
        assert_eq!(
            ops.iter().filter(|op| matches!(op, Op::Log(_))).count(),
            1,
            "one write per event: {ops:?}"
        );
        let Op::Log(line) = &ops[at] else { unreachable!() };
        assert_eq!(
            line, " INFO node-01 198.18.1.11: connect 0.4 ms, total 80.0 ms\n",
            "{ops:?}"
        );
        let last_bar = ops[..at]
            .iter()
            .rposition(|op| matches!(op, Op::Bar(_)))
            .expect("the bar was on screen before the line");
        assert!(
            ops[last_bar..at].contains(&Op::Clear),
            "the bar must be cleared before a log line is written over it: {ops:?}"
        );
        assert!(
            ops[at..]
                .iter()
                .any(|op| matches!(op, Op::Bar(b) if b.contains("hosts"))),
            "the bar comes back after the line: {ops:?}"
        );
    }

    #[test]
    fn a_finished_host_logs_one_timing_line_and_at_vv_its_escaped_remote_lines() {
        let screen = Screen::default();
        tracing::subscriber::with_default(subscriber(&screen), || {
            let progress = Progress::showing(None);
            progress.host_done(&outcome("node-01", Ok(())), false);
            progress.host_done(&outcome("node-02", Err(HostError::NoExitStatus)), true);
        });
        let lines: Vec<String> = screen
            .ops()
            .into_iter()
            .filter_map(|op| match op {
                Op::Log(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            [
                " INFO node-01 198.18.1.11: connect 0.4 ms, apply 51.2 ms, total 80.0 ms\n",
                "DEBUG node-01 apply: palisade: set made\n",
                "DEBUG node-01 apply: \\u{001b}[2Jcleared\n",
                " INFO node-02 198.18.1.11: connect 0.4 ms, apply 51.2 ms, total 80.0 ms (failed)\n",
                "DEBUG node-02 apply: palisade: set made\n",
                "DEBUG node-02 apply: \\u{001b}[2Jcleared\n",
            ]
        );
    }
}
