//! ECN across tunnels, RFC 6040: the encapsulator copies the ECN field to the outer
//! header (normal mode); the decapsulator combines outer and inner per Figure 4.

use crate::headers::{ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT};

/// The inner ECN codepoint after decapsulation, or `None` when RFC 6040 says drop
/// (congestion experienced on a packet whose transport is not ECN-capable).
#[inline(always)]
pub fn decapsulate(outer: u8, inner: u8) -> Option<u8> {
    match (inner, outer) {
        (ECN_NOT_ECT, ECN_CE) => None,
        (ECN_NOT_ECT, _) => Some(ECN_NOT_ECT),
        (_, ECN_CE) => Some(ECN_CE),
        (ECN_ECT0, ECN_ECT1) => Some(ECN_ECT1),
        _ => Some(inner),
    }
}
