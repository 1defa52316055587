//! What palisade prints, and the exit code a run ends with.

pub(crate) mod changes;
pub(crate) mod colour;
pub(crate) mod flows;
pub(crate) mod hosts;
pub(crate) mod inventory;
pub(crate) mod limit;
pub(crate) mod monitor;
pub(crate) mod output;
pub(crate) mod ping;
pub(crate) mod progress;
pub(crate) mod summary;
pub(crate) mod terminal;
mod whitelist;

/// The one JSON shape, as the lab tests check it too.
#[cfg(test)]
#[path = "../../tests/support/report_shape.rs"]
pub(crate) mod report_shape;

use std::process::ExitCode;

/// How a run ended, decided in one place so that every command agrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything is as it should be: exit 0.
    Ok,
    /// Some hosts failed or were unreachable: exit 2.
    HostsFailed,
    /// `verify` found a host that differs from the whitelist: exit 3.
    Drift,
}

/// Bad input or usage; no node was touched.
pub const EXIT_USAGE: u8 = 1;

impl ExitStatus {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The exit code as a number, for the reports that record it.
    pub(crate) fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::HostsFailed => 2,
            ExitStatus::Drift => 3,
        }
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
/// Every cell is escaped for the terminal.
pub(crate) fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    columns_painted(rows, |_, _, cell| cell)
}

/// [`columns`], with `paint(row, column, padded cell)` applied to each cell
/// after it is escaped and padded, so colour never counts towards a width.
pub(crate) fn columns_painted<const N: usize>(
    rows: &[[String; N]],
    paint: impl Fn(usize, usize, String) -> String,
) -> String {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.clone().map(|cell| terminal::escape(&cell).into_owned()))
        .collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(&paint(r, i, cell.clone()));
            } else {
                out.push_str(&paint(r, i, format!("{cell:<w$}")));
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
    out
}
