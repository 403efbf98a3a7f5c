//! Per-vAP counters (`VDMM_VAP_STATS`, per CPU, one entry per vAP slot).

use vdmm_common::{Action, CounterValue, Reason, vap::VapCounter};

use crate::{counters::Verdict, maps::VAP_STATS};

/// Adds one packet of `bytes` to counter `which` of the vAP in `slot`.
#[inline(always)]
pub fn add(slot: u32, which: VapCounter, bytes: u64) {
    let Some(c) = VAP_STATS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU; the struct is an array of
    // `CounterValue`s and `which` is below its length.
    let c = unsafe { &mut *(c as *mut CounterValue).add(which as usize) };
    c.packets += 1;
    c.bytes += bytes;
}

/// Counts the outcome of a frame from the client: answered, dropped as spoofed, or sent
/// on toward the network.
#[inline(always)]
pub fn add_verdict(slot: u32, v: Verdict, bytes: u64) {
    let reason = v.reason();
    let which = if reason == Reason::VapArpReply as u32 || reason == Reason::VapNdReply as u32 {
        VapCounter::Replies
    } else if reason == Reason::VapSpoofed as u32 {
        VapCounter::Spoofed
    } else if (reason == Reason::VapUplink as u32 || reason == Reason::VapBreakout as u32)
        && (v.action() == Action::Redirect as u32 || v.action() == Action::Tx as u32)
    {
        VapCounter::Uplink
    } else {
        return;
    };
    add(slot, which, bytes);
}
