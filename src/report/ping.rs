//! `palisade ping`: one row per host.

use std::net::IpAddr;

use serde::Serialize;

use super::hosts::Status;
use crate::inventory::Role;
use crate::observe::probe::{Backend, Probe};
use crate::transport::HostOutcome;

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub address: IpAddr,
    pub role: Role,
    pub status: Status,
    pub error: Option<String>,
    pub controller_address: Option<IpAddr>,
    pub backend: Option<Backend>,
    pub ipset_version: Option<String>,
    pub iptables_version: Option<String>,
    pub systemd: Option<bool>,
    pub elapsed_ms: u128,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub total: usize,
    pub ok: usize,
    pub unreachable: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub hosts: Vec<Row>,
    pub summary: Summary,
}

impl Report {
    pub fn new(outcomes: Vec<HostOutcome<Probe>>) -> Report {
        let hosts: Vec<Row> = outcomes.into_iter().map(row).collect();
        let count = |s: Status| hosts.iter().filter(|r| r.status == s).count();
        let summary = Summary {
            total: hosts.len(),
            ok: count(Status::Ok),
            unreachable: count(Status::Unreachable),
            failed: count(Status::Failed),
        };
        Report { hosts, summary }
    }

    pub fn all_ok(&self) -> bool {
        self.summary.ok == self.summary.total
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn table(&self) -> String {
        let mut rows =
            vec![["NAME", "ADDRESS", "STATUS", "BACKEND", "SEES US AS", "DETAIL"].map(String::from)];
        for r in &self.hosts {
            let backend = match r.backend {
                Some(Backend::NfTables) => "nf_tables",
                Some(Backend::Legacy) => "legacy",
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
        let mut out = super::columns(&rows);
        let s = &self.summary;
        out.push_str(&format!(
            "\n{} hosts: {} ok, {} unreachable, {} failed\n",
            s.total, s.ok, s.unreachable, s.failed
        ));
        out
    }
}

fn row(outcome: HostOutcome<Probe>) -> Row {
    let host = outcome.host;
    let (status, error, probe) = match outcome.result {
        Ok(probe) => {
            let missing = probe.missing();
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
        name: host.name.to_string(),
        address: host.address,
        role: host.role,
        status,
        error,
        controller_address: probe.as_ref().and_then(|p| p.controller_address),
        backend: probe.as_ref().and_then(|p| p.backend),
        ipset_version: probe.as_ref().and_then(|p| p.ipset_version.clone()),
        iptables_version: probe.as_ref().and_then(|p| p.iptables_version.clone()),
        systemd: probe.as_ref().map(|p| p.systemd),
        elapsed_ms: outcome.elapsed.as_millis(),
    }
}
