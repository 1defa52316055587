//! palisade's `diff::family_diff` as of commit 57697e0, cut down to what the
//! miscompile needs: a `Vec<usize>` of rule numbers, empty when the jump is
//! missing, matched against `[]`, `[1]`, `[p]` and the rest, then handed to
//! `Jump::of`, whose `[1]` pattern rustc inlines. A release build of rustc
//! 1.95.0 reads the first element of the empty vector (its dangling pointer,
//! 0x8) before checking its length, and the program dies of SIGSEGV; a
//! debug build prints the expected line. See README.md.

use std::hint::black_box;

/// The fix for the jumps to our chain (palisade `render::fix::Jump`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Jump {
    /// One jump, the first rule: left as it is.
    Keep,
    /// Delete the jumps there are, then put one at the top.
    Reinsert { delete: usize },
}

impl Jump {
    /// The fix for jumps at these rule numbers (1-based, in order).
    fn of(positions: &[usize]) -> Jump {
        match positions {
            [1] => Jump::Keep,
            _ => Jump::Reinsert {
                delete: positions.len(),
            },
        }
    }
}

/// What plan reports (palisade `diff::Change`, the jump's variants).
#[derive(Debug)]
#[allow(dead_code)] // read by Debug only
#[allow(clippy::enum_variant_names)] // palisade's names
enum Change {
    JumpMissing,
    JumpNotFirst { position: usize },
    JumpDuplicated { count: usize },
}

/// The rule numbers (from 1) of the rules that are exactly `rule`.
fn positions(rules: &[String], rule: &str) -> Vec<usize> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| *r == rule)
        .map(|(i, _)| i + 1)
        .collect()
}

/// The jump's differences, pushed to `out`, and its fix.
#[inline(never)]
fn family_diff(input: &[String], out: &mut Vec<Change>) -> Jump {
    let jumps = positions(input, "-A INPUT -j PALISADE");
    match jumps.as_slice() {
        [] => out.push(Change::JumpMissing),
        [1] => {}
        [p] => out.push(Change::JumpNotFirst { position: *p }),
        many => out.push(Change::JumpDuplicated { count: many.len() }),
    }
    Jump::of(&jumps)
}

fn main() {
    // A node without our jump: INPUT has other rules, or none.
    let input: Vec<String> = black_box(vec!["-A INPUT -j ACCEPT".to_string()]);
    let mut out = Vec::new();
    let jump = family_diff(&input, &mut out);
    println!("{jump:?} {out:?}");
    assert_eq!(jump, Jump::Reinsert { delete: 0 });
    println!("expected: Reinsert {{ delete: 0 }} [JumpMissing]; no miscompile here");
}
