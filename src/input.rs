//! Reading the files an operator names (state, inventory, config, key,
//! known_hosts): bounded, never blocking without a word, and decoded with
//! the encoding named when it is not UTF-8.
//!
//! Every reader of an operator's file goes through [`read`], so none of them
//! can be made to read `/dev/zero` until memory runs out, or wait forever on
//! a FIFO nobody writes to. Pipes are fine (`--state <(terraform state pull)`,
//! `--state -`): they are read as data arrives, and a pipe that stays silent
//! for [`PIPE_SILENCE`] is given up on with a message that says what palisade
//! waited for.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::text::shorten;

/// The most palisade reads of a Terraform document: far above any real
/// state (a 1,000-node state is a few MB), far below what hurts a laptop
/// once parsed (see [`MAX_JSON_VALUES`]).
pub(crate) const MAX_BYTES: u64 = 128 << 20;

/// The most palisade reads of a static inventory: a TOML list of hosts.
pub(crate) const MAX_INVENTORY_BYTES: u64 = 4 << 20;

/// The most values one JSON document may hold. Parsed, a value costs tens
/// of bytes however short its text (`[[[]]]`), so the file's size alone does
/// not bound the memory a hostile document takes; this does (about 1 GB at
/// the worst). A 10,000-machine state holds a few million.
pub(crate) const MAX_JSON_VALUES: usize = 16_000_000;

/// How deeply JSON values may nest: Terraform's deepest attributes are a
/// handful of levels down.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// How long a pipe (standard input, a FIFO, `<(...)`) may stay silent.
pub(crate) const PIPE_SILENCE: Duration = Duration::from_secs(120);

/// Why an input could not be read. The path is the caller's to name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("the path is empty")]
    EmptyPath,
    #[error("is a directory, not a file")]
    Directory,
    #[error("is a {0}, not a file: palisade reads regular files, pipes and standard input (-)")]
    NotAFile(&'static str),
    #[error("is larger than {}, the most palisade reads", Size(*.0))]
    TooLarge(u64),
    #[error(
        "standard input is a terminal: pipe the file in (e.g. terraform state pull | palisade inventory --state -)"
    )]
    StdinIsTerminal,
    #[error("nothing arrived for {} s on {what}: is anything writing to it?", PIPE_SILENCE.as_secs())]
    Silent { what: &'static str },
}

/// Reads `path` (`-` is standard input) whole, up to `cap` bytes.
pub(crate) fn read(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    if path.as_os_str().is_empty() {
        return Err(ReadError::EmptyPath);
    }
    if path == Path::new("-") {
        let stdin = std::io::stdin();
        if std::io::IsTerminal::is_terminal(&stdin) {
            return Err(ReadError::StdinIsTerminal);
        }
        return read_stream(stdin.lock(), cap, "standard input", "standard input");
    }
    // A device is refused before it is opened (opening some has effects);
    // what is opened is checked again on the descriptor, so a file swapped
    // for a FIFO in between cannot block. O_NONBLOCK: opening a FIFO nobody
    // has opened for writing would otherwise block in open(2), before any
    // timeout could run; reads of a regular file ignore it.
    let kind = kind_of(&std::fs::metadata(path).map_err(ReadError::Io)?);
    if !matches!(kind, Kind::File | Kind::Fifo) {
        return Err(match kind {
            Kind::Directory => ReadError::Directory,
            Kind::Other(what) => ReadError::NotAFile(what),
            Kind::File | Kind::Fifo => ReadError::NotAFile("special file"),
        });
    }
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    match kind_of(&meta) {
        Kind::File if meta.len() > cap => Err(ReadError::TooLarge(cap)),
        Kind::File => {
            // Blocking again, for file systems (FUSE) that would honour it.
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: fcntl on a descriptor this function owns.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
                }
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.take(cap + 1)
                .read_to_end(&mut bytes)
                .map_err(ReadError::Io)?;
            if bytes.len() as u64 > cap {
                return Err(ReadError::TooLarge(cap));
            }
            Ok(bytes)
        }
        Kind::Fifo => read_stream(file, cap, "the pipe", &path.display().to_string()),
        Kind::Directory => Err(ReadError::Directory),
        Kind::Other(what) => Err(ReadError::NotAFile(what)),
    }
}

enum Kind {
    File,
    Fifo,
    Directory,
    Other(&'static str),
}

fn kind_of(meta: &std::fs::Metadata) -> Kind {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_char_device() {
        Kind::Other("character device")
    } else if t.is_block_device() {
        Kind::Other("block device")
    } else if t.is_socket() {
        Kind::Other("socket")
    } else {
        Kind::Other("special file")
    }
}

/// Reads a pipe as data comes, waiting at most [`PIPE_SILENCE`] for each
/// piece. poll(2) comes before every read, so neither a blocking standard
/// input nor a FIFO opened non-blocking (which reads as ended until a writer
/// comes) can stall or end the read early: on Linux a FIFO polls as neither
/// readable nor hung up until a writer has come, and as hung up once the
/// last one has gone.
fn read_stream<R: Read + std::os::fd::AsRawFd>(
    mut reader: R,
    cap: u64,
    what: &'static str,
    name: &str,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut told = false;
    loop {
        wait_readable(reader.as_raw_fd(), what, name, &mut told)?;
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() as u64 > cap {
                    return Err(ReadError::TooLarge(cap));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Waits until `fd` has data or its writer has gone, for at most
/// [`PIPE_SILENCE`].
fn wait_readable(
    fd: std::os::fd::RawFd,
    what: &'static str,
    name: &str,
    told: &mut bool,
) -> Result<(), ReadError> {
    let start = std::time::Instant::now();
    let deadline = start + PIPE_SILENCE;
    loop {
        if !*told && start.elapsed() >= Duration::from_secs(5) {
            *told = true;
            tracing::warn!(
                "waiting for {name:?} to be written to (gives up after {} s)",
                PIPE_SILENCE.as_secs()
            );
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(ReadError::Silent { what });
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(5_000) as libc::c_int) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ReadError::Io(e));
            }
        }
    }
}

/// Why bytes are not text palisade can parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error(
        "is {0} text, not UTF-8 (PowerShell's `>` writes UTF-16): convert it, e.g. `iconv -f {0} -t UTF-8`"
    )]
    WideEncoding(&'static str),
    #[error("is not UTF-8 text (byte {offset:#04x} at offset {at} is not valid UTF-8)", offset = .byte)]
    NotUtf8 { at: usize, byte: u8 },
    #[error("is binary, not text (a NUL byte at offset {0})")]
    Binary(usize),
}

/// The bytes as UTF-8 text, without a UTF-8 byte order mark (which some
/// Windows editors write, and which JSON and TOML parsers refuse). UTF-16
/// and UTF-32, with or without a byte order mark, are named.
pub(crate) fn text(bytes: &[u8]) -> Result<&str, TextError> {
    if let Some(enc) = wide_encoding(bytes) {
        return Err(TextError::WideEncoding(enc));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        TextError::NotUtf8 {
            at,
            byte: bytes.get(at).copied().unwrap_or(0),
        }
    })?;
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(TextError::Binary(at));
    }
    Ok(text)
}

fn wide_encoding(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xff, 0xfe, 0, 0, ..] | [_, 0, 0, 0, ..] => Some("UTF-32LE"),
        [0, 0, 0xfe, 0xff, ..] | [0, 0, 0, _, ..] => Some("UTF-32BE"),
        [0xff, 0xfe, ..] | [_, 0, _, 0, ..] => Some("UTF-16LE"),
        [0xfe, 0xff, ..] | [0, _, 0, _, ..] => Some("UTF-16BE"),
        _ => None,
    }
}

/// What a document looks like, to name a mix-up (a state given as the
/// inventory, a config given as the state) instead of a parse error at
/// line 1, column 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Looks {
    Json,
    Toml,
    Other,
}

impl Looks {
    pub(crate) fn of(text: &str) -> Looks {
        let start = text.trim_start();
        if start.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            Looks::Json
        } else if !start.starts_with('{') && text.parse::<toml::Table>().is_ok_and(|t| !t.is_empty()) {
            Looks::Toml
        } else {
            Looks::Other
        }
    }
}

/// A TOML parse error in one line: where, what, and the key (or table
/// header) of the line it is on. Never the line's value: toml's own message
/// quotes the whole line, however long, and a misspelt `root_pasword` is
/// as secret as the real thing.
pub(crate) fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = shorten(e.message().trim(), 200);
    let Some(span) = e.span() else {
        return message;
    };
    let at = span.start.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line_no = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..at].chars().count() + 1;
    let line = text[line_start..line_end].trim();
    // A line inside a multi-line string is a value, whatever it looks like.
    let before = &text[..line_start];
    let in_string = before.matches("\"\"\"").count() % 2 == 1 || before.matches("\'\'\'").count() % 2 == 1;
    let place = match line.split_once('=') {
        _ if in_string => String::new(),
        Some((key, _)) if is_toml_key(key.trim()) => format!(" (key {})", shorten(key.trim(), 60)),
        _ if line.starts_with('[')
            && line.ends_with(']')
            && is_toml_key(line.trim_matches(['[', ']']).trim()) =>
        {
            format!(" (in {})", shorten(line, 60))
        }
        _ => String::new(),
    };
    format!("line {line_no}, column {column}: {message}{place}")
}

/// Whether `text` is a TOML key exactly (bare `A-Za-z0-9_-` parts, or whole
/// quoted parts without escapes, joined by dots): only such text is shown
/// from a line with an error. Anything else may be a value, or a line inside
/// a multi-line string, and a value may be a secret.
fn is_toml_key(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            let part = part.trim();
            let bare = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
            let quoted = |q: char| {
                part.len() >= 2
                    && part.starts_with(q)
                    && part.ends_with(q)
                    && part[1..part.len() - 1]
                        .chars()
                        .all(|c| c != q && c != '\\' && !c.is_control() && c != '"' && c != '\'')
            };
            bare || quoted('"') || quoted('\'')
        })
}

/// Parses JSON like `serde_json::from_str::<Value>`, but refuses an object
/// that holds a key twice: serde_json keeps the last one, so a second
/// `"access_public_ipv4"` could hide the first from every check.
pub(crate) fn json(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let left = std::cell::Cell::new(MAX_JSON_VALUES);
    let value = Strict {
        left: &left,
        depth: 0,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// One value to read, with what is left of the document's budget.
#[derive(Clone, Copy)]
struct Strict<'b> {
    left: &'b std::cell::Cell<usize>,
    depth: usize,
}

impl Strict<'_> {
    fn count<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the document holds more than {MAX_JSON_VALUES} values, far more than a Terraform \
                 document palisade is meant for"
            ))),
        }
    }

    fn inner<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(E::custom(format!(
                "values nested more than {MAX_JSON_DEPTH} deep"
            )));
        }
        Ok(Strict {
            left: self.left,
            depth: self.depth + 1,
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.count()?;
        Ok(v.into())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.count()?;
        Ok(v.into())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.count()?;
        Ok(v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.count()?;
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.count()?;
        Ok(v.into())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.count()?;
        Ok(v.into())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.count()?;
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.count()?;
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.count()?;
        let inner = self.inner()?;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    shorten(&key, 64)
                )));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

/// A size for messages: whole MiB or KiB.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 20 {
            write!(f, "{} MiB", self.0 >> 20)
        } else {
            write!(f, "{} KiB", self.0 >> 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_empty_paths_are_refused() {
        assert!(matches!(
            read(Path::new("/dev/zero"), MAX_BYTES),
            Err(ReadError::NotAFile("character device"))
        ));
        assert!(matches!(
            read(Path::new("/"), MAX_BYTES),
            Err(ReadError::Directory)
        ));
        assert!(matches!(
            read(Path::new(""), MAX_BYTES),
            Err(ReadError::EmptyPath)
        ));
    }

    #[test]
    fn files_over_the_cap_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 2048]).unwrap();
        assert!(matches!(read(&path, 1024), Err(ReadError::TooLarge(1024))));
        assert_eq!(read(&path, 4096).unwrap().len(), 2048);
        let e = ReadError::TooLarge(MAX_BYTES).to_string();
        assert!(e.contains("128 MiB"), "{e}");
    }

    #[test]
    fn a_fifo_is_read_when_written_and_waited_on_with_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                std::io::Write::write_all(&mut f, b"{\"version\": 4}").unwrap();
                std::thread::sleep(Duration::from_millis(200));
                std::io::Write::write_all(&mut f, b"\n").unwrap();
            })
        };
        let bytes = read(&path, MAX_BYTES).unwrap();
        writer.join().unwrap();
        assert_eq!(bytes, b"{\"version\": 4}\n");
    }

    #[test]
    fn encodings_are_named() {
        let utf16: Vec<u8> = "{\"v\": 1}".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(text(&utf16), Err(TextError::WideEncoding("UTF-16LE")));
        let mut bom16 = vec![0xff, 0xfe];
        bom16.extend(&utf16);
        assert_eq!(text(&bom16), Err(TextError::WideEncoding("UTF-16LE")));
        let be: Vec<u8> = "{}".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(text(&be), Err(TextError::WideEncoding("UTF-16BE")));
        assert_eq!(text(b"\xef\xbb\xbf{}"), Ok("{}"));
        assert_eq!(text(b"ab\xffc"), Err(TextError::NotUtf8 { at: 2, byte: 0xff }));
        assert_eq!(text(b"a\0b"), Err(TextError::Binary(1)));
        assert_eq!(text(b"a"), Ok("a"));
    }

    #[test]
    fn json_refuses_a_key_twice_and_reads_the_rest_as_serde_json_does() {
        let e = json("{\"a\": 1,\n \"b\": {\"x\": 1, \"x\": 2}}").unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("the key \"x\" appears twice"), "{e}");
        let text = r#"{"a": [1, -2, 3.5, "s", null, true, {"b": {}}], "c": "\u001b"}"#;
        assert_eq!(
            json(text).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert!(json("{} x").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(json(&deep).is_err(), "serde_json's recursion limit holds");
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(
            json(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested more than 64 deep")
        );
        let ok = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(json(&ok).is_ok());
    }

    #[test]
    fn mixups_are_recognised() {
        assert_eq!(Looks::of("{\"version\": 4}"), Looks::Json);
        assert_eq!(Looks::of("[[master]]\naddress = \"1.2.3.4\"\n"), Looks::Toml);
        assert_eq!(Looks::of("state = \"x\""), Looks::Toml);
        assert_eq!(Looks::of("garbage {"), Looks::Other);
        assert_eq!(Looks::of(""), Looks::Other);
    }

    #[test]
    fn toml_errors_are_one_short_line_without_secrets() {
        let text = "[[master]]\naddress = \"1.2.3.4\"\nroot_password = \"hunter2\"\n";
        let e = toml::from_str::<toml::Table>(&text.replace("root_password =", "root_password")).unwrap_err();
        let shown = toml_error(&e, &text.replace("root_password =", "root_password"));
        assert!(!shown.contains('\n'), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.starts_with("line 3, column "), "{shown}");
        let long = format!("x = \"{}\" y", "a".repeat(100_000));
        let e = toml::from_str::<toml::Table>(&long).unwrap_err();
        let shown = toml_error(&e, &long);
        assert!(shown.len() < 400, "{}", shown.len());
        assert!(shown.starts_with("line 1, column "), "{shown}");
        let bad = "root_password = \"hunter2\" trailing\n";
        let e = toml::from_str::<toml::Table>(bad).unwrap_err();
        let shown = toml_error(&e, bad);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.ends_with("(key root_password)"), "{shown}");
        for (leaky, text) in [
            ("padding", "[[master]]\nroot_password \"aHVudGVyMg==\"\n"),
            ("in a string", "x = \"\"\"\nsecret hunter2 = \\q\"\"\"\n"),
            ("a key in a string", "x = \"\"\"\nhunter2 = \\q\"\"\"\n"),
        ] {
            let e = toml::from_str::<toml::Table>(text).unwrap_err();
            let shown = toml_error(&e, text);
            assert!(
                !shown.contains("aHVudGVyMg") && !shown.contains("hunter2"),
                "{leaky}: {shown}"
            );
        }
        assert!(is_toml_key("a.b-c.\"d e\""));
        assert!(!is_toml_key("root_password \"aHVudGVyMg"));
        assert!(!is_toml_key("secret hunter2"));
        let header = "[[master]]\nbad\n";
        let e = toml::from_str::<toml::Table>(header).unwrap_err();
        assert!(
            toml_error(&e, header).starts_with("line 2, column "),
            "{}",
            toml_error(&e, header)
        );
    }
}
