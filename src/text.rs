//! The one way text from outside palisade (a state file, a config, a node)
//! is made fit to print: in a report, an error or a log line. Names from a state file, values from
//! a config and whatever a node prints back can hold control characters
//! (ESC sequences that set the title or move the cursor, a CR that
//! overwrites the line) or invisible and direction-changing code points (a
//! right-to-left override, a zero-width space) that make two names look
//! alike. Every such character is shown as an escape, never interpreted.

use std::borrow::Cow;

/// `text` for one line of a table or message: every control character
/// (newlines too) and every invisible or bidi code point as an escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// Like [`escape`], but newlines stay: for a message of several lines.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

fn escape_with(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| !(keep_newlines && c == '\n') && (c.is_control() || invisible(c));
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !bad(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
        }
    }
    Cow::Owned(out)
}

/// Code points that print as nothing, or change the direction of what
/// follows: soft hyphen, Arabic letter mark, Hangul fillers, Mongolian vowel
/// separator, zero-width and bidi marks, embeddings, overrides and
/// isolates, word joiner and invisible operators, the byte order mark,
/// interlinear annotation, and tag characters.
fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00ad
            | 0x061c
            | 0x115f
            | 0x1160
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x206f
            | 0x3164
            | 0xfeff
            | 0xffa0
            | 0xfff9..=0xfffb
            | 0xe0000..=0xe007f
    )
}

/// `text` cut to its first `max` characters, marked with `…` when cut:
/// a value from outside quoted in a message, never whole.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `text` cut to its last `keep` characters, marked with `…` when cut: the
/// end of what a node printed, which says why a step failed.
pub(crate) fn tail(text: &str, keep: usize) -> String {
    match text.char_indices().rev().nth(keep) {
        Some((at, _)) => format!("…{}", &text[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("node-00 147.75.100.11 ok"), Cow::Borrowed(_)));
        assert!(matches!(escape_lines("a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(escape("\u{1b}]0;pwned\u{7}x"), "\\u{001b}]0;pwned\\u{0007}x");
        assert_eq!(escape("a\rb\nc\td\0"), "a\\rb\\nc\\td\\u{0000}");
        assert_eq!(escape("node\u{202e}00"), "node\\u{202e}00");
        assert_eq!(escape("\u{feff}node\u{200b}"), "\\u{feff}node\\u{200b}");
        assert_eq!(escape("\u{9b}31m"), "\\u{009b}31m");
        assert_eq!(escape_lines("one\ntwo\u{1b}[2J"), "one\ntwo\\u{001b}[2J");
        assert_eq!(escape("café ✓"), "café ✓");
    }
}
