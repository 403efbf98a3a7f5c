//! A node's liveness: an etcd lease with the TTL of `lease_ttl_s`, kept alive every third
//! of it, and two records written in one transaction when the node registers:
//! `PREFIX/alive/NAME` attached to the lease (etcd deletes it when the lease expires) and
//! `PREFIX/hosts/NAME` saying the node is up, with its locators (the neighbours an
//! operator wrote there are kept; the locators follow the node's endpoints as they
//! change). A node that stops (crash, SIGKILL, lost network) stops
//! its keep-alives; after the TTL its `alive` key is gone and the controller's
//! [`super::watchdog`] marks it down. A node whose lease was lost while etcd was away
//! takes a new one and registers again when etcd is back.

use std::{net::IpAddr, time::Duration};

use etcd_client::{PutOptions, Txn, TxnOp};
use tokio::sync::watch;

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
    let (_keep, locators) = watch::channel(reg.locators);
    hold_following(etcd, reg.node, locators).await
}

/// [`hold`], with the locators of the host record following `locators` (the node's
/// endpoints as they change: anchors bind its clients to them).
pub async fn hold_following(etcd: Etcd, node: String, mut locators: watch::Receiver<Vec<IpAddr>>) {
    let ttl = etcd.settings().lease_ttl();
    let first = Duration::from_millis(200);
    let mut backoff = first;
    loop {
        match hold_once(&etcd, &node, &mut locators, ttl, &mut backoff, first).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(node = %node, "liveness lease: {e}; registering again"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(ttl / 2);
    }
}

/// Writes the host record `up` with `locators`, keeping the neighbours an operator wrote
/// (and, with `lease`, the `alive` key attached to it, in the same transaction).
async fn register(
    etcd: &Etcd,
    node: &str,
    locators: Vec<IpAddr>,
    lease: Option<i64>,
) -> Result<()> {
    let layout = etcd.layout();
    let host_key = layout.key(Kind::Host, node);
    let neighbours = match etcd.get(&host_key).await? {
        Some(v) => serde_json::from_slice::<HostRecord>(&v)
            .map(|h| h.neighbours)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let record = HostRecord {
        state: HostState::Up,
        locators,
        neighbours,
        since_unix: unix_now(),
    };
    let mut ops = vec![TxnOp::put(
        host_key,
        serde_json::to_vec(&record).expect("a host record serializes"),
        None,
    )];
    if let Some(lease) = lease {
        ops.push(TxnOp::put(
            layout.key(Kind::Alive, node),
            node.as_bytes(),
            Some(PutOptions::new().with_lease(lease)),
        ));
    }
    etcd.txn("register", Txn::new().and_then(ops)).await?;
    Ok(())
}

/// Grants a lease, registers, and keeps the lease alive until that fails.
async fn hold_once(
    etcd: &Etcd,
    node: &str,
    locators: &mut watch::Receiver<Vec<IpAddr>>,
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
    let now = locators.borrow_and_update().clone();
    register(etcd, node, now, Some(lease)).await?;
    tracing::info!(node = %node, lease, ttl_s, "registered: holding the liveness lease");
    *backoff = first;
    let (mut keeper, mut stream) = etcd
        .request("lease keep-alive", |mut c| async move {
            c.lease_keep_alive(lease).await
        })
        .await?;
    let every = ttl / 3;
    let mut tick = tokio::time::interval(every);
    let mut followed = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = locators.changed(), if followed => {
                match changed {
                    Ok(()) => {
                        let now = locators.borrow_and_update().clone();
                        tracing::info!(node = %node, locators = ?now, "locators changed: registering them");
                        register(etcd, node, now, None).await?;
                    }
                    Err(_) => followed = false,
                }
                continue;
            }
        }
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
