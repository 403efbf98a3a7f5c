//! A node's liveness: an etcd lease with the TTL of `lease_ttl_s`, kept alive every third
//! of it, and two records written in one transaction when the node registers:
//! `PREFIX/alive/NAME` attached to the lease (etcd deletes it when the lease expires) and
//! `PREFIX/hosts/NAME` saying the node is up, with its locators (the neighbours an
//! operator wrote there are kept). A node that stops (crash, SIGKILL, lost network) stops
//! its keep-alives; after the TTL its `alive` key is gone and the controller's
//! [`super::watchdog`] marks it down. A node whose lease was lost while etcd was away
//! takes a new one and registers again when etcd is back.

use std::{net::IpAddr, time::Duration};

use etcd_client::{PutOptions, Txn, TxnOp};

use super::{
    client::Etcd,
    error::{ClusterError, Result},
    keys::Kind,
    records::{HostRecord, HostState, unix_now},
};

/// What a node registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub node: String,
    pub locators: Vec<IpAddr>,
}

fn lost(detail: impl Into<String>) -> ClusterError {
    ClusterError::Etcd {
        what: "lease keep-alive".into(),
        detail: detail.into(),
    }
}

/// Holds the node's lease for as long as the task runs; never gives up (abort the task to
/// stop: the lease then expires after its TTL, as after a crash).
pub async fn hold(etcd: Etcd, reg: Registration) {
    let ttl = etcd.settings().lease_ttl();
    let first = Duration::from_millis(200);
    let mut backoff = first;
    loop {
        match hold_once(&etcd, &reg, ttl, &mut backoff, first).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(node = %reg.node, "liveness lease: {e}; registering again"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(ttl / 2);
    }
}

/// Grants a lease, registers, and keeps the lease alive until that fails.
async fn hold_once(
    etcd: &Etcd,
    reg: &Registration,
    ttl: Duration,
    backoff: &mut Duration,
    first: Duration,
) -> Result<()> {
    let ttl_s = ttl.as_secs() as i64;
    let lease = etcd
        .request("lease grant", |mut c| async move {
            c.lease_grant(ttl_s, None).await
        })
        .await?
        .id();
    let layout = etcd.layout();
    let host_key = layout.key(Kind::Host, &reg.node);
    let neighbours = match etcd.get(&host_key).await? {
        Some(v) => serde_json::from_slice::<HostRecord>(&v)
            .map(|h| h.neighbours)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let record = HostRecord {
        state: HostState::Up,
        locators: reg.locators.clone(),
        neighbours,
        since_unix: unix_now(),
    };
    let txn = Txn::new().and_then([
        TxnOp::put(
            layout.key(Kind::Alive, &reg.node),
            reg.node.as_bytes(),
            Some(PutOptions::new().with_lease(lease)),
        ),
        TxnOp::put(
            host_key,
            serde_json::to_vec(&record).expect("a host record serializes"),
            None,
        ),
    ]);
    etcd.txn("register", txn).await?;
    tracing::info!(node = %reg.node, lease, ttl_s, "registered: holding the liveness lease");
    *backoff = first;
    let (mut keeper, mut stream) = etcd
        .request("lease keep-alive", |mut c| async move {
            c.lease_keep_alive(lease).await
        })
        .await?;
    let every = ttl / 3;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        keeper
            .keep_alive()
            .await
            .map_err(|e| ClusterError::etcd("lease keep-alive", e))?;
        match tokio::time::timeout(every, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(Some(_))) => return Err(lost("the lease expired")),
            Ok(Ok(None)) => return Err(lost("the stream ended")),
            Ok(Err(e)) => return Err(ClusterError::etcd("lease keep-alive", e)),
            Err(_) => {
                return Err(lost(format!("no answer within {} ms", every.as_millis())));
            }
        }
    }
}
