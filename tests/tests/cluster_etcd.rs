//! Cluster mode against real etcd (Debian's etcd-server, started by the test on
//! loopback): allocation safety between controllers, mirrors that converge, survive a
//! killed member, refuse changes with every member down and catch up after a restart;
//! the agent's store; liveness leases and the watchdog that hands a dead host's clients
//! to its neighbours.

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
        let want = vdmm_ctl::agent::state::BindingSpec {
            source: want_source,
            ..binding
        };
        match w.next()? {
            StoreEvent::Deltas { deltas, .. } => {
                ensure!(
                    deltas
                        == vec![Delta::Put {
                            entry: Entry::Binding(want)
                        }],
                    "{deltas:?}"
                );
            }
            // The mirror re-read the whole state (its watch started before the other
            // nodes registered, or was lost): the binding must be in it, resolved for
            // this node.
            StoreEvent::Replace { state, .. } => {
                ensure!(
                    state.binding(&binding.home) == Some(&want),
                    "{:?}",
                    state.to_json()
                );
            }
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

/// Liveness: three AP hosts hold leases (TTL 2 s). One stops (its task aborted, as a
/// crash: the lease is not revoked) and the watchdog marks it down once the lease expired
/// and hands its clients to its neighbour; it registers again when it comes back; a
/// second host that stops has its clients spread over the least-loaded hosts left.
#[test]
fn a_host_whose_lease_expires_is_marked_down_and_its_clients_go_to_neighbours() -> Result<()> {
    use std::collections::BTreeMap;
    use vdmm_ctl::etcd::{
        liveness::{self, Registration},
        records::{HostRecord, HostState, VapLocation},
        watchdog,
    };
    /// Host records, alive keys and vAP locations as etcd holds them.
    type Seen = (
        BTreeMap<String, HostRecord>,
        HashSet<String>,
        BTreeMap<String, VapLocation>,
    );
    let cluster = EtcdCluster::start("elive", 1)?;
    runtime().block_on(async {
        let mut s = EtcdSettings::new(cluster.endpoints(), "/live");
        s.lease_ttl_s = 2;
        s.request_timeout_ms = 1000;
        let ctl = Etcd::connect(&s).await?;
        let layout = ctl.layout().clone();
        let hold = |node: &'static str, i: u8| {
            let s = s.clone();
            tokio::spawn(async move {
                let etcd = Etcd::connect(&s).await.expect("connect");
                let locators = vec![std::net::IpAddr::from([192, 0, 2, i])];
                liveness::hold(
                    etcd,
                    Registration {
                        node: node.into(),
                        locators,
                    },
                )
                .await
            })
        };
        // The operator says ap2's clients go to ap3.
        ctl.put(
            &layout.key(Kind::Host, "ap2"),
            serde_json::to_vec(&HostRecord {
                state: HostState::Down,
                locators: Vec::new(),
                neighbours: vec!["ap3".into()],
                since_unix: 0,
            })?,
        )
        .await?;
        let mut tasks = vec![hold("ap1", 1), hold("ap2", 2), hold("ap3", 3)];
        let hosts = || async {
            let (kvs, _) = ctl.get_prefix(&layout.root()).await?;
            let mut hosts = BTreeMap::new();
            let mut alive = HashSet::new();
            let mut vaps = BTreeMap::new();
            for kv in kvs {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                match layout.parse(&key) {
                    Some((Kind::Host, id)) => {
                        hosts.insert(
                            id.to_string(),
                            serde_json::from_slice::<HostRecord>(kv.value())?,
                        );
                    }
                    Some((Kind::Alive, id)) => {
                        alive.insert(id.to_string());
                    }
                    Some((Kind::VapLocation, id)) => {
                        vaps.insert(
                            id.to_string(),
                            serde_json::from_slice::<VapLocation>(kv.value())?,
                        );
                    }
                    _ => {}
                }
            }
            anyhow::Ok((hosts, alive, vaps))
        };
        let wait = |what: &'static str, cond: Box<dyn Fn(&Seen) -> bool>| {
            let hosts = &hosts;
            async move {
                let t0 = Instant::now();
                loop {
                    let h = hosts().await?;
                    if cond(&h) {
                        return anyhow::Ok(t0.elapsed());
                    }
                    if t0.elapsed() > Duration::from_secs(15) {
                        bail!("{what}: not within 15 s: {:?}", h);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait(
            "three hosts up",
            Box::new(|(h, a, _)| {
                a.len() == 3 && h.values().filter(|r| r.state == HostState::Up).count() == 3
            }),
        )
        .await?;
        let (h, _, _) = hosts().await?;
        ensure!(
            h["ap2"].neighbours == ["ap3"] && h["ap2"].locators.len() == 1,
            "{h:?}"
        );
        // 30 clients, 10 on each host.
        let on = |i: usize| ["ap1", "ap2", "ap3"][i % 3].to_string();
        for i in 0..30 {
            let loc = VapLocation {
                ap_host: on(i),
                vap_mac: format!("02:56:44:00:00:{i:02x}"),
                ipv4: Some(Ipv4Addr::new(198, 18, 0, i as u8)),
                ipv6: None,
                anchor: None,
                breakout: false,
                rehomed: 0,
            };
            ctl.put(
                &layout.key(Kind::VapLocation, &format!("a2:00:00:00:00:{i:02x}")),
                serde_json::to_vec(&loc)?,
            )
            .await?;
        }
        let counters = Arc::new(watchdog::Counters::default());
        let dog = tokio::spawn(watchdog::run(ctl.clone(), counters.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ensure!(
            counters.report() == watchdog::Report::default(),
            "the watchdog acted while every host lived: {:?}",
            counters.report()
        );

        // ap2 stops without a goodbye.
        let t0 = Instant::now();
        tasks[1].abort();
        let t = wait(
            "ap2 marked down, its clients moved",
            Box::new(|(h, _, v)| {
                h["ap2"].state == HostState::Down && v.values().all(|l| l.ap_host != "ap2")
            }),
        )
        .await?;
        let t = t0.elapsed().max(t);
        println!(
            "ap2 stopped: marked down and its 10 clients handed over {t:?} later (lease TTL 2 s)"
        );
        // Not before its lease could expire (kept alive at most 2/3 s before the abort).
        ensure!(
            t > Duration::from_millis(1200),
            "marked down after {t:?}: before the lease expired"
        );
        ensure!(t < Duration::from_secs(5), "{t:?}");
        let (_, _, v) = hosts().await?;
        for (i, (_, l)) in v.iter().enumerate() {
            let want = if i % 3 == 1 { "ap3" } else { &on(i) };
            ensure!(l.ap_host == want, "client {i} on {}: {v:?}", l.ap_host);
            ensure!(l.rehomed == u32::from(i % 3 == 1), "{l:?}");
        }
        let r = counters.report();
        ensure!(
            r.marked_down == 1 && r.moved == 10 && r.stranded == 0,
            "{r:?}"
        );

        // ap2 comes back: up again, nothing moves back.
        tasks[1] = hold("ap2", 2);
        wait(
            "ap2 up again",
            Box::new(|(h, a, _)| h["ap2"].state == HostState::Up && a.contains("ap2")),
        )
        .await?;
        // ap3 stops: its 20 clients go to the least-loaded of ap1 (10) and ap2 (0).
        tasks[2].abort();
        wait(
            "ap3 marked down, its clients moved",
            Box::new(|(h, _, v)| {
                h["ap3"].state == HostState::Down && v.values().all(|l| l.ap_host != "ap3")
            }),
        )
        .await?;
        let (_, _, v) = hosts().await?;
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for l in v.values() {
            *per.entry(l.ap_host.as_str()).or_default() += 1;
        }
        ensure!(
            per == BTreeMap::from([("ap1", 15), ("ap2", 15)]),
            "clients per host: {per:?}"
        );
        let r = counters.report();
        ensure!(
            r.marked_down == 2 && r.moved == 30 && r.errors == 0,
            "{r:?}"
        );
        println!("ap3 stopped: its 20 clients spread to ap1 and ap2: {per:?}; watchdog {r:?}");
        dog.abort();
        for t in tasks {
            t.abort();
        }
        Ok(())
    })
}

/// Removes a directory when dropped (also when the test fails).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// TLS and authentication: etcd with client certificates required (certificates made
/// by the test with openssl) and `auth enable` with a user whose role may only touch its
/// prefix. An agent's store with the CA, its client certificate and the user's password
/// loads, commits and reads back; with the wrong CA, the wrong password, or no client
/// certificate it fails with an error that says so.
#[test]
fn an_agent_connects_over_tls_with_a_password_and_wrong_credentials_are_named() -> Result<()> {
    use vdmm_ctl::{
        agent::{
            state::{Delta, DesiredState, Entry},
            store::Store,
        },
        etcd::store::EtcdStore,
    };
    use vdmm_tests::etcd_tls::EtcdTls;
    vdmm_tests::etcd::require_etcd()?;
    let dir = TempDir(std::env::temp_dir().join(format!("vdmm-etcd-tls-{}", std::process::id())));
    let tls = EtcdTls::generate(&dir.0)?;
    let mut cluster = EtcdCluster::start_tls("etls", 1, tls.clone())?;
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "vdmm:s3cret"],
        &["role", "add", "vdmm-node"],
        &[
            "role",
            "grant-permission",
            "vdmm-node",
            "--prefix=true",
            "readwrite",
            "/tls/",
        ],
        &["user", "grant-role", "vdmm", "vdmm-node"],
        &["auth", "enable"],
    ] {
        cluster.etcdctl(args)?;
    }
    cluster.set_admin("root", "rootpw");
    let password = dir.0.join("password");
    std::fs::write(&password, "s3cret\n")?;
    let wrong_password = dir.0.join("wrong-password");
    std::fs::write(&wrong_password, "guess\n")?;
    let mut settings = EtcdSettings::new(cluster.endpoints(), "/tls");
    settings.ca_file = Some(tls.ca.clone());
    settings.cert_file = Some(tls.client_cert.clone());
    settings.key_file = Some(tls.client_key.clone());
    settings.username = Some("vdmm".into());
    settings.password_file = Some(password.clone());
    settings.request_timeout_ms = 2000;

    // The right ones: the store loads, commits, and etcd holds the change.
    let mut store = EtcdStore::open(&settings, "n1")?;
    let loaded = store.load()?;
    store.commit(
        loaded.revision,
        &[Delta::Put {
            entry: Entry::Endpoint {
                addr: "192.0.2.1".parse()?,
            },
        }],
        &DesiredState::default(),
    )?;
    let again = store.load()?;
    ensure!(
        again.state.endpoints().count() == 1,
        "{}",
        again.state.to_json()
    );
    let held = cluster.etcdctl(&["get", "--prefix", "/tls/nodes/n1/", "--keys-only"])?;
    ensure!(held.contains("/tls/nodes/n1/endpoints/192.0.2.1"), "{held}");
    println!(
        "over TLS as user vdmm: loaded, committed, read back at revision {}",
        again.revision
    );

    // Each wrong credential fails at open or at the first request, with an error that
    // names it.
    let attempt = |s: &EtcdSettings| -> String {
        match EtcdStore::open(s, "n2").and_then(|mut st| st.load().map(drop)) {
            Ok(()) => "connected".into(),
            Err(e) => e.to_string(),
        }
    };
    let mut wrong_ca = settings.clone();
    wrong_ca.ca_file = Some(tls.other_ca.clone());
    let mut wrong_pw = settings.clone();
    wrong_pw.password_file = Some(wrong_password);
    let mut no_cert = settings.clone();
    no_cert.cert_file = None;
    no_cert.key_file = None;
    let mut outside = settings.clone();
    outside.prefix = "/elsewhere".into();
    for (what, s, says) in [
        (
            "wrong CA",
            &wrong_ca,
            &["not signed by the CA of ca_file", "UnknownIssuer"][..],
        ),
        (
            "wrong password",
            &wrong_pw,
            &[
                "refused user `vdmm`",
                "password_file",
                "authentication failed",
            ],
        ),
        (
            "no client certificate",
            &no_cert,
            &["may require a client certificate"],
        ),
        (
            "a prefix the user may not read",
            &outside,
            &[
                "may not use the keys under prefix /elsewhere",
                "permission denied",
            ],
        ),
    ] {
        let e = attempt(s);
        println!("{what}: {e}");
        ensure!(
            says.iter()
                .all(|w| e.to_lowercase().contains(&w.to_lowercase())),
            "{what}: the error should say {says:?}: {e}"
        );
    }
    Ok(())
}
