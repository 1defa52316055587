//! `palisade ping`: one row per host.

use std::net::IpAddr;

use serde::Serialize;

use super::colour::Paint;
use super::hosts::Status;
use super::summary::{CommandName, Summary};
use crate::inventory::Host;
use crate::inventory::Role;
use crate::observe::probe::{Backend, Probe};
use crate::policy::FirewallBackend;
use crate::transport::HostOutcome;

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) address: IpAddr,
    pub(crate) role: Role,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    /// Always empty for ping; there so that every command's rows share
    /// their keys.
    pub(crate) notes: Vec<String>,
    pub(crate) controller_address: Option<IpAddr>,
    /// Where palisade keeps its objects on this node (`--backend`), whose
    /// tools the node was checked for.
    pub(crate) firewall: FirewallBackend,
    /// The iptables flavour the node runs, when it has iptables.
    pub(crate) backend: Option<Backend>,
    pub(crate) ipset_version: Option<String>,
    pub(crate) iptables_version: Option<String>,
    pub(crate) systemd: Option<bool>,
    pub(crate) elapsed_ms: u128,
}

/// `--json` prints it as it is: the shape every command shares (see the
/// README), with ping's own keys in each row.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) command: CommandName,
    pub(crate) hosts: Vec<Row>,
    pub(crate) summary: Summary,
}

impl Report {
    /// The rows for `backend`, the one the nodes are to get: a node that
    /// lacks one of its tools fails.
    pub(crate) fn new(outcomes: Vec<HostOutcome<Host, Probe>>, backend: FirewallBackend) -> Report {
        let hosts: Vec<Row> = outcomes.into_iter().map(|o| row(o, backend)).collect();
        Report {
            command: CommandName::Ping,
            summary: Summary::of(hosts.iter().map(|r| r.status)),
            hosts,
        }
    }

    pub(crate) fn all_ok(&self) -> bool {
        self.summary.ok == self.summary.total
    }

    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn table(&self, paint: Paint) -> String {
        let mut rows =
            vec![["NAME", "ADDRESS", "STATUS", "BACKEND", "SEES US AS", "DETAIL"].map(String::from)];
        for r in &self.hosts {
            let backend = match r.backend {
                Some(Backend::NfTables) => "nf_tables",
                Some(Backend::Legacy) => "legacy",
                Some(Backend::Nftables) => "nftables",
                None => "-",
            };
            let detail = r
                .error
                .clone()
                .unwrap_or_else(|| r.iptables_version.clone().unwrap_or_default());
            rows.push([
                r.name.clone(),
                r.address.to_string(),
                r.status.as_str().into(),
                backend.into(),
                r.controller_address.map_or("-".into(), |a| a.to_string()),
                detail,
            ]);
        }
        let mut out = super::columns_painted(&rows, |r, col, cell| match r.checked_sub(1) {
            Some(i) if col == 2 => paint.tone(self.hosts[i].status.tone(), &cell),
            _ => cell,
        });
        out.push('\n');
        out.push_str(&self.summary.line(paint));
        out
    }
}

fn row(outcome: HostOutcome<Host, Probe>, backend: FirewallBackend) -> Row {
    let host = outcome.host;
    let (status, error, probe) = match outcome.result {
        Ok(probe) => {
            let missing = probe.missing(backend);
            if missing.is_empty() {
                (Status::Ok, None, Some(probe))
            } else {
                let error = format!("missing on the node: {}", missing.join(", "));
                (Status::Failed, Some(error), Some(probe))
            }
        }
        Err(e) => (Status::of_error(&e), Some(e.to_string()), None),
    };
    Row {
        name: host.name().to_string(),
        address: host.address(),
        role: host.role(),
        status,
        error,
        notes: Vec::new(),
        controller_address: probe.as_ref().and_then(|p| p.controller_address),
        firewall: probe.as_ref().map_or(backend, |p| p.resolve(backend)),
        backend: probe.as_ref().and_then(|p| p.backend),
        ipset_version: probe.as_ref().and_then(|p| p.ipset_version.clone()),
        iptables_version: probe.as_ref().and_then(|p| p.iptables_version.clone()),
        systemd: probe.as_ref().map(|p| p.systemd),
        elapsed_ms: outcome.elapsed.as_millis(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::report_shape;
    use crate::transport::HostError;

    fn probe() -> Probe {
        Probe {
            controller_address: Some("198.18.0.1".parse().unwrap()),
            lacks: vec!["nft".into()],
            ipset_version: Some("ipset v7.17".into()),
            iptables_version: Some("iptables v1.8.9 (nf_tables)".into()),
            backend: Some(Backend::NfTables),
            systemd: false,
        }
    }

    #[test]
    fn ping_serialises_to_the_one_shape_and_colours_only_the_status() {
        let hosts = crate::inventory::load(
            &crate::inventory::Source::Static(
                concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml").into(),
            ),
            &Default::default(),
        )
        .unwrap()
        .hosts;
        let mut no_ipset = probe();
        no_ipset.lacks.push("ipset".into());
        let results = [
            Ok(probe()),
            Ok(no_ipset),
            Err(HostError::ConnectTimeout {
                addr: "x".into(),
                after: Duration::from_secs(1),
            }),
        ];
        let outcomes = hosts
            .into_iter()
            .zip(results)
            .map(|(host, result)| HostOutcome {
                host,
                result,
                elapsed: Duration::from_millis(3),
                timings: Default::default(),
                log: Vec::new(),
            })
            .collect();
        let report = Report::new(outcomes, FirewallBackend::Iptables);
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        report_shape::check(&json).unwrap();
        assert_eq!(json["summary"]["ok"], 1);
        assert_eq!(json["summary"]["drift"], 0, "zero counts are there");
        let plain = report.table(Paint::PLAIN);
        assert!(
            plain.ends_with("\n3 hosts: 1 ok, 1 unreachable, 1 failed\n"),
            "{plain}"
        );
        let coloured = report.table(Paint { on: true });
        // The padded status cell is coloured; the columns stay aligned.
        assert!(
            coloured.contains("\u{1b}[32mok         \u{1b}[0m  nf_tables"),
            "{coloured:?}"
        );
        let strip = |s: &str| {
            s.replace("\u{1b}[32m", "")
                .replace("\u{1b}[31m", "")
                .replace("\u{1b}[0m", "")
        };
        assert_eq!(strip(&coloured), plain);
    }
}
