//! `vdmm-ctl watchdog --config FILE`: runs the cluster watchdog
//! ([`crate::etcd::watchdog`]) on the `[etcd]` settings of an agent configuration until
//! SIGTERM or SIGINT, then prints its counters.

use std::{path::Path, sync::Arc};

use crate::{
    agent::{
        config::{Config, StoreKind},
        daemon::init_logging,
    },
    error::{Error, Result},
    etcd::{Etcd, watchdog},
};

pub fn run(path: &Path) -> Result<String> {
    let cfg = Config::load(path)?;
    let settings = match (cfg.store, &cfg.etcd) {
        (StoreKind::Etcd, Some(s)) => s.clone(),
        _ => {
            return Err(Error::Conflict(format!(
                "{}: the watchdog needs store = \"etcd\" and an [etcd] section",
                path.display()
            )));
        }
    };
    init_logging(&cfg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    let counters = Arc::new(watchdog::Counters::default());
    runtime.block_on(async {
        let etcd = Etcd::connect(&settings)
            .await
            .map_err(|e| Error::Agent(e.to_string()))?;
        tracing::info!(prefix = %etcd.layout().prefix(), "watchdog running");
        let task = tokio::spawn(watchdog::run(etcd, counters.clone()));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::io("cannot catch SIGTERM", e))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        task.abort();
        Ok::<(), Error>(())
    })?;
    let r = counters.report();
    Ok(format!(
        "watchdog stopped: {} nodes marked down, {} vAPs moved, {} writes superseded, {} vAPs stranded, {} errors\n",
        r.marked_down, r.moved, r.superseded, r.stranded, r.errors
    ))
}
