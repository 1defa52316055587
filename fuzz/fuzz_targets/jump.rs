//! `--jump user@host[:port][,...]`: what parses prints back as text that
//! parses to the same bastions; a refusal is escaped clean and short (it quotes the
//! value, which is the operator's own flag, not a document's secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::BastionPath;
use palisade_fuzz::check_message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match text.parse::<BastionPath>() {
        Ok(jump) => {
            let shown = jump.to_string();
            assert_eq!(
                shown.parse::<BastionPath>().as_ref(),
                Ok(&jump),
                "{shown:?} from {text:?}"
            );
            assert!(!jump.hops.is_empty() && jump.hops.iter().all(|h| h.port != 0));
        }
        Err(e) => check_message(&e),
    }
});
