//! The smallest program found that shows the miscompile (the code of the
//! upstream report in README.md): a `[1]` pattern matched on an empty slice
//! in a function that rustc's MIR inliner inlines into another. rustc
//! 1.95.0 with `-C opt-level=2` or `3` reads `positions[0]` before it
//! checks the length (MIR pass EarlyOtherwiseBranch), so this dies of
//! SIGSEGV instead of printing 9.

use std::hint::black_box;

fn is_first(positions: &[usize]) -> u32 {
    match positions {
        [1] => 7,
        _ => 9,
    }
}

#[inline(never)]
fn family_diff(positions: &[usize]) -> u32 {
    is_first(positions)
}

fn main() {
    println!("{}", family_diff(black_box(&[])));
}
