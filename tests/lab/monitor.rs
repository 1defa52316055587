//! `verify --prometheus` and `--junit` against real nodes: a member taken
//! out of a node's set by hand is drift in both files, named as the table
//! names it, while a node that matches is ok in both.

use crate::harness::{Needs, Spec};
use crate::{bin, expect, lab, lab_args, lab_tests};

lab_tests![Needs::Plain =>
    drift_by_hand_shows_in_the_metrics_and_the_junit_report,
];

fn drift_by_hand_shows_in_the_metrics_and_the_junit_report() {
    let lab = lab!(Spec {
        nodes: 2,
        ..Spec::default()
    });
    expect(lab.palisade(bin(), &lab_args("apply", true, true, &[])), 0);
    let n0 = lab.nodes[0].ip4.to_string();
    lab.must(&lab.nodes[1].ns, &["ipset", "del", "palisade4", &n0]);

    let prom = lab.dir.join("palisade.prom");
    let junit = lab.dir.join("verify.xml");
    let (p, j) = (prom.to_str().unwrap(), junit.to_str().unwrap());
    let extra = [
        "--prometheus",
        p,
        "--prometheus-label",
        "cluster=lab",
        "--junit",
        j,
    ];
    let report = expect(lab.palisade(bin(), &lab_args("verify", true, true, &extra)), 3);

    let text = std::fs::read_to_string(&prom).unwrap();
    for want in [
        "palisade_verify_exit_code{cluster=\"lab\"} 3\n",
        "palisade_verify_hosts{cluster=\"lab\"} 2\n",
        "palisade_host_status{cluster=\"lab\",host=\"node-01\",role=\"agent\",status=\"drift\"} 1\n",
        "palisade_host_drift_items{cluster=\"lab\",host=\"node-01\",role=\"agent\"} 1\n",
        "palisade_host_up{cluster=\"lab\",host=\"node-01\",role=\"agent\"} 1\n",
        "palisade_host_status{cluster=\"lab\",host=\"node-00\",role=\"master\",status=\"ok\"} 1\n",
        "palisade_host_drift_items{cluster=\"lab\",host=\"node-00\",role=\"master\"} 0\n",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}\n{report:#}");
    }

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"agent\" name=\"node-01\" time=\""),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            "<failure message=\"IPv4 set lacks 1 member(s): {n0}\" type=\"drift\">+ IPv4 member {n0}</failure>"
        )),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"master\" name=\"node-00\" time=\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
}
