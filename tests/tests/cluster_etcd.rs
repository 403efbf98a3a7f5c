//! Cluster mode against real etcd (Debian's etcd-server, started by the test on
//! loopback): allocation safety between controllers, mirrors that converge, survive a
//! killed member, refuse changes with every member down and catch up after a restart.

use std::{
    collections::{BTreeMap, HashSet},
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use vdmm_ctl::{
    addr::Prefix,
    etcd::{
        ClusterError, Etcd, EtcdSettings, Kind,
        alloc::{self, MacRange},
        mirror::{self, Change, MirrorState, Records},
    },
};
use vdmm_tests::etcd::EtcdCluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(cluster: &EtcdCluster, prefix: &str) -> Result<Etcd> {
    let mut s = EtcdSettings::new(cluster.endpoints(), prefix);
    s.request_timeout_ms = 1000;
    Ok(Etcd::connect(&s).await?)
}

#[test]
fn two_controllers_allocating_concurrently_never_hand_out_the_same_address() -> Result<()> {
    let cluster = EtcdCluster::start("ealloc", 1)?;
    runtime().block_on(async {
        let pool: Prefix = Prefix::new("198.18.0.0".parse()?, 22)?; // 1022 usable
        let a = connect(&cluster, "/alloc").await?;
        let b = connect(&cluster, "/alloc").await?;
        const EACH: usize = 400;
        let run = |etcd: Etcd, tag: &'static str| {
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                // 16 allocations in flight per controller.
                let sem = Arc::new(tokio::sync::Semaphore::new(16));
                for i in 0..EACH {
                    let etcd = etcd.clone();
                    let permit = sem.clone().acquire_owned().await.unwrap();
                    tasks.spawn(async move {
                        let owner = format!("{tag}-{i}");
                        let r = alloc::allocate_pool_address(&etcd, &pool, &owner).await;
                        drop(permit);
                        r.map(|addr| (owner, addr))
                    });
                }
                let mut got = Vec::new();
                while let Some(r) = tasks.join_next().await {
                    got.push(r.unwrap());
                }
                got
            })
        };
        let started = Instant::now();
        let (ra, rb) = tokio::join!(run(a.clone(), "a"), run(b.clone(), "b"));
        let elapsed = started.elapsed();
        let mut handed: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for r in ra?.into_iter().chain(rb?) {
            let (owner, addr) = r.context("an allocation failed")?;
            if let Some(other) = handed.insert(addr, owner.clone()) {
                bail!("{addr} handed out twice: to {other} and to {owner}");
            }
        }
        ensure!(handed.len() == 2 * EACH, "{} allocations", handed.len());
        // What etcd holds is exactly what was handed out.
        let stored: BTreeMap<Ipv4Addr, String> = alloc::pool_allocations(&a, &pool)
            .await?
            .into_iter()
            .collect();
        ensure!(
            stored == handed,
            "etcd holds {} allocations, {} handed out",
            stored.len(),
            handed.len()
        );
        println!(
            "{} allocations from two controllers in {elapsed:?}, no duplicate",
            handed.len()
        );

        // Allocating again for an owner returns what it holds; release checks the holder.
        let (addr, owner) = handed.iter().next().unwrap();
        ensure!(alloc::allocate_pool_address(&b, &pool, owner).await? == *addr);
        let e = alloc::release_pool_address(&b, &pool, *addr, "someone-else")
            .await
            .unwrap_err();
        ensure!(matches!(e, ClusterError::NotHolder { .. }), "{e}");
        alloc::release_pool_address(&b, &pool, *addr, owner).await?;
        ensure!(alloc::pool_allocations(&a, &pool).await?.len() == 2 * EACH - 1);

        // A full pool says so.
        let tiny: Prefix = Prefix::new("198.18.8.0".parse()?, 30)?; // 2 usable
        alloc::allocate_pool_address(&a, &tiny, "x").await?;
        alloc::allocate_pool_address(&b, &tiny, "y").await?;
        let e = alloc::allocate_pool_address(&a, &tiny, "z")
            .await
            .unwrap_err();
        ensure!(
            e.to_string() == "pool 198.18.8.0/30 has no free address (2 of 2 allocated)",
            "{e}"
        );
        Ok(())
    })
}

#[test]
fn two_controllers_allocating_vap_macs_concurrently_never_collide() -> Result<()> {
    let cluster = EtcdCluster::start("emac", 1)?;
    runtime().block_on(async {
        // A small range (256 MACs) so the controllers do meet on the same keys.
        let range: MacRange = "02:56:44:00:00:00/8".parse()?;
        let a = connect(&cluster, "/mac").await?;
        let b = connect(&cluster, "/mac").await?;
        let run = |etcd: Etcd, tag: &'static str| {
            tokio::spawn(async move {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..120 {
                    let etcd = etcd.clone();
                    set.spawn(async move {
                        let owner = format!("{tag}-{i}");
                        alloc::allocate_vap_mac(&etcd, &range, &owner)
                            .await
                            .map(|m| (owner, m))
                    });
                }
                let mut got = Vec::new();
                while let Some(r) = set.join_next().await {
                    got.push(r.unwrap());
                }
                got
            })
        };
        let (ra, rb) = tokio::join!(run(a.clone(), "a"), run(b, "b"));
        let mut seen = HashSet::new();
        for r in ra?.into_iter().chain(rb?) {
            let (owner, mac) = r?;
            ensure!(
                seen.insert(mac),
                "MAC {mac:02x?} handed out twice (second to {owner})"
            );
        }
        ensure!(seen.len() == 240);
        let keys = a.keys_under(&a.layout().dir(Kind::MacAllocation)).await?;
        ensure!(keys.len() == 240, "{} MAC records", keys.len());
        Ok(())
    })
}

/// A mirror whose records the test can look at, as the agent's would be applied.
struct Watched {
    records: Arc<Mutex<Records>>,
    resyncs: Arc<Mutex<u32>>,
    etcd: Etcd,
    task: tokio::task::JoinHandle<()>,
}

impl Watched {
    async fn start(cluster: &EtcdCluster, prefix: &str) -> Result<Self> {
        let etcd = connect(cluster, prefix).await?;
        let records = Arc::new(Mutex::new(BTreeMap::new()));
        let resyncs = Arc::new(Mutex::new(0));
        let state = MirrorState::new(etcd.layout().clone(), &[Kind::Binding, Kind::VapLocation]);
        let (r, n) = (records.clone(), resyncs.clone());
        let task = tokio::spawn(mirror::run(etcd.clone(), state, move |_, update| {
            let mut r = r.lock().unwrap();
            for c in &update.changes {
                match c {
                    Change::Put { kind, id, value } => {
                        r.insert((*kind, id.clone()), value.clone());
                    }
                    Change::Delete { kind, id } => {
                        r.remove(&(*kind, id.clone()));
                    }
                }
            }
            if update.resync {
                *n.lock().unwrap() += 1;
            }
        }));
        Ok(Self {
            records,
            resyncs,
            etcd,
            task,
        })
    }

    fn snapshot(&self) -> Records {
        self.records.lock().unwrap().clone()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What etcd holds of the mirrored kinds.
async fn truth(etcd: &Etcd) -> Result<Records> {
    let (kvs, _) = etcd.get_prefix(&etcd.layout().root()).await?;
    Ok(kvs
        .into_iter()
        .filter_map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let (kind, id) = etcd.layout().parse(&key)?;
            matches!(kind, Kind::Binding | Kind::VapLocation)
                .then(|| ((kind, id.to_string()), kv.value().to_vec()))
        })
        .collect())
}

async fn converged(mirrors: &[Watched], want: &Records, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if mirrors.iter().all(|m| m.snapshot() == *want) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            let sizes: Vec<usize> = mirrors.iter().map(|m| m.snapshot().len()).collect();
            bail!(
                "mirrors did not converge within {within:?}: {sizes:?} records, want {}",
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn mirrors_survive_a_killed_member_refuse_changes_with_all_down_and_catch_up() -> Result<()> {
    let mut cluster = EtcdCluster::start("emir", 3)?;
    let rt = runtime();
    rt.block_on(async {
        let mirrors = vec![
            Watched::start(&cluster, "/mir").await?,
            Watched::start(&cluster, "/mir").await?,
            Watched::start(&cluster, "/mir").await?,
        ];
        let writer = connect(&cluster, "/mir").await?;
        let layout = writer.layout().clone();

        // One change reaches every mirror within a bound.
        writer
            .put(
                &layout.key(Kind::Binding, "10.9.0.0/16"),
                b"192.0.2.9".to_vec(),
            )
            .await?;
        let t = converged(&mirrors, &truth(&writer).await?, Duration::from_secs(2)).await?;
        println!("first binding in all three mirrors after {t:?}");

        // A run of changes; a member killed in the middle of it.
        let mut done = 0;
        for i in 0..200u32 {
            if i == 60 {
                cluster.kill(1)?;
            }
            let key = layout.key(
                Kind::VapLocation,
                &format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
            );
            let value = format!("ap{}", i % 3).into_bytes();
            // A change may fail while the client moves off the dead member; retry it.
            let mut tries = 0;
            loop {
                match writer.put(&key, value.clone()).await {
                    Ok(_) => break,
                    Err(e) if tries < 20 => {
                        tries += 1;
                        println!("change {i}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => bail!("change {i} never went through with two members up: {e}"),
                }
            }
            done += 1;
        }
        ensure!(done == 200);
        let want = truth(&writer).await?;
        ensure!(want.len() == 201, "{} records", want.len());
        let t = converged(&mirrors, &want, Duration::from_secs(10)).await?;
        println!("200 changes with a member killed: all mirrors converged {t:?} after the last");

        // All members down: changes are refused with a clear error, mirrors keep their state.
        cluster.kill(0)?;
        cluster.kill(2)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let e = loop {
            match writer
                .put(&layout.key(Kind::Binding, "10.8.0.0/16"), b"x".to_vec())
                .await
            {
                Err(e @ ClusterError::Unreachable { .. }) => break e,
                Err(_) => {} // the first failure marks etcd down
                Ok(_) => bail!("a change was accepted with every etcd member down"),
            }
            ensure!(started.elapsed() < Duration::from_secs(10), "never refused");
        };
        println!("with every member down: {e}");
        ensure!(e.to_string().contains("changes are refused"));
        ensure!(!writer.health().is_reachable());
        tokio::time::sleep(Duration::from_millis(500)).await;
        for m in &mirrors {
            ensure!(
                m.snapshot() == want,
                "a mirror lost state while etcd was down"
            );
        }
        let resyncs_before: Vec<u32> = mirrors.iter().map(|m| *m.resyncs.lock().unwrap()).collect();

        // Back: the members restart on their data, changes are accepted, mirrors converge.
        for i in 0..3 {
            cluster.restart(i)?;
        }
        for i in 0..3 {
            cluster.wait_healthy(i, Duration::from_secs(20))?;
        }
        let started = Instant::now();
        loop {
            match writer
                .put(
                    &layout.key(Kind::Binding, "10.8.0.0/16"),
                    b"192.0.2.8".to_vec(),
                )
                .await
            {
                Ok(_) => break,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    println!("after restart: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("changes still refused 10 s after etcd came back: {e}"),
            }
        }
        writer
            .delete(&layout.key(Kind::Binding, "10.9.0.0/16"))
            .await?;
        let want = truth(&writer).await?;
        let t = converged(&mirrors, &want, Duration::from_secs(10)).await?;
        println!("after the restart, all mirrors converged in {t:?}");
        for (m, before) in mirrors.iter().zip(resyncs_before) {
            ensure!(
                *m.resyncs.lock().unwrap() > before,
                "a mirror caught up without reading again"
            );
            let r = m.etcd.health().report();
            ensure!(
                r.reachable && r.watch_lost >= 1 && r.reconnects >= 1,
                "{r:?}"
            );
        }
        ensure!(writer.health().report().refused_changes >= 1);
        Ok(())
    })
}

/// The agent's store on etcd: a binding committed by one node reaches the other nodes'
/// watchers, resolved to each node's own endpoint; a batch planned on a stale revision is
/// refused.
#[test]
fn a_binding_committed_on_one_node_reaches_the_others_with_their_own_source() -> Result<()> {
    use vdmm_ctl::{
        agent::{
            state::{Delta, DesiredState, Entry},
            store::{Store, StoreEvent},
        },
        etcd::store::EtcdStore,
    };
    let cluster = EtcdCluster::start("estore", 1)?;
    let settings = EtcdSettings::new(cluster.endpoints(), "/store");
    let mut nodes = Vec::new();
    for (i, name) in ["n1", "n2", "n3"].into_iter().enumerate() {
        let mut s = EtcdStore::open(&settings, name)?;
        let loaded = s.load()?;
        let ep = Entry::Endpoint {
            addr: format!("192.0.2.{}", i + 1).parse()?,
        };
        let rev = s.commit(
            loaded.revision,
            &[Delta::Put { entry: ep }],
            &DesiredState::default(),
        )?;
        nodes.push((s, rev));
    }
    let mut watchers = Vec::new();
    for (s, _) in nodes.iter_mut().skip(1) {
        let loaded = s.load()?;
        ensure!(
            loaded.state.endpoints().count() == 1,
            "{:?}",
            loaded.state.to_json()
        );
        watchers.push(s.watcher(loaded.revision)?.context("no watcher")?);
    }
    let (n1, _) = &mut nodes[0];
    let loaded = n1.load()?;
    let binding: vdmm_ctl::agent::state::BindingSpec = serde_json::from_value(serde_json::json!({
        "home": "10.7.0.0/16", "locator": "198.51.100.7", "source": "192.0.2.1", "route": false
    }))?;
    let started = Instant::now();
    n1.commit(
        loaded.revision,
        &[Delta::Put {
            entry: Entry::Binding(binding),
        }],
        &DesiredState::default(),
    )?;
    for (i, w) in watchers.iter_mut().enumerate() {
        let want_source: std::net::IpAddr = format!("192.0.2.{}", i + 2).parse()?;
        match w.next()? {
            StoreEvent::Deltas { deltas, .. } => {
                ensure!(
                    deltas
                        == vec![Delta::Put {
                            entry: Entry::Binding(vdmm_ctl::agent::state::BindingSpec {
                                source: want_source,
                                ..binding
                            })
                        }],
                    "{deltas:?}"
                );
            }
            e => bail!("expected the binding's delta, got {e:?}"),
        }
    }
    let t = started.elapsed();
    println!("binding committed on n1 delivered to n2 and n3 in {t:?}");
    ensure!(t < Duration::from_secs(1), "{t:?}");
    // Planned at the old revision: refused, the binding changed since.
    let e = n1
        .commit(
            loaded.revision,
            &[Delta::Delete {
                key: vdmm_ctl::agent::state::Key::Binding(binding.home),
            }],
            &DesiredState::default(),
        )
        .unwrap_err();
    ensure!(
        matches!(e, vdmm_ctl::error::Error::StoreConflict { .. }),
        "{e}"
    );
    Ok(())
}
