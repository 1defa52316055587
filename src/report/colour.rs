//! Whether to colour, decided in one place, and the few styles palisade
//! uses. Colour is for a person at a terminal: a pipe, a file, `--json` and
//! anyone who set `NO_COLOR` get plain text. `CLICOLOR_FORCE` asks for
//! colour where there is no terminal (a pager, a CI log that renders it).
//!
//! The styles are plain SGR sequences: palisade needs four colours, not a
//! crate. Styling is applied after a cell is escaped and padded, so the
//! escapes it adds never count towards a column's width, and nothing from
//! input or a node can smuggle one in.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// An output stream palisade writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Reports and tables.
    Stdout,
    /// Logs, progress and errors.
    Stderr,
}

/// Whether text written to `stream` should be coloured, from the
/// environment and whether the stream is a terminal.
pub fn enabled(stream: Stream) -> bool {
    let tty = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    decide(
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("CLICOLOR_FORCE").as_deref(),
        std::env::var_os("TERM").as_deref(),
        tty,
    )
}

/// The decision itself, pure, for [`enabled`] and its tests. `NO_COLOR`
/// (any non-empty value, <https://no-color.org>) wins: an operator who
/// turned colour off everywhere meant it. Then `CLICOLOR_FORCE` (non-empty
/// and not `0`) forces it. Else colour only on a terminal that is not
/// `TERM=dumb`.
fn decide(no_color: Option<&OsStr>, force: Option<&OsStr>, term: Option<&OsStr>, tty: bool) -> bool {
    let set = |v: Option<&OsStr>| v.is_some_and(|v| !v.is_empty());
    if set(no_color) {
        return false;
    }
    if set(force) && force != Some(OsStr::new("0")) {
        return true;
    }
    tty && term != Some(OsStr::new("dumb"))
}

/// What a piece of text means, which picks its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    /// As wanted: ok, changed, unchanged, removed; a `+` line.
    Good,
    /// Needs attention, nothing broke: drift, would-change, absent; a `~` line.
    Notice,
    /// Something failed or was refused; a `-` line.
    Bad,
    /// Beside the point: deposed hosts, notes.
    Quiet,
}

/// A painter: colours text when `on`, else returns it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paint {
    pub(crate) on: bool,
}

impl Paint {
    pub(crate) const PLAIN: Paint = Paint { on: false };

    /// `text`, already escaped for the terminal, in the colour of `tone`.
    pub(crate) fn tone(self, tone: Tone, text: &str) -> String {
        if !self.on {
            return text.to_owned();
        }
        let sgr = match tone {
            Tone::Good => "32",
            Tone::Notice => "33",
            Tone::Bad => "31",
            Tone::Quiet => "2",
        };
        format!("\x1b[{sgr}m{text}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(no_color: Option<&str>, force: Option<&str>, tty: bool) -> bool {
        decide(
            no_color.map(OsStr::new),
            force.map(OsStr::new),
            Some(OsStr::new("xterm-256color")),
            tty,
        )
    }

    #[test]
    fn colour_on_a_terminal_only_by_default() {
        assert!(d(None, None, true));
        assert!(!d(None, None, false));
    }

    #[test]
    fn no_color_any_non_empty_value_disables() {
        for v in ["1", "0", "yes", "false"] {
            assert!(!d(Some(v), None, true), "NO_COLOR={v}");
        }
        // Empty means unset.
        assert!(d(Some(""), None, true));
        assert!(!d(Some(""), None, false));
    }

    #[test]
    fn clicolor_force_colours_even_a_pipe_unless_zero_or_empty() {
        assert!(d(None, Some("1"), false));
        assert!(d(None, Some("yes"), false));
        assert!(!d(None, Some("0"), false));
        assert!(!d(None, Some(""), false));
        // "0" does not take colour away from a terminal.
        assert!(d(None, Some("0"), true));
    }

    #[test]
    fn no_color_beats_clicolor_force() {
        assert!(!d(Some("1"), Some("1"), true));
        assert!(!d(Some("1"), Some("1"), false));
        assert!(d(Some(""), Some("1"), false));
    }

    #[test]
    fn a_dumb_terminal_gets_no_colour_unless_forced() {
        let dumb = Some(OsStr::new("dumb"));
        assert!(!decide(None, None, dumb, true));
        assert!(decide(None, Some(OsStr::new("1")), dumb, true));
    }

    #[test]
    fn plain_paint_adds_nothing() {
        assert_eq!(Paint::PLAIN.tone(Tone::Bad, "failed"), "failed");
        assert_eq!(
            Paint { on: true }.tone(Tone::Bad, "failed"),
            "\x1b[31mfailed\x1b[0m"
        );
    }
}
