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
    bump(
        unsafe { &mut *(c as *mut CounterValue).add(which as usize) },
        bytes,
    );
}

/// Counts a frame from the client (`from_client`) and its outcome: answered, dropped as
/// spoofed, or sent on toward the network. One look-up of the vAP's counters for both.
#[inline(always)]
pub fn add_from_client(slot: u32, v: Verdict, bytes: u64) {
    let Some(c) = VAP_STATS.get_ptr_mut(slot) else {
        return;
    };
    let c = c as *mut CounterValue;
    // SAFETY: as in `add`.
    bump(
        unsafe { &mut *c.add(VapCounter::FromClient as usize) },
        bytes,
    );
    if let Some(which) = outcome(v) {
        bump(unsafe { &mut *c.add(which as usize) }, bytes);
    }
}

#[inline(always)]
fn bump(c: &mut CounterValue, bytes: u64) {
    c.packets += 1;
    c.bytes += bytes;
}

/// The counter for the outcome of a frame from the client, if it has one.
#[inline(always)]
fn outcome(v: Verdict) -> Option<VapCounter> {
    let reason = v.reason();
    if reason == Reason::VapArpReply as u32 || reason == Reason::VapNdReply as u32 {
        Some(VapCounter::Replies)
    } else if reason == Reason::VapSpoofed as u32 {
        Some(VapCounter::Spoofed)
    } else if (reason == Reason::VapUplink as u32 || reason == Reason::VapBreakout as u32)
        && (v.action() == Action::Redirect as u32 || v.action() == Action::Tx as u32)
    {
        Some(VapCounter::Uplink)
    } else {
        None
    }
}
