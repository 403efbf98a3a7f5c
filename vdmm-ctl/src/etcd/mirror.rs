//! A node's mirror of the cluster state: the records of the kinds it needs, read at one
//! revision and then kept current by a watch from the next revision. On start and after a
//! lost watch (etcd down, member killed, compaction) it reads everything again at a new
//! revision and hands the consumer a resync: the difference to what it held, so the
//! consumer reconciles its data plane (adds what is missing, removes what is stale).
//! [`MirrorState`] is the pure part (unit tested); [`run`] is the loop against etcd.

use std::{collections::BTreeMap, time::Duration};

use etcd_client::{EventType, WatchOptions};

use super::{
    client::Etcd,
    error::{ClusterError, Result},
    keys::{KeyLayout, Kind},
};

/// The records of a mirror, by kind and id.
pub type Records = BTreeMap<(Kind, String), Vec<u8>>;

/// One difference between two states of the mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put {
        kind: Kind,
        id: String,
        value: Vec<u8>,
    },
    Delete {
        kind: Kind,
        id: String,
    },
}

impl Change {
    pub fn kind(&self) -> Kind {
        match self {
            Change::Put { kind, .. } | Change::Delete { kind, .. } => *kind,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Change::Put { id, .. } | Change::Delete { id, .. } => id,
        }
    }
}

/// What the mirror hands its consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The etcd revision the mirror is at after this update.
    pub revision: i64,
    /// True after a (re-)read of everything: reconcile against the whole state.
    pub resync: bool,
    pub changes: Vec<Change>,
}

/// The records of the wanted kinds and the revision they are current at.
#[derive(Clone, Debug)]
pub struct MirrorState {
    layout: KeyLayout,
    kinds: Vec<Kind>,
    records: Records,
    revision: i64,
}

impl MirrorState {
    /// An empty mirror of `kinds` under `layout`.
    pub fn new(layout: KeyLayout, kinds: &[Kind]) -> Self {
        Self {
            layout,
            kinds: kinds.to_vec(),
            records: Records::new(),
            revision: 0,
        }
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The records of one kind, by id.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (&str, &[u8])> {
        self.records
            .range((kind, String::new())..)
            .take_while(move |((k, _), _)| *k == kind)
            .map(|((_, id), v)| (id.as_str(), v.as_slice()))
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&[u8]> {
        self.records.get(&(kind, id.to_string())).map(Vec::as_slice)
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    fn wanted(&self, key: &str) -> Option<(Kind, String)> {
        let (kind, id) = self.layout.parse(key)?;
        self.kinds.contains(&kind).then(|| (kind, id.to_string()))
    }

    /// Replaces everything with a full read at `revision`; returns the difference.
    pub fn replace(
        &mut self,
        kvs: impl IntoIterator<Item = (String, Vec<u8>)>,
        revision: i64,
    ) -> Vec<Change> {
        let mut fresh = Records::new();
        for (key, value) in kvs {
            if let Some(k) = self.wanted(&key) {
                fresh.insert(k, value);
            }
        }
        let mut changes = Vec::new();
        for ((kind, id), old) in &self.records {
            match fresh.get(&(*kind, id.clone())) {
                None => changes.push(Change::Delete {
                    kind: *kind,
                    id: id.clone(),
                }),
                Some(new) if new != old => {}
                Some(_) => continue,
            }
        }
        for ((kind, id), value) in &fresh {
            if self.records.get(&(*kind, id.clone())) != Some(value) {
                changes.push(Change::Put {
                    kind: *kind,
                    id: id.clone(),
                    value: value.clone(),
                });
            }
        }
        self.records = fresh;
        self.revision = revision;
        changes
    }

    /// Applies one watch event (`None`: the key was deleted); returns the change, if the
    /// key is wanted and the event changes something.
    pub fn apply(&mut self, key: &str, value: Option<Vec<u8>>, revision: i64) -> Option<Change> {
        self.revision = self.revision.max(revision);
        let (kind, id) = self.wanted(key)?;
        match value {
            Some(value) => {
                if self.records.get(&(kind, id.clone())) == Some(&value) {
                    return None;
                }
                self.records.insert((kind, id.clone()), value.clone());
                Some(Change::Put { kind, id, value })
            }
            None => self
                .records
                .remove(&(kind, id.clone()))
                .map(|_| Change::Delete { kind, id }),
        }
    }
}

/// Longest wait between two attempts to reach etcd again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Keeps `state` current for as long as the task runs (abort it to stop), calling
/// `apply` after every read and every batch of events. Never gives up: while etcd is
/// unreachable it retries with a backoff up to one second, and the consumer keeps what
/// it last applied.
pub async fn run<F>(etcd: Etcd, mut state: MirrorState, mut apply: F)
where
    F: FnMut(&MirrorState, &Update) + Send,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match read_and_watch(&etcd, &mut state, &mut apply, &mut backoff).await {
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e, "etcd mirror: will read again"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One read and the watch that follows it, until the watch is lost.
async fn read_and_watch<F>(
    etcd: &Etcd,
    state: &mut MirrorState,
    apply: &mut F,
    backoff: &mut Duration,
) -> Result<()>
where
    F: FnMut(&MirrorState, &Update) + Send,
{
    let root = etcd.layout().root();
    let (kvs, revision) = etcd.get_prefix(&root).await?;
    let changes = state.replace(
        kvs.into_iter().map(|kv| {
            let (k, v) = kv.into_key_value();
            (String::from_utf8_lossy(&k).into_owned(), v)
        }),
        revision,
    );
    let health = etcd.health();
    health
        .counters()
        .resyncs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    health.set_applied_revision(revision);
    apply(
        state,
        &Update {
            revision,
            resync: true,
            changes,
        },
    );
    *backoff = FIRST_BACKOFF;

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1)
        .with_progress_notify();
    let mut stream = etcd
        .request("watch", |mut c| {
            let (root, options) = (root.clone(), options.clone());
            async move { c.watch(root, Some(options)).await }
        })
        .await?;
    let lost = |detail: String| {
        health
            .counters()
            .watch_lost
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(detail, "etcd watch lost: reading again");
        ClusterError::Etcd {
            what: "watch".into(),
            detail,
        }
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            // A lost watch is not etcd lost: the member serving it may be gone while
            // the others serve on. The read that follows tells (and reports it).
            Ok(None) => return Err(lost("stream ended".into())),
            Err(e) => return Err(lost(super::error::one_line(&e.to_string()))),
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(lost(format!(
                "watch canceled (compacted to {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            )));
        }
        health.ok();
        let at = resp.header().map_or(state.revision(), |h| h.revision());
        let mut changes = Vec::new();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            let value = match ev.event_type() {
                EventType::Put => Some(kv.value().to_vec()),
                EventType::Delete => None,
            };
            changes.extend(state.apply(&key, value, kv.mod_revision()));
        }
        state.revision = state.revision.max(at);
        health.set_applied_revision(state.revision);
        if !changes.is_empty() {
            health
                .counters()
                .events_applied
                .fetch_add(changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            apply(
                state,
                &Update {
                    revision: state.revision,
                    resync: false,
                    changes,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror() -> MirrorState {
        MirrorState::new(KeyLayout::new("/v").unwrap(), &[Kind::Binding, Kind::Host])
    }

    fn kv(k: &str, v: &str) -> (String, Vec<u8>) {
        (k.to_string(), v.as_bytes().to_vec())
    }

    #[test]
    fn a_read_keeps_only_wanted_kinds() {
        let mut m = mirror();
        let ch = m.replace(
            [
                kv("/v/bindings/10.0.0.0/8", "a"),
                kv("/v/vaps/02:00:00:00:00:01", "x"),
                kv("/other/bindings/1", "y"),
                kv("/v/hosts/ap1", "h"),
            ],
            7,
        );
        assert_eq!(ch.len(), 2);
        assert_eq!(m.revision(), 7);
        assert_eq!(m.get(Kind::Binding, "10.0.0.0/8"), Some(&b"a"[..]));
        assert_eq!(m.of_kind(Kind::Host).count(), 1);
        assert_eq!(m.of_kind(Kind::VapLocation).count(), 0);
    }

    #[test]
    fn a_re_read_yields_the_difference() {
        let mut m = mirror();
        m.replace(
            [
                kv("/v/bindings/a", "1"),
                kv("/v/bindings/b", "2"),
                kv("/v/hosts/h", "u"),
            ],
            5,
        );
        let ch = m.replace(
            [
                kv("/v/bindings/b", "3"),
                kv("/v/bindings/c", "4"),
                kv("/v/hosts/h", "u"),
            ],
            9,
        );
        assert_eq!(
            ch,
            vec![
                Change::Delete {
                    kind: Kind::Binding,
                    id: "a".into()
                },
                Change::Put {
                    kind: Kind::Binding,
                    id: "b".into(),
                    value: b"3".to_vec()
                },
                Change::Put {
                    kind: Kind::Binding,
                    id: "c".into(),
                    value: b"4".to_vec()
                },
            ]
        );
        assert!(
            m.replace(
                [
                    kv("/v/bindings/b", "3"),
                    kv("/v/bindings/c", "4"),
                    kv("/v/hosts/h", "u")
                ],
                10
            )
            .is_empty()
        );
    }

    #[test]
    fn events_change_only_what_they_change() {
        let mut m = mirror();
        m.replace([kv("/v/bindings/a", "1")], 5);
        assert_eq!(m.apply("/v/bindings/a", Some(b"1".to_vec()), 6), None);
        assert_eq!(
            m.apply("/v/bindings/a", Some(b"2".to_vec()), 7),
            Some(Change::Put {
                kind: Kind::Binding,
                id: "a".into(),
                value: b"2".to_vec()
            })
        );
        assert_eq!(m.apply("/v/vaps/x", Some(b"2".to_vec()), 8), None);
        assert_eq!(
            m.apply("/v/bindings/a", None, 9),
            Some(Change::Delete {
                kind: Kind::Binding,
                id: "a".into()
            })
        );
        assert_eq!(m.apply("/v/bindings/a", None, 10), None);
        assert_eq!(m.revision(), 10);
    }
}
