//! The IPv6 flow label of an outer tunnel header: a hash of the inner flow (RFC 6438), so
//! that ECMP and LAG in the underlay spread tunnelled flows while keeping each flow on
//! one path. Both the data plane and the tests compute it with this code.

/// Mixes one 32-bit word into the running hash (murmur3's block step).
#[inline(always)]
const fn mix(h: u32, w: u32) -> u32 {
    let k = w
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// murmur3's finaliser: every input bit affects every output bit.
#[inline(always)]
const fn finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Folds a hash into a 20-bit flow label; 0 means "no label", so it is never returned.
#[inline(always)]
const fn label(h: u32) -> u32 {
    let l = (h ^ (h >> 20)) & 0x000f_ffff;
    if l == 0 { 1 } else { l }
}

/// Flow label for an inner IPv4 flow. Addresses and `ports` (source port in the high 16
/// bits, destination port in the low) are the big-endian values of the header fields;
/// `ports` is 0 for non-TCP/UDP packets and for non-first fragments.
#[inline(always)]
pub const fn flow_label_v4(src: u32, dst: u32, protocol: u8, ports: u32) -> u32 {
    let mut h = mix(0x766d_6d34, src);
    h = mix(h, dst);
    h = mix(h, protocol as u32);
    h = mix(h, ports);
    label(finish(h))
}

/// Flow label for an inner IPv6 flow: as [`flow_label_v4`], with each address as four
/// big-endian words.
#[inline(always)]
pub const fn flow_label_v6(src: [u32; 4], dst: [u32; 4], next_header: u8, ports: u32) -> u32 {
    let mut h = mix(0x766d_6d36, src[0]);
    h = mix(h, src[1]);
    h = mix(h, src[2]);
    h = mix(h, src[3]);
    h = mix(h, dst[0]);
    h = mix(h, dst[1]);
    h = mix(h, dst[2]);
    h = mix(h, dst[3]);
    h = mix(h, next_header as u32);
    h = mix(h, ports);
    label(finish(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_20_bit_nonzero_and_spread() {
        let mut seen = [false; 64];
        for port in 0..4096u32 {
            let l = flow_label_v4(0xc000_0201, 0xc633_6402, 17, (port << 16) | 53);
            assert!(l != 0 && l < (1 << 20));
            seen[(l & 63) as usize] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "low bits of the label do not spread"
        );
        assert_ne!(
            flow_label_v6([1, 2, 3, 4], [5, 6, 7, 8], 6, 1),
            flow_label_v6([1, 2, 3, 4], [5, 6, 7, 8], 6, 2)
        );
    }
}
