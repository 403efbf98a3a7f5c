//! Allocation of shared resources (IPv4 pool addresses, vAP MACs) with etcd
//! transactions: a record is created only if its key has never existed since the last
//! delete (`create_revision == 0`), so two controllers allocating at the same moment never
//! hand out the same address or MAC: one transaction wins, the other moves on. The record's
//! value is its owner; allocating again for the same owner returns what it already holds
//! (a retry after a lost answer does not leak an address).

use std::{
    collections::HashSet,
    fmt,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::{
    client::Etcd,
    error::{ClusterError, Result},
    keys::Kind,
};
use crate::{addr::Prefix, natpt::usable_range};

/// A range of locally administered unicast MACs: a fixed high part and `bits` free low
/// bits, written `02:56:44:00:00:00/24` (the default: 2^24 vAP MACs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacRange {
    base: u64,
    bits: u8,
}

impl MacRange {
    /// Addresses in the range.
    pub fn size(&self) -> u64 {
        1u64 << self.bits
    }

    fn nth(&self, i: u64) -> [u8; 6] {
        let v = self.base | (i & (self.size() - 1));
        let b = v.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }
}

impl Default for MacRange {
    fn default() -> Self {
        "02:56:44:00:00:00/24".parse().unwrap()
    }
}

impl FromStr for MacRange {
    type Err = ClusterError;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: &str| ClusterError::BadSetting {
            field: "vap_mac_range",
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let (mac, bits) = text
            .split_once('/')
            .ok_or_else(|| bad("expected MAC/BITS, e.g. 02:56:44:00:00:00/24"))?;
        let mac = parse_mac(mac).ok_or_else(|| bad("not a MAC address"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| (1..=40).contains(b))
            .ok_or_else(|| bad("BITS must be between 1 and 40 (the low bits handed out)"))?;
        if mac[0] & 0x01 != 0 || mac[0] & 0x02 == 0 {
            return Err(bad(
                "vAP MACs must be locally administered unicast (first octet x2, x6, xA or xE)",
            ));
        }
        let base = mac.iter().fold(0u64, |v, b| (v << 8) | *b as u64);
        if base & ((1u64 << bits) - 1) != 0 {
            return Err(bad("the host bits of the base MAC must be zero"));
        }
        Ok(Self { base, bits })
    }
}

impl fmt::Display for MacRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", mac_text(&self.nth(0)), self.bits)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Where an owner's search starts: spread over the range, the same for every controller,
/// so concurrent allocators rarely race for one key.
fn start_of(owner: &str, size: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut h);
    h.finish() % size
}

/// What one allocation needs to know about its space.
struct Space<'a> {
    /// Directory of the records, with its trailing `/`.
    dir: String,
    size: u64,
    id: &'a (dyn Fn(u64) -> String + Sync),
}

/// Allocates one id of `space` for `owner`, or returns the one it holds.
async fn allocate(etcd: &Etcd, space: &Space<'_>, owner: &str) -> Result<Option<String>> {
    etcd.ensure_writable().await?;
    let (held, _) = etcd.get_prefix(&space.dir).await?;
    let mut used = HashSet::with_capacity(held.len());
    for kv in &held {
        let id = String::from_utf8_lossy(&kv.key()[space.dir.len()..]).into_owned();
        if kv.value() == owner.as_bytes() {
            return Ok(Some(id));
        }
        used.insert(id);
    }
    let start = start_of(owner, space.size);
    for i in 0..space.size {
        let id = (space.id)((start + i) % space.size);
        if used.contains(&id) {
            continue;
        }
        let key = format!("{}{id}", space.dir);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), owner, None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = etcd.txn("allocate", txn).await?;
        if resp.succeeded() {
            return Ok(Some(id));
        }
        // Lost the race for this one: someone else holds it (or we do, after a retry).
        let holder = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        if holder.as_deref() == Some(owner.as_bytes()) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Releases `id` if `owner` holds it: a transaction that compares the value, so a record
/// re-allocated to someone else in the meantime stays.
async fn release(etcd: &Etcd, key: &str, owner: &str) -> Result<()> {
    let txn = Txn::new()
        .when([Compare::value(key, CompareOp::Equal, owner)])
        .and_then([TxnOp::delete(key, None)])
        .or_else([TxnOp::get(key, None)]);
    let resp = etcd.txn("release", txn).await?;
    if resp.succeeded() {
        return Ok(());
    }
    let holder = resp
        .op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "nobody".to_string());
    Err(ClusterError::NotHolder {
        key: key.to_string(),
        holder,
        owner: owner.to_string(),
    })
}

/// Allocates an address of the IPv4 `pool` for `owner` (e.g. the client's IPv6 address).
pub async fn allocate_pool_address(etcd: &Etcd, pool: &Prefix, owner: &str) -> Result<Ipv4Addr> {
    let (lo, hi) = usable_range(pool);
    let size = (hi as u64 + 1).saturating_sub(lo as u64);
    if !matches!(pool.addr(), IpAddr::V4(_)) || size == 0 {
        return Err(ClusterError::NotInPool {
            pool: pool.to_string(),
            addr: "any address".into(),
        });
    }
    let id = |i: u64| Ipv4Addr::from(lo + i as u32).to_string();
    let space = Space {
        dir: etcd.layout().pool_dir(&pool.to_string()),
        size,
        id: &id,
    };
    match allocate(etcd, &space, owner).await? {
        Some(a) => Ok(a.parse().expect("pool ids are addresses")),
        None => Err(ClusterError::PoolExhausted {
            pool: pool.to_string(),
            used: size,
            size,
        }),
    }
}

/// Releases `addr` of `pool` if `owner` holds it.
pub async fn release_pool_address(
    etcd: &Etcd,
    pool: &Prefix,
    addr: Ipv4Addr,
    owner: &str,
) -> Result<()> {
    if !pool.contains(IpAddr::V4(addr)) {
        return Err(ClusterError::NotInPool {
            pool: pool.to_string(),
            addr: addr.to_string(),
        });
    }
    let key = etcd.layout().pool_key(&pool.to_string(), &addr.to_string());
    release(etcd, &key, owner).await
}

/// Every allocation of `pool`: address and owner, in address order.
pub async fn pool_allocations(etcd: &Etcd, pool: &Prefix) -> Result<Vec<(Ipv4Addr, String)>> {
    let dir = etcd.layout().pool_dir(&pool.to_string());
    let (kvs, _) = etcd.get_prefix(&dir).await?;
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let addr = key[dir.len()..]
            .parse()
            .map_err(|_| ClusterError::BadRecord {
                key: key.clone(),
                detail: "the last segment is not an IPv4 address".into(),
            })?;
        out.push((addr, String::from_utf8_lossy(kv.value()).into_owned()));
    }
    out.sort();
    Ok(out)
}

/// Allocates a vAP MAC of `range` for `owner` (e.g. the client's MAC).
pub async fn allocate_vap_mac(etcd: &Etcd, range: &MacRange, owner: &str) -> Result<[u8; 6]> {
    let id = |i: u64| mac_text(&range.nth(i));
    let space = Space {
        dir: etcd.layout().dir(Kind::MacAllocation),
        size: range.size(),
        id: &id,
    };
    match allocate(etcd, &space, owner).await? {
        Some(m) => parse_mac(&m).ok_or_else(|| ClusterError::BadRecord {
            key: format!("{}{m}", space.dir),
            detail: "not a MAC address".into(),
        }),
        None => Err(ClusterError::MacsExhausted {
            range: range.to_string(),
            used: range.size(),
        }),
    }
}

/// Releases a vAP MAC if `owner` holds it.
pub async fn release_vap_mac(etcd: &Etcd, mac: &[u8; 6], owner: &str) -> Result<()> {
    let key = etcd.layout().key(Kind::MacAllocation, &mac_text(mac));
    release(etcd, &key, owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_ranges_parse_and_enumerate() {
        let r: MacRange = "02:56:44:00:00:00/24".parse().unwrap();
        assert_eq!(r.size(), 1 << 24);
        assert_eq!(mac_text(&r.nth(0)), "02:56:44:00:00:00");
        assert_eq!(mac_text(&r.nth(0x01_02_03)), "02:56:44:01:02:03");
        assert_eq!(r.nth(r.size()), r.nth(0));
        assert_eq!(r.to_string(), "02:56:44:00:00:00/24");
        assert_eq!(r, MacRange::default());
    }

    #[test]
    fn bad_mac_ranges_are_refused() {
        for (t, why) in [
            ("02:56:44:00:00:00", "MAC/BITS"),
            ("02:56:44:00:00/24", "not a MAC"),
            ("02:56:44:00:00:00/0", "BITS"),
            ("02:56:44:00:00:00/41", "BITS"),
            ("01:56:44:00:00:00/24", "locally administered"),
            ("00:56:44:00:00:00/24", "locally administered"),
            ("02:56:44:00:00:01/24", "host bits"),
        ] {
            let e = t.parse::<MacRange>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(t), "{t}: {e}");
        }
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:AB:cd:00:00:09"),
            Some([2, 0xab, 0xcd, 0, 0, 9])
        );
        assert_eq!(parse_mac("02:ab:cd:00:00"), None);
        assert_eq!(parse_mac("02:ab:cd:00:00:00:01"), None);
        assert_eq!(parse_mac("2:ab:cd:00:00:00"), None);
    }

    #[test]
    fn search_starts_spread_and_stable() {
        let a = start_of("2001:db8::1", 1022);
        assert_eq!(a, start_of("2001:db8::1", 1022));
        let starts: HashSet<u64> = (0..100).map(|i| start_of(&format!("c{i}"), 1022)).collect();
        assert!(starts.len() > 80, "{}", starts.len());
    }
}
