//! What a Terraform document held, beside the hosts: how many machines of
//! each type were read and which other resources were passed over, so an
//! operator sees at once whether their fleet was understood (a provider's
//! machine type palisade does not know shows up as skipped, not as nothing).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Inventory;

/// Counts per resource type. Data sources are not counted: they describe
/// things, they are not things.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Hosts read, per machine type (tainted and deposed instances included).
    pub(crate) found: BTreeMap<String, usize>,
    /// Managed resource instances of every other type.
    pub(crate) skipped: BTreeMap<String, usize>,
}

/// Counts a skipped resource type. Type names come from the file, so one
/// that is not a plain identifier is escaped: the census goes to a terminal.
pub(super) fn skip(skipped: &mut BTreeMap<String, usize>, rtype: &str, instances: usize) {
    *skipped
        .entry(crate::text::escape(rtype).into_owned())
        .or_default() += instances;
}

impl Census {
    /// `aws_security_group 2, aws_vpc 1`, for messages.
    pub(crate) fn describe(counts: &BTreeMap<String, usize>) -> String {
        counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fleet and, for Terraform states, its census. Outputs and static
/// inventories have no resource types, so no census.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survey {
    pub inventory: Inventory,
    pub census: Option<Census>,
    /// Machines `--skip-addressless` left out (resource addresses): the
    /// state holds no address for them.
    pub(crate) left_out: Vec<String>,
}
