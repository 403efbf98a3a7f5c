//! One packet through a data plane pinned by an agent or `vdmm-ctl load`: the pinned
//! `vdmm_xdp` run once with `BPF_PROG_TEST_RUN` on a frame, its verdict and the counters
//! it moved checked. Enter the namespace of the ingress interface first
//! ([`crate::netns::Netns::enter`]): the program's FIB look-ups use it.

use anyhow::{Context, Result, bail};
use aya::{TestRun, TestRunOptions, programs::Xdp};
use vdmm_common::{Action, Reason, TunnelKind};
use vdmm_ctl::{maps::Dataplane, pin::PinDir};

/// 4in4 encapsulations sent back out (XDP_TX) so far.
pub fn encaps4(dp: &Dataplane) -> Result<u64> {
    Ok(dp
        .counters()?
        .iter()
        .filter(|r| {
            r.reason == Reason::Encap && r.kind == TunnelKind::Ip4in4 && r.action == Action::Tx
        })
        .map(|r| r.packets)
        .sum())
}

/// The pinned `vdmm_xdp` under `pins`.
pub fn program(pins: &PinDir) -> Result<Xdp> {
    Xdp::from_pin(pins.program(), aya_obj::programs::XdpAttachType::Interface)
        .with_context(|| format!("open the pinned vdmm_xdp in {}", pins.path().display()))
}

/// The `xdp_md` context of `frame` arriving on interface `ingress`.
pub fn xdp_md(frame: &[u8], ingress: u32) -> Vec<u8> {
    [0u32, frame.len() as u32, 0, ingress, 0, 0]
        .iter()
        .flat_map(|f| f.to_ne_bytes())
        .collect()
}

/// Runs `frame` (arriving on `ingress`) through the pinned program once and checks that
/// it was encapsulated 4in4 and sent back out: the data plane forwards it. Returns the
/// output frame.
pub fn expect_encap4_tx(pins: &PinDir, frame: &[u8], ingress: u32) -> Result<Vec<u8>> {
    let prog = program(pins)?;
    let ctx = xdp_md(frame, ingress);
    let dp = Dataplane::open(pins)?;
    let before = encaps4(&dp)?;
    let mut out = vec![0u8; 4096];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        repeat: 1,
        ..TestRunOptions::default()
    })?;
    if r.return_value != Action::Tx as u32 {
        bail!(
            "the data plane in {} returned {} instead of XDP_TX",
            pins.path().display(),
            crate::testrun::action_name(r.return_value)
        );
    }
    let counted = encaps4(&dp)? - before;
    if counted != 1 {
        bail!("one run counted {counted} 4in4 encapsulations");
    }
    out.truncate(r.data_size_out as usize);
    Ok(out)
}
