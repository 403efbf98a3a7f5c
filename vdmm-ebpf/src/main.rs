//! The vdmm XDP data plane. Entry points only: each program classifies a frame, lets one
//! module act on it, and counts the exit. Modules, by concern:
//!
//! - `packet`, `headers`: bounds-checked access to the frame and typed header views.
//! - `checksum`: Internet checksum arithmetic (full and incremental).
//! - `classify`: Ethernet and IP validation, and the choice of action.
//! - `tunnel`: IP-in-IP decapsulation and encapsulation (all four kinds), RFC 6040 ECN.
//! - `icmp_error`: ICMP / ICMPv6 errors (time exceeded, too big) built in place.
//! - `forward`: `bpf_fib_lookup` and the XDP verdict for a rewritten packet.
//! - `slow_path`: TC egress encapsulation of what the kernel forwards or originates.
//! - `translate`: stateless IPv4/IPv6 translation (SIIT, RFC 7915 / 6052 / 7757 / 6791).
//! - `vap`: virtual access points: the client side (`vdmm_vap`) and the delivery to
//!   clients (in `vdmm_xdp`).
//! - `maps`, `counters`: the maps the control plane programs, and per-reason counters.
//! - `l1_cache`: per-CPU direct-mapped first levels of the route caches.
//! - `mapping_cache`: per-CPU first level of the binding and EAMT look-ups by address.
#![no_std]
#![no_main]

mod binding;
mod checksum;
mod classify;
mod counters;
mod forward;
mod headers;
mod icmp_error;
mod l1_cache;
mod mapping_cache;
mod maps;
mod packet;
mod slow_path;
mod translate;
mod tunnel;
mod vap;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vdmm_common::Action;

/// Baseline for benchmarks: returns `XDP_PASS` and touches nothing.
#[xdp]
pub fn vdmm_empty(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// All of vdmm's packet work on an interface: decapsulation of tunnel packets from peers,
/// encapsulation toward bindings, everything else passed to the kernel. Every exit is
/// counted by (reason, tunnel kind, action).
#[xdp]
pub fn vdmm_xdp(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let verdict = classify::process(&ctx);
    counters::count(&maps::COUNTERS, verdict, frame_len);
    verdict.action()
}

/// The client-facing interface of an AP host: ARP and neighbour solicitations of vAP
/// clients answered, anti-spoofing, frames to a vAP tunnelled toward the client's anchor
/// or broken out, unknown clients reported (see `vap`). Counted in the XDP counters.
#[xdp]
pub fn vdmm_vap(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let verdict = vap::from_client(&ctx, frame_len);
    counters::count(&maps::COUNTERS, verdict, frame_len);
    verdict.action()
}

/// Slow path on the clsact egress of the `vdmm0` device: encapsulates packets the kernel
/// routes toward a bound home address and redirects them toward the locator (see
/// `slow_path`). Counted like the XDP program, in its own counter array; there `pass`
/// means `TC_ACT_OK`, `drop` `TC_ACT_SHOT`, `redirect` `TC_ACT_REDIRECT`.
#[classifier]
pub fn vdmm_tc_egress(ctx: TcContext) -> i32 {
    let len = ctx.len() as u64;
    let verdict = slow_path::egress(&ctx);
    counters::count(&maps::TC_COUNTERS, verdict, len);
    match verdict.action() {
        a if a == Action::Drop as u32 => TC_ACT_SHOT as i32,
        a if a == Action::Redirect as u32 => TC_ACT_REDIRECT as i32,
        _ => TC_ACT_OK as i32,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
