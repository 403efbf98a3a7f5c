//! The 42 siit-pktgen conformance vectors (../shared/conformance/siit-pktgen, data from
//! Jool's graybox suite, read at test time and never copied into the repository) through
//! the reference translator, configured as their README says.
//!
//! The loader and the comparison are public: the data plane's tests (BPF_PROG_TEST_RUN
//! and network namespaces) run the same vectors with them.
//!
//! Run with `cargo test -p vdmm-common siit_pktgen -- --nocapture` to see one line per
//! case and the closing `N passed, M failed`.

extern crate std;
use std::format;
use std::fs;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::println;
use std::string::String;
use std::vec::Vec;

use super::{Outcome, translate_4to6, translate_6to4};
use crate::translate::config::TranslatorConfig;

/// Where the vectors live: `../shared/conformance/siit-pktgen` beside the checkout.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/siit-pktgen")
}

/// One line of cases.tsv.
pub struct Case {
    pub direction: String,
    pub sender: String,
    pub receiver: String,
    pub ignore: Vec<usize>,
}

/// Reads cases.tsv in `dir`; panics with the expected path when it is missing (a test
/// must fail, not skip, without its vectors).
pub fn load_cases(dir: &Path) -> Vec<Case> {
    let tsv = dir.join("cases.tsv");
    let text = fs::read_to_string(&tsv).unwrap_or_else(|e| {
        panic!(
            "siit-pktgen conformance vectors not found: cannot read {} ({e}); they must be at \
             ../shared/conformance/siit-pktgen beside the checkout (expected directory {})",
            tsv.display(),
            dir.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 3, "cases.tsv: bad line {l:?}");
            Case {
                direction: f[0].into(),
                sender: f[1].into(),
                receiver: f[2].into(),
                ignore: f
                    .get(3)
                    .map(|s| {
                        s.split(',')
                            .filter(|x| !x.trim().is_empty())
                            .map(|x| x.trim().parse().expect("cases.tsv: bad ignore offset"))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Compares `got` with `want` except at the ignored offsets; `None` when equal.
pub fn compare(got: &[u8], want: &[u8], ignore: &[usize]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("length {} instead of {}", got.len(), want.len()));
    }
    let diffs: Vec<usize> = (0..got.len())
        .filter(|i| got[*i] != want[*i] && !ignore.contains(i))
        .collect();
    if diffs.is_empty() {
        return None;
    }
    let shown: Vec<String> = diffs
        .iter()
        .take(8)
        .map(|i| format!("@{i}: {:02x} instead of {:02x}", got[*i], want[*i]))
        .collect();
    Some(format!(
        "{} byte(s) differ: {}",
        diffs.len(),
        shown.join(", ")
    ))
}

/// Runs one case through the reference translator; `Err(reason)` when it fails.
pub fn run_case(dir: &Path, cfg: &TranslatorConfig, c: &Case) -> Result<(), String> {
    let read = |sub: &str, name: &str| {
        let p = dir.join(sub).join(format!("{name}.pkt"));
        fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let sent = read("sender", &c.sender)?;
    let want = read("receiver", &c.receiver)?;
    let outcome = match c.direction.as_str() {
        "4to6" => translate_4to6(&sent, cfg),
        "6to4" => translate_6to4(&sent, cfg),
        d => return Err(format!("unknown direction {d:?}")),
    };
    match &outcome {
        Outcome::Translated { packets, .. } if packets.len() == 1 => {
            match compare(&packets[0], &want, &c.ignore) {
                None => Ok(()),
                Some(why) => Err(why),
            }
        }
        other => Err(format!("expected one packet, got: {other}")),
    }
}

#[test]
fn siit_pktgen_vectors() {
    let dir = vectors_dir();
    assert!(
        dir.is_dir(),
        "siit-pktgen conformance vectors missing: expected the directory {} \
         (../shared/conformance/siit-pktgen beside the checkout)",
        dir.display()
    );
    let cfg = TranslatorConfig::conformance();
    let cases = load_cases(&dir);
    let (mut passed, mut failed) = (0, 0);
    for c in &cases {
        match run_case(&dir, &cfg, c) {
            Ok(()) => {
                passed += 1;
                println!("ok   {} {} -> {}", c.direction, c.sender, c.receiver);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {} {} -> {}: {why}", c.direction, c.sender, c.receiver);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    assert_eq!(cases.len(), 42, "cases.tsv should list 42 vectors");
    assert_eq!(
        failed, 0,
        "{failed} conformance vector(s) failed (see the lines above)"
    );
}
