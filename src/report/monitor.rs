//! verify's result for machines that watch it: Prometheus metrics in the
//! text format node_exporter's textfile collector reads, and a JUnit XML
//! report for CI servers. A job run by a timer has no one reading its
//! table, so these say the same things: each host's status and drift, and
//! when the run happened, how long it took and how it ended.
//!
//! Host names come from the inventory, errors from the network and the
//! nodes: every such string is escaped for the format it lands in, so a
//! name cannot end a label value or an XML attribute early.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::changes;
use super::colour::Paint;
use super::hosts::{Report, Row, Status};
use super::terminal::escape;

/// The labels palisade's own series carry: `--prometheus-label` may not
/// name them again.
pub(crate) const OWN_LABELS: [&str; 3] = ["host", "role", "status"];

/// The statuses verify gives, one series each per host: a host's status
/// is the one at 1. A stable set of series, so that a graph or an alert
/// sees a status end, not just stop being reported.
const VERIFY_STATUSES: [Status; 6] = [
    Status::Ok,
    Status::Drift,
    Status::Absent,
    Status::Unreachable,
    Status::Failed,
    Status::Deposed,
];

/// When and how a run ended, beside its report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    /// When the run ended.
    pub(crate) ended: SystemTime,
    pub(crate) duration: Duration,
    /// The exit code the run ends with.
    pub(crate) exit_code: u8,
}

/// The report in the Prometheus text exposition format (version 0.0.4),
/// with `labels` (NAME, VALUE) on every series. Families are written
/// whole, each with its HELP and TYPE, as the format requires.
pub(crate) fn prometheus(report: &Report, run: &Run, labels: &[(String, String)]) -> String {
    let common: String = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\",", label_value(value)))
        .collect();
    let mut out = String::new();
    let mut family = |name: &str, help: &str, series: &mut dyn Iterator<Item = (String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (own, value) in series {
            let labels = format!("{common}{own}");
            match labels.trim_end_matches(',') {
                "" => writeln!(out, "{name} {value}"),
                labels => writeln!(out, "{name}{{{labels}}} {value}"),
            }
            .ok();
        }
    };
    let ended = run.ended.duration_since(UNIX_EPOCH).unwrap_or_default();
    family(
        "palisade_verify_last_run_timestamp_seconds",
        "When the last palisade verify run ended, in seconds since the Unix epoch.",
        &mut std::iter::once((String::new(), seconds(ended))),
    );
    family(
        "palisade_verify_duration_seconds",
        "How long the last palisade verify run took.",
        &mut std::iter::once((String::new(), seconds(run.duration))),
    );
    family(
        "palisade_verify_exit_code",
        "The exit code of the last palisade verify run: 0 every host ok, 2 some hosts failed or were unreachable, 3 drift.",
        &mut std::iter::once((String::new(), run.exit_code.to_string())),
    );
    family(
        "palisade_verify_hosts",
        "Hosts the last palisade verify run worked on, deposed ones included.",
        &mut std::iter::once((String::new(), report.hosts.len().to_string())),
    );
    let host = |h: &Row| {
        format!(
            "host=\"{}\",role=\"{}\",",
            label_value(&h.name),
            label_value(h.role.as_str())
        )
    };
    family(
        "palisade_host_status",
        "The host's status in the last palisade verify run: 1 for its status, 0 for the others.",
        &mut report.hosts.iter().flat_map(|h| {
            let mut statuses: Vec<Status> = VERIFY_STATUSES.to_vec();
            if !statuses.contains(&h.status) {
                statuses.push(h.status);
            }
            let host = host(h);
            statuses.into_iter().map(move |s| {
                (
                    format!("{host}status=\"{}\",", s.as_str()),
                    u8::from(s == h.status).to_string(),
                )
            })
        }),
    );
    // A deposed host is not contacted: nothing is known of it but that.
    let contacted = || report.hosts.iter().filter(|h| h.status != Status::Deposed);
    family(
        "palisade_host_up",
        "Whether the last palisade verify run could read the host's firewall (0: unreachable or failed).",
        &mut contacted().map(|h| (host(h), u8::from(!h.status.failed()).to_string())),
    );
    family(
        "palisade_host_drift_items",
        "The differences from the whitelist the last palisade verify run found on the host, as --json lists them in changes.",
        &mut contacted().map(|h| (host(h), h.changes.len().to_string())),
    );
    // Audit mode's, for the hosts in it only (and only when there are).
    let audited = || report.hosts.iter().filter_map(|h| Some((h, h.audit.as_ref()?)));
    if audited().next().is_some() {
        family(
            "palisade_host_audit_flows",
            "Flows the whitelist would drop that the host, in audit mode, recorded (source, protocol, port): what enforce mode would break.",
            &mut audited().map(|(h, a)| (host(h), a.flows.to_string())),
        );
        family(
            "palisade_host_audit_set_full",
            "Whether an audit set of the host is full (1): flows beyond its size went unrecorded.",
            &mut audited().map(|(h, a)| (host(h), u8::from(!a.full.is_empty()).to_string())),
        );
    }
    out
}

/// A label value as the text format needs it: backslash, double quote and
/// newline escaped; every other character stands for itself.
pub(crate) fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds with millisecond precision, as Prometheus reads a float.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// The report as JUnit XML: one `<testsuite>` of one `<testcase>` per
/// host, named by the host and classed by its role. A host that differs
/// from the whitelist is a `<failure>` listing its differences as the
/// table words them; a host palisade could not read (unreachable, failed)
/// is an `<error>` with the reason; a deposed one is `<skipped>`.
pub(crate) fn junit(report: &Report, run: &Run) -> String {
    let failures = report
        .hosts
        .iter()
        .filter(|h| matches!(h.status, Status::Drift | Status::Absent))
        .count();
    let errors = report.hosts.iter().filter(|h| h.status.failed()).count();
    let skipped = report
        .hosts
        .iter()
        .filter(|h| h.status == Status::Deposed)
        .count();
    let started = run.ended.checked_sub(run.duration).unwrap_or(run.ended);
    let command = serde_json::to_value(report.command)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let counts = format!(
        "name=\"palisade {command}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\" timestamp=\"{}\"",
        report.hosts.len(),
        seconds(run.duration),
        crate::timing::utc(started)
    );
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites {counts}>");
    let _ = writeln!(out, "  <testsuite {counts}>");
    for h in &report.hosts {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            xml(h.role.as_str()),
            xml(&escape(&h.name)),
            seconds(Duration::from_millis(
                u64::try_from(h.elapsed_ms).unwrap_or(u64::MAX)
            ))
        );
        let (element, message, body) = match h.status {
            Status::Drift | Status::Absent => ("failure", drift_message(h), drift_body(h)),
            s if s.failed() => {
                let why = h.error.as_deref().unwrap_or(s.as_str());
                ("error", why.to_owned(), why.to_owned())
            }
            Status::Deposed => ("skipped", h.notes.join("; "), String::new()),
            _ => {
                out.push_str("/>\n");
                continue;
            }
        };
        out.push_str(">\n");
        let _ = write!(out, "      <{element} message=\"{}\"", xml(&escape(&message)));
        // JUnit's skipped has a message only.
        if element != "skipped" {
            let _ = write!(out, " type=\"{}\"", h.status.as_str());
        }
        if body.is_empty() {
            out.push_str("/>\n");
        } else {
            let lines: Vec<String> = body.lines().map(|l| xml(&escape(l))).collect();
            let _ = writeln!(out, ">{}</{element}>", lines.join("\n"));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// One line for a failed host: its differences, a sentence each, as
/// `--json`'s `message` has them.
fn drift_message(h: &Row) -> String {
    if h.status == Status::Absent {
        return "none of palisade's objects is on the node".into();
    }
    h.changes
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The host's differences as the table shows them under its row, one
/// `+`, `-` or `~` line each.
fn drift_body(h: &Row) -> String {
    h.changes
        .iter()
        .flat_map(changes::lines)
        .map(|l| {
            let shown = l.show(Paint::PLAIN);
            shown.trim_start().trim_end_matches('\n').to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text for an XML attribute or element: the five markup characters as
/// entities, tab, newline and carriage return as character references (an
/// attribute keeps them then), and what XML 1.0 cannot hold at all as
/// `\u{…}`. The callers pass text through [`escape`] first, so control and
/// invisible characters are already spelled out.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
        }
    }
    out
}

/// Whether XML 1.0 allows the character (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(u32::from(c), 0x20..=0xd7ff | 0xe000..=0xfffd | 0x10000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Change;
    use crate::inventory::Role;
    use crate::policy::Family;
    use crate::report::summary::{CommandName, Summary};
    use crate::timing::Timings;

    fn row(name: &str, role: Role, status: Status) -> Row {
        Row {
            name: name.into(),
            address: "198.18.1.11".parse().unwrap(),
            role,
            status,
            error: None,
            notes: Vec::new(),
            changes: Vec::new(),
            elapsed_ms: 52,
            timings: Timings::default(),
            mode: None,
            audit: None,
        }
    }

    /// A verify of one host of each kind: ok, drifted, absent, unreachable,
    /// deposed, and one whose name tries to break out of the formats.
    fn report() -> Report {
        let mut drift = row("node-01", Role::Agent, Status::Drift);
        drift.changes = vec![
            Change::MembersExtra {
                family: Family::V4,
                nets: vec!["6.6.6.6/32".parse().unwrap()],
            },
            Change::GuardJumpMissing { family: Family::V4 },
        ];
        let mut gone = row("node-03", Role::Agent, Status::Unreachable);
        gone.error = Some("cannot connect to 198.18.1.13:22: Connection refused (os error 111)".into());
        let mut deposed = row("boot", Role::Bootstrap, Status::Deposed);
        deposed.notes = vec!["deposed (Terraform is replacing it)".into()];
        let mut hostile = row("evil\"} 1\n<x>&\u{1b}]0;t\u{7}\\", Role::Agent, Status::Failed);
        hostile.error = Some("a <b> & \"c\"\nsecond line \u{fffe}".into());
        let hosts = vec![
            row("node-00", Role::Master, Status::Ok),
            drift,
            row("node-02", Role::PublicAgent, Status::Absent),
            gone,
            deposed,
            hostile,
        ];
        Report {
            command: CommandName::Verify,
            summary: Summary::of(hosts.iter().map(|h| h.status)),
            hosts,
            whitelist: None,
            flows: None,
        }
    }

    fn run() -> Run {
        Run {
            ended: UNIX_EPOCH + Duration::from_millis(1_764_930_245_250),
            duration: Duration::from_millis(2_345),
            exit_code: 2,
        }
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("one\ntwo"), "one\\ntwo");
        assert_eq!(label_value("tab\there é"), "tab\there é");
    }

    #[test]
    fn xml_text_escapes_markup_and_what_xml_cannot_hold() {
        assert_eq!(
            xml("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(xml("a\nb\tc\rd"), "a&#10;b&#9;c&#13;d");
        assert_eq!(xml("\u{0}\u{1b}\u{fffe}ok"), "\\u{0000}\\u{001b}\\u{fffe}ok");
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(crate::timing::utc(UNIX_EPOCH), "1970-01-01T00:00:00");
        assert_eq!(
            crate::timing::utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00"
        );
        assert_eq!(
            crate::timing::utc(UNIX_EPOCH + Duration::from_secs(1_764_930_245)),
            "2025-12-05T10:24:05"
        );
    }

    /// The text format as its spec has it, line by line: HELP and TYPE
    /// once per family and before its samples, a family's samples
    /// together, each sample `name{label="value",...} number` with every
    /// label value properly quoted, and no series twice.
    fn check_exposition(text: &str) -> Result<usize, String> {
        let mut families: Vec<String> = Vec::new();
        let mut series = std::collections::HashSet::new();
        let mut samples = 0;
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if families.iter().any(|f| f == name) {
                    return Err(format!("{name}: HELP after its family began"));
                }
                families.push(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let want = format!("{} gauge", families.last().ok_or("TYPE before HELP")?);
                if rest != want {
                    return Err(format!("{line:?}: not {want:?}"));
                }
                continue;
            }
            let family = families.last().ok_or("a sample before any HELP")?;
            let rest = line
                .strip_prefix(family.as_str())
                .ok_or_else(|| format!("{line:?} is not of family {family}"))?;
            let (labels, value) = match rest.strip_prefix('{') {
                None => ("", rest.strip_prefix(' ').ok_or("no space before the value")?),
                Some(labels) => {
                    // Read label="value" pairs, honouring the escapes.
                    let mut chars = labels.char_indices().peekable();
                    let end = loop {
                        let name: String = chars.by_ref().map(|(_, c)| c).take_while(|c| *c != '=').collect();
                        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                            return Err(format!("bad label name {name:?} in {line:?}"));
                        }
                        if chars.next().map(|(_, c)| c) != Some('"') {
                            return Err(format!("unquoted value in {line:?}"));
                        }
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('\\' | '"' | 'n') => {}
                                    other => return Err(format!("bad escape {other:?} in {line:?}")),
                                },
                                Some('"') => break,
                                Some('\n') | None => return Err(format!("unterminated value in {line:?}")),
                                Some(_) => {}
                            }
                        }
                        match chars.next() {
                            Some((_, ',')) => continue,
                            Some((i, '}')) => break i,
                            other => return Err(format!("{other:?} after a value in {line:?}")),
                        }
                    };
                    let value = labels[end + 1..]
                        .strip_prefix(' ')
                        .ok_or("no space before the value")?;
                    (&labels[..end], value)
                }
            };
            value
                .parse::<f64>()
                .map_err(|e| format!("{value:?} in {line:?}: {e}"))?;
            if !series.insert(format!("{family}{{{labels}}}")) {
                return Err(format!("{line:?} repeats a series"));
            }
            samples += 1;
        }
        Ok(samples)
    }

    #[test]
    fn the_metrics_follow_the_text_format_with_every_name_escaped() {
        let labels = [("cluster".to_owned(), "eu \"1\"\\".to_owned())];
        let text = prometheus(&report(), &run(), &labels);
        // 4 run gauges; 6 statuses for each of 6 hosts; up and drift for
        // the 5 contacted.
        assert_eq!(check_exposition(&text), Ok(4 + 36 + 10), "{text}");
        for want in [
            "palisade_verify_last_run_timestamp_seconds{cluster=\"eu \\\"1\\\"\\\\\"} 1764930245.250\n",
            "palisade_verify_duration_seconds{cluster=\"eu \\\"1\\\"\\\\\"} 2.345\n",
            "palisade_verify_exit_code{cluster=\"eu \\\"1\\\"\\\\\"} 2\n",
            "palisade_verify_hosts{cluster=\"eu \\\"1\\\"\\\\\"} 6\n",
            "palisade_host_status{cluster=\"eu \\\"1\\\"\\\\\",host=\"node-01\",role=\"agent\",status=\"drift\"} 1\n",
            "palisade_host_status{cluster=\"eu \\\"1\\\"\\\\\",host=\"node-01\",role=\"agent\",status=\"ok\"} 0\n",
            "palisade_host_drift_items{cluster=\"eu \\\"1\\\"\\\\\",host=\"node-01\",role=\"agent\"} 2\n",
            "palisade_host_up{cluster=\"eu \\\"1\\\"\\\\\",host=\"node-03\",role=\"agent\"} 0\n",
            "palisade_host_status{cluster=\"eu \\\"1\\\"\\\\\",host=\"boot\",role=\"bootstrap\",status=\"deposed\"} 1\n",
            "host=\"evil\\\"} 1\\n<x>&\u{1b}]0;t\u{7}\\\\\",role=\"agent\",status=\"failed\"} 1\n",
        ] {
            assert!(text.contains(want), "lacks {want:?}:\n{text}");
        }
        assert!(!text.contains("host=\"boot\",role=\"bootstrap\"} "), "{text}");
        // Without labels, the run's gauges have none.
        let bare = prometheus(&report(), &run(), &[]);
        assert_eq!(check_exposition(&bare), Ok(50));
        assert!(bare.contains("\npalisade_verify_exit_code 2\n"), "{bare}");
        assert!(
            bare.contains("\npalisade_host_up{host=\"node-00\",role=\"master\"} 1\n"),
            "{bare}"
        );
    }

    #[test]
    fn hosts_in_audit_mode_have_their_flows_as_gauges() {
        let mut r = report();
        r.hosts[0].mode = Some(crate::policy::FirewallMode::Audit);
        r.hosts[0].audit = Some(super::super::hosts::AuditRow {
            flows: 3412,
            full: vec![Family::V4],
        });
        let text = prometheus(&r, &run(), &[]);
        // As without audit mode, and the two audit gauges of node-00.
        assert_eq!(check_exposition(&text), Ok(50 + 2), "{text}");
        assert!(text.contains("\npalisade_host_audit_flows{host=\"node-00\",role=\"master\"} 3412\n"));
        assert!(text.contains("\npalisade_host_audit_set_full{host=\"node-00\",role=\"master\"} 1\n"));
        assert!(!prometheus(&report(), &run(), &[]).contains("audit"));
        // promtool, where it is installed (CI installs it).
        if let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write as _;
            // Without the hostile host, whose name promtool rightly warns of.
            let mut clean = r;
            clean.hosts.retain(|h| !h.name.starts_with("evil"));
            let text = prometheus(&clean, &run(), &[]);
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "promtool: {out:?}\n{text}");
        }
    }

    #[test]
    fn the_checker_refuses_what_breaks_the_format() {
        assert!(check_exposition("# HELP a x\n# TYPE a gauge\na{h=\"x\"y\"} 1\n").is_err());
        assert!(check_exposition("# HELP a x\n# TYPE a gauge\na{h=\"x\\t\"} 1\n").is_err());
        assert!(check_exposition("# HELP a x\n# TYPE a gauge\na 1\na 1\n").is_err());
        assert!(check_exposition("# HELP a x\n# TYPE a gauge\nb 1\n").is_err());
        assert!(check_exposition("# HELP a x\n# TYPE a gauge\na one\n").is_err());
        assert_eq!(
            check_exposition("# HELP a x\n# TYPE a gauge\na{h=\"x\\\"\"} 1\n"),
            Ok(1)
        );
    }

    #[test]
    fn junit_has_a_case_per_host_and_counts_them() {
        let xml = junit(&report(), &run());
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"palisade verify\" tests=\"6\" failures=\"2\" errors=\"2\" skipped=\"1\" time=\"2.345\" timestamp=\"2025-12-05T10:24:02\">\n"), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 6, "{xml}");
        assert!(
            xml.contains("    <testcase classname=\"master\" name=\"node-00\" time=\"0.052\"/>\n"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<failure message=\"IPv4 set has 1 extra member(s): 6.6.6.6; IPv4 mangle PREROUTING has no jump to the guard\" \
                 type=\"drift\">- IPv4 member 6.6.6.6\n+ IPv4 mangle PREROUTING rule 1: the jump to the guard</failure>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<failure message=\"none of palisade&apos;s objects is on the node\" type=\"absent\"/>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"cannot connect to 198.18.1.13:22: Connection refused (os error 111)\" type=\"unreachable\">cannot connect"),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"deposed (Terraform is replacing it)\"/>"),
            "{xml}"
        );
        // A name or an error cannot close a tag or smuggle a control character.
        assert!(
            xml.contains("name=\"evil&quot;} 1\\n&lt;x&gt;&amp;\\u{001b}]0;t\\u{0007}\\\" time"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "message=\"a &lt;b&gt; &amp; &quot;c&quot;\\nsecond line \\u{fffe}\" type=\"failed\">a &lt;b&gt; &amp; &quot;c&quot;\nsecond line \\u{fffe}</error>"
            ),
            "{xml}"
        );
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "{xml:?}");
    }
}
