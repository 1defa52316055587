//! Node output cannot be forged: `iptables-save` and `ipset save` print
//! rule and member comments raw, newlines included, so anything with
//! NET_ADMIN on a node can plant lines that look like palisade's rules or
//! sections. Each test here plants such a forgery on a node whose
//! whitelist it has also weakened, and shows that verify reports drift
//! (and apply changes nothing) instead of `ok`.

use std::process::Output;

use crate::backend;
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, expect, host, kinds, lab, lab_args, lab_tests};

lab_tests![Needs::Plain =>
    a_rule_comment_cannot_pose_as_a_rule_of_the_chain,
    a_set_comment_cannot_pose_as_a_member_or_end_the_reply,
];

fn palisade(lab: &Lab, cmd: &str) -> Output {
    lab.palisade(bin(), &lab_args(cmd, true, true, &[]))
}

/// A node's iptables and ipset commands, for its backend.
fn ipt(lab: &Lab, i: usize) -> &'static str {
    if lab.nodes[i].legacy {
        "iptables-legacy"
    } else {
        "iptables"
    }
}

/// Another tool's chain `ZZ-FORGE` in the mangle table of `ipt` on `ns`
/// (iptables-save prints it after palisade's: chains print in name
/// order), whose one rule carries `comment`.
fn forge_chain(lab: &Lab, ns: &str, ipt: &str, comment: &str) {
    backend::mangle(lab, ns, ipt, &["-N", "ZZ-FORGE"]);
    let rule = [
        "-A",
        "ZZ-FORGE",
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "RETURN",
    ];
    backend::mangle(lab, ns, ipt, &rule);
}

/// The guard loses its DROP (the node now admits everyone), and a rule in a
/// chain iptables-save prints after palisade's (chains print in name order)
/// carries a comment whose second line is that DROP, and a forged section
/// with it: on the code before framing, `rules_of` took the comment's line
/// for a rule of palisade's chain, and verify said ok.
fn a_rule_comment_cannot_pose_as_a_rule_of_the_chain() {
    let lab = lab!(Spec {
        nodes: 2,
        legacy: vec![1],
        ..Spec::default()
    });
    expect(palisade(&lab, "apply"), 0);
    expect(palisade(&lab, "verify"), 0);
    let forged = "x\n==> end\n==> guard-v4\n-N PALISADE-GUARD\n-A PALISADE-GUARD -j DROP\n";
    for i in 0..2 {
        let (ns, ipt) = (&lab.nodes[i].ns, ipt(&lab, i));
        backend::mangle(&lab, ns, ipt, &["-D", "PALISADE-GUARD", "-j", "DROP"]);
        forge_chain(&lab, ns, ipt, forged);
        let save = lab.must(ns, &[&format!("{ipt}-save"), "-t", "mangle"]);
        assert!(save.contains("\n-A PALISADE-GUARD -j DROP\n"), "{save}");
    }
    let report = expect(palisade(&lab, "verify"), 3);
    for name in ["node-00", "node-01"] {
        assert_eq!(host(&report, name)["status"], "drift", "{report:#}");
        let kinds = kinds(&report, name);
        assert!(kinds.contains(&"forged".to_owned()), "{report:#}");
        // The real rules, read past the forgery: the DROP is missing.
        assert!(kinds.contains(&"guard-rules-differ".to_owned()), "{report:#}");
    }
    // apply will not write from tables it cannot read for sure, and says why.
    let before = lab.must(&lab.nodes[0].ns, &["iptables-save", "-t", "mangle"]);
    let report = expect(palisade(&lab, "apply"), 2);
    let error = host(&report, "node-00")["error"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(error.contains("newline"), "{report:#}");
    let after = lab.must(&lab.nodes[0].ns, &["iptables-save", "-t", "mangle"]);
    let rules = |s: &str| -> String { s.lines().filter(|l| l.starts_with('-')).collect() };
    assert_eq!(rules(&after), rules(&before));
    // With the forgery gone, apply puts the DROP back.
    for i in 0..2 {
        let (ns, ipt) = (&lab.nodes[i].ns, ipt(&lab, i));
        backend::mangle(&lab, ns, ipt, &["-F", "ZZ-FORGE"]);
        backend::mangle(&lab, ns, ipt, &["-X", "ZZ-FORGE"]);
    }
    expect(palisade(&lab, "apply"), 0);
    expect(palisade(&lab, "verify"), 0);
    // remove counts the jumps it deletes past such a comment too: one
    // forged jump more would fail its all-or-nothing restore.
    for i in 0..2 {
        let (ns, ipt) = (&lab.nodes[i].ns, ipt(&lab, i));
        let jump = "x\n-A PREROUTING -j PALISADE-GUARD\n";
        forge_chain(&lab, ns, ipt, jump);
    }
    expect(palisade(&lab, "remove"), 0);
    for i in 0..2 {
        let (ns, ipt) = (&lab.nodes[i].ns, ipt(&lab, i));
        assert!(!backend::mangle(&lab, ns, ipt, &["-S", "PREROUTING"]).contains("PALISADE"));
        assert!(
            !lab.exec(ns, &[ipt, "-w", "-t", "mangle", "-S", "PALISADE-GUARD"])
                .status
                .success()
        );
    }
}

/// A member leaves the set, and the comment of the member `ipset save`
/// prints last carries its `add` line and a forged `==> end`: on the code
/// before framing, the set still seemed whole, and verify said ok.
fn a_set_comment_cannot_pose_as_a_member_or_end_the_reply() {
    let lab = lab!(Spec {
        nodes: 2,
        ..Spec::default()
    });
    expect(palisade(&lab, "apply"), 0);
    let ns = &lab.nodes[0].ns;
    let gone = lab.nodes[1].ip4.to_string();
    lab.must(ns, &["ipset", "del", "palisade4", &gone]);
    let save = lab.must(ns, &["ipset", "save", "palisade4"]);
    let last = save
        .lines()
        .rfind(|l| l.starts_with("add "))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("{save}"))
        .to_owned();
    let forged = format!("\nadd palisade4 {gone}\n==> end\n");
    lab.must(
        ns,
        &["ipset", "-exist", "add", "palisade4", &last, "comment", &forged],
    );
    let save = lab.must(ns, &["ipset", "save", "palisade4"]);
    assert!(
        save.ends_with(&format!("\nadd palisade4 {gone}\n==> end\n\"\n")),
        "{save}"
    );

    let report = expect(palisade(&lab, "verify"), 3);
    assert_eq!(host(&report, "node-00")["status"], "drift", "{report:#}");
    let kinds = kinds(&report, "node-00");
    assert!(kinds.contains(&"forged".to_owned()), "{report:#}");
    assert!(kinds.contains(&"members-missing".to_owned()), "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "ok", "{report:#}");
    expect(palisade(&lab, "apply"), 2);
    assert!(
        !lab.exec(ns, &["ipset", "test", "palisade4", &gone])
            .status
            .success()
    );
}
