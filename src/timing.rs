//! Where one host's time went, stage by stage: the transport measures the
//! connection (TCP connect, key exchange, authentication), the per-host job
//! measures its remote steps, and the report shows them (`-v`, and a
//! `timings` object per host in `--json`). It sits apart from both so that
//! the transport need not know the report, nor the report the transport's
//! internals.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// One part of a host's run. The order here is the order a run goes
/// through them, and the order they are shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Stage {
    /// Waiting for the bastion connection (`--jump`), shared by every host.
    Jump,
    /// The TCP connection to the node's SSH port (or the bastion's tunnel).
    Connect,
    /// From the SSH banner exchange to the end of the key exchange.
    Kex,
    /// Public-key authentication.
    Auth,
    /// `ping`'s one step: who the node thinks we are, whether sudo works,
    /// and which tools it has.
    Probe,
    /// Reading the node's firewall state; the first one also says who the
    /// node thinks we are and whether sudo works (one exec).
    Observe,
    /// The change itself, with its armed rollback.
    Apply,
    /// Proving that a *new* connection still gets through the changed node.
    FreshConnection,
    /// Telling the node to keep the change, and reading it back.
    Confirm,
    /// Waiting for a node whose change was not confirmed to roll back.
    Rollback,
    /// Taking palisade's objects off the node.
    Remove,
    /// The whole host, from the first connection attempt to the goodbye.
    Total,
}

impl Stage {
    /// The name in `--json` and in the `-v` log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Jump => "jump",
            Stage::Connect => "connect",
            Stage::Kex => "kex",
            Stage::Auth => "auth",
            Stage::Probe => "probe",
            Stage::Observe => "observe",
            Stage::Apply => "apply",
            Stage::FreshConnection => "fresh_connection",
            Stage::Confirm => "confirm",
            Stage::Rollback => "rollback",
            Stage::Remove => "remove",
            Stage::Total => "total",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time each stage took on one host. A stage that runs more than once
/// (a retried connection, `remove`'s second observe) adds up; a stage that
/// never ran is absent, not zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timings(BTreeMap<Stage, Duration>);

impl Timings {
    pub(crate) fn add(&mut self, stage: Stage, took: Duration) {
        *self.0.entry(stage).or_default() += took;
    }

    /// Adds every stage of `other` to this one.
    pub(crate) fn merge(&mut self, other: &Timings) {
        for (&stage, &took) in &other.0 {
            self.add(stage, took);
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, stage: Stage) -> Option<Duration> {
        self.0.get(&stage).copied()
    }

    /// The stages that ran, in the order a run goes through them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Stage, Duration)> + '_ {
        self.0.iter().map(|(&p, &d)| (p, d))
    }
}

/// `{"connect": 1, "kex": 12, ...}`: whole milliseconds, rounded down, so
/// that the stages never add up to more than the `total` they are part of.
impl Serialize for Timings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (stage, took) in self.iter() {
            let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            map.serialize_entry(stage.as_str(), &ms)?;
        }
        map.end()
    }
}

/// `t` as ISO 8601 in UTC, to the second, without a zone: JUnit's
/// timestamp (the form the Ant JUnit schema takes), and a certificate's
/// validity in messages.
pub(crate) fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_stage_that_runs_twice_adds_up_and_one_that_never_ran_is_absent() {
        let mut t = Timings::default();
        t.add(Stage::Observe, ms(5));
        t.add(Stage::Observe, ms(7));
        assert_eq!(t.get(Stage::Observe), Some(ms(12)));
        assert_eq!(t.get(Stage::Apply), None);
        let mut other = Timings::default();
        other.add(Stage::Observe, ms(1));
        other.add(Stage::Connect, ms(2));
        t.merge(&other);
        assert_eq!(t.get(Stage::Observe), Some(ms(13)));
        assert_eq!(t.get(Stage::Connect), Some(ms(2)));
    }

    #[test]
    fn stages_come_out_in_the_order_a_run_goes_through_them() {
        let mut t = Timings::default();
        for p in [
            Stage::Total,
            Stage::Confirm,
            Stage::Auth,
            Stage::Connect,
            Stage::Kex,
        ] {
            t.add(p, ms(1));
        }
        let order: Vec<Stage> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(
            order,
            [
                Stage::Connect,
                Stage::Kex,
                Stage::Auth,
                Stage::Confirm,
                Stage::Total
            ]
        );
    }

    #[test]
    fn json_is_an_object_of_whole_milliseconds_named_after_the_stages() {
        let mut t = Timings::default();
        t.add(Stage::Connect, Duration::from_micros(1_900));
        t.add(Stage::Kex, Duration::from_micros(10_900));
        t.add(Stage::FreshConnection, Duration::from_micros(400));
        t.add(Stage::Total, Duration::from_micros(13_200));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"connect": 1, "kex": 10, "fresh_connection": 0, "total": 13})
        );
        // Rounded down, the parts never exceed the whole they came from.
        let parts: u64 = ["connect", "kex", "fresh_connection"]
            .iter()
            .map(|k| json[k].as_u64().unwrap())
            .sum();
        assert!(parts <= json["total"].as_u64().unwrap());
        assert_eq!(serde_json::to_string(&Timings::default()).unwrap(), "{}");
    }
}
