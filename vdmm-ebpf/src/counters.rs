//! Per-CPU counters: one entry per (reason, tunnel kind, action), see
//! `vdmm_common::counters`. The verdict type every module returns lives here too, so that
//! no code path can leave the program without naming its reason.

use vdmm_common::{Action, CounterValue, Reason, TunnelKind, counters::counter_index};

use aya_ebpf::maps::PerCpuArray;

/// What happens to a packet and why: the XDP action and the counter it is counted in,
/// packed into one word so that it passes through BPF subprogram calls as a scalar.
#[derive(Clone, Copy)]
pub struct Verdict(pub u32);

impl Verdict {
    #[inline(always)]
    pub const fn new(action: Action, reason: Reason, kind: TunnelKind) -> Self {
        Self((counter_index(reason, kind, action) << 8) | action as u32)
    }
    #[inline(always)]
    pub const fn pass(reason: Reason) -> Self {
        Self::new(Action::Pass, reason, TunnelKind::None)
    }
    #[inline(always)]
    pub const fn drop(reason: Reason, kind: TunnelKind) -> Self {
        Self::new(Action::Drop, reason, kind)
    }
    /// The XDP return code.
    #[inline(always)]
    pub const fn action(self) -> u32 {
        self.0 & 0xff
    }
    #[inline(always)]
    const fn counter(self) -> u32 {
        self.0 >> 8
    }
    /// The reason (`Reason as u32`) the verdict is counted under.
    #[inline(always)]
    pub const fn reason(self) -> u32 {
        self.counter() / (TunnelKind::COUNT * Action::COUNT)
    }
}

/// Adds one packet of `bytes` to the verdict's counter in `map` (the XDP or the TC
/// program's counters).
#[inline(always)]
pub fn count(map: &PerCpuArray<CounterValue>, v: Verdict, bytes: u64) {
    if let Some(c) = map.get_ptr_mut(v.counter()) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        let c: &mut CounterValue = unsafe { &mut *c };
        c.packets += 1;
        c.bytes += bytes;
    }
}
