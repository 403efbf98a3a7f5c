//! Where the agent keeps its desired state: the [`Store`] trait, and [`FileStore`], the
//! embedded store (one file in the state directory).
//!
//! A store keeps keys and values ([`Key`] -> [`Entry`], see [`super::state`]) and a
//! revision that grows by one with every committed batch. The agent plans and validates a
//! batch, commits its deltas (all of them or none), and only then writes the maps; on
//! start it loads the whole state and reconciles the maps with it. A cluster store (etcd)
//! implements the same trait; changes other nodes or a controller make reach the agent
//! through [`Store::watcher`].
//!
//! All methods block; the daemon calls them from its state thread, never from an async
//! task.
//!
//! # The file of [`FileStore`]
//!
//! `STATE_DIR/state.jsonl`, JSON lines, each `CRC32 JSON` (the CRC-32 of the JSON text in
//! eight hex digits, a space, the JSON, a newline):
//!
//! - line 1, the snapshot: `{"format":"vdmm-agent-state","version":1,"revision":R,
//!   "state":{...}}`;
//! - then one line per committed batch: `{"revision":R+1,"deltas":[...]}`, revisions
//!   counting up by one.
//!
//! A commit appends one line and `fdatasync`s before it returns. When the appended lines
//! outgrow the snapshot, the file is rewritten as a new snapshot: written to
//! `state.jsonl.tmp`, synced, renamed over `state.jsonl`, the directory synced. A crash
//! at any point leaves either the old file or the new one, never a mix.
//!
//! A file that does not read back exactly (a bad checksum, a line cut short, JSON that
//! does not parse, revisions out of order, a state that fails validation) is refused with
//! an error naming the file and the line, and left untouched: the agent does not start
//! on a state it cannot trust, and never overwrites it. A lock (`flock` on
//! `STATE_DIR/lock`) keeps a second agent off the same directory.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::io::AsRawFd,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::state::{Delta, DesiredState};
use crate::error::{Error, Result};

/// A store's revision: 0 for an empty store, one more with every committed batch.
pub type Revision = u64;

/// What [`Store::load`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub state: DesiredState,
    pub revision: Revision,
}

/// A change made to the store by someone other than this agent (cluster stores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// These deltas were committed; the store is now at `revision`.
    Deltas {
        revision: Revision,
        deltas: Vec<Delta>,
    },
    /// The agent fell behind (or the store was rewritten): this is the whole state now.
    Replace {
        revision: Revision,
        state: DesiredState,
    },
}

/// Follows a store's changes; see [`Store::watcher`].
pub trait StoreWatcher: Send {
    /// Blocks until the store changes, and returns the change. An error ends the watch
    /// (the daemon counts it and asks for a new watcher later).
    fn next(&mut self) -> Result<StoreEvent>;
}

/// The health of a store others share (a cluster store), for `agent status` and the
/// metrics: whether it is reachable, since when, and its counters.
pub trait StoreHealth: Send + Sync {
    /// A JSON object for `status` (`reachable`, `last_error`, counters, ...).
    fn status(&self) -> serde_json::Value;
    /// Prometheus text (format 0.0.4) of the store's own metrics.
    fn metrics(&self) -> String;
}

/// The agent's persistent desired state.
pub trait Store: Send {
    /// What the store is, for logs and `status` (e.g. `file /var/lib/vdmm/state.jsonl`).
    fn describe(&self) -> String;

    /// Reads the whole state and its revision. A store that cannot be read back exactly
    /// is an error ([`Error::StateFile`]), never an empty state.
    fn load(&mut self) -> Result<Loaded>;

    /// Records one batch, all of it or nothing, durably before it returns. `base` is the
    /// revision the batch was planned against: a store others write too refuses with
    /// [`Error::StoreConflict`] when it moved on since. `after` is the state with the
    /// batch applied (an embedded store may snapshot it). Returns the new revision.
    fn commit(
        &mut self,
        base: Revision,
        deltas: &[Delta],
        after: &DesiredState,
    ) -> Result<Revision>;

    /// A watcher of changes others make, for stores that others write (None for the
    /// embedded store: only this agent writes it).
    fn watcher(&mut self, _from: Revision) -> Result<Option<Box<dyn StoreWatcher>>> {
        Ok(None)
    }

    /// True for a store others write too (a cluster store): the agent does not import
    /// what its maps hold into it, since the shared state is the truth.
    fn shared(&self) -> bool {
        false
    }

    /// Announces this node alive, for as long as the store lives (a cluster store holds
    /// a lease and registers the node with its endpoints in `state`; nothing for the
    /// embedded store).
    fn hold_liveness(&mut self, _state: &DesiredState) {}

    /// The health of a shared store (None for the embedded store).
    fn health(&self) -> Option<std::sync::Arc<dyn StoreHealth>> {
        None
    }

    /// Some(grace) when the vAPs follow a shared location record (a cluster store): the
    /// node serves the vAPs located on it and forwards one whose location moved away
    /// for `grace`; a handover moves the location instead of changing each node.
    fn vap_grace(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The file name of [`FileStore`]'s state in the state directory.
pub const STATE_FILE: &str = "state.jsonl";
const LOCK_FILE: &str = "lock";
const FORMAT: &str = "vdmm-agent-state";
const VERSION: u32 = 1;
/// Appended bytes beyond which the file is compacted even when the snapshot is small.
const MIN_COMPACT_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
struct SnapshotLine {
    format: String,
    version: u32,
    revision: Revision,
    state: DesiredState,
}

/// [`SnapshotLine`] as written (the state borrowed, not copied).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: &'a str,
    version: u32,
    revision: Revision,
    state: &'a DesiredState,
}

#[derive(Serialize, Deserialize)]
struct BatchLine {
    revision: Revision,
    deltas: Vec<Delta>,
}

/// The embedded store: one file of JSON lines (see the module documentation).
pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    /// Held open (and `flock`ed) while the store lives.
    _lock: File,
    /// The state file opened for appending, once loaded.
    file: Option<File>,
    revision: Revision,
    snapshot_bytes: u64,
    appended_bytes: u64,
}

/// Frames `json` as one line: CRC, space, JSON, newline.
fn frame(json: &str) -> String {
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))
}

impl FileStore {
    /// Opens (creating it, mode 0700, if needed) the state directory and locks it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Conflict(format!(
                "the state directory {} is in use by another vdmm agent ({e})",
                dir.display()
            )));
        }
        Ok(Self {
            path: dir.join(STATE_FILE),
            dir,
            _lock: lock,
            file: None,
            revision: 0,
            snapshot_bytes: 0,
            appended_bytes: 0,
        })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, line: usize, detail: impl std::fmt::Display) -> Error {
        Error::StateFile {
            path: self.path.clone(),
            detail: format!("line {line}: {detail}"),
        }
    }

    /// Parses the file's text strictly (see the module documentation).
    fn parse(&self, text: &str) -> Result<Loaded> {
        if text.is_empty() {
            return Err(Error::StateFile {
                path: self.path.clone(),
                detail: "the file is empty (cut short?)".into(),
            });
        }
        if !text.ends_with('\n') {
            let line = text.lines().count();
            return Err(self.corrupt(line, "the last line is cut short (no newline)"));
        }
        let mut state = None;
        let mut revision = 0;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let (crc, json) = line
                .split_once(' ')
                .ok_or_else(|| self.corrupt(n, "no checksum"))?;
            let crc = u32::from_str_radix(crc, 16)
                .ok()
                .filter(|_| crc.len() == 8)
                .ok_or_else(|| self.corrupt(n, format!("bad checksum field `{crc}`")))?;
            let actual = crc32fast::hash(json.as_bytes());
            if crc != actual {
                return Err(self.corrupt(
                    n,
                    format!("checksum mismatch (stored {crc:08x}, content {actual:08x})"),
                ));
            }
            if n == 1 {
                let snap: SnapshotLine =
                    serde_json::from_str(json).map_err(|e| self.corrupt(n, e))?;
                if snap.format != FORMAT || snap.version != VERSION {
                    return Err(self.corrupt(
                        n,
                        format!(
                            "format `{}` version {} (this vdmm-ctl reads `{FORMAT}` version \
                             {VERSION})",
                            snap.format, snap.version
                        ),
                    ));
                }
                revision = snap.revision;
                state = Some(snap.state);
            } else {
                let batch: BatchLine =
                    serde_json::from_str(json).map_err(|e| self.corrupt(n, e))?;
                if batch.revision != revision + 1 {
                    return Err(self.corrupt(
                        n,
                        format!("revision {} follows revision {revision}", batch.revision),
                    ));
                }
                revision = batch.revision;
                state
                    .as_mut()
                    .expect("line 1 is the snapshot")
                    .apply(&batch.deltas);
            }
        }
        let state = state.expect("a non-empty file has line 1");
        state.validate().map_err(|e| Error::StateFile {
            path: self.path.clone(),
            detail: format!("the state it holds is invalid: {e}"),
        })?;
        Ok(Loaded { state, revision })
    }

    /// Writes `state` at `revision` as the whole file (temporary file, sync, rename, sync
    /// the directory) and reopens it for appending.
    fn write_snapshot(&mut self, state: &DesiredState, revision: Revision) -> Result<()> {
        let snap = SnapshotRef {
            format: FORMAT,
            version: VERSION,
            revision,
            state,
        };
        let json = serde_json::to_string(&snap)
            .map_err(|e| Error::Conflict(format!("cannot encode the state: {e}")))?;
        let line = frame(&json);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let io = |what: &str, p: &Path| {
            let what = what.to_string();
            let p = p.display().to_string();
            move |e| Error::io(format!("cannot {what} {p}"), e)
        };
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            f.write_all(line.as_bytes()).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("sync", &tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io("rename to", &self.path))?;
        sync_dir(&self.dir)?;
        self.file = Some(
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io("open", &self.path))?,
        );
        self.revision = revision;
        self.snapshot_bytes = line.len() as u64;
        self.appended_bytes = 0;
        Ok(())
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn load(&mut self) -> Result<Loaded> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_string(&mut text).map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => Error::StateFile {
                        path: self.path.clone(),
                        detail: "it is not UTF-8 text".into(),
                    },
                    _ => Error::io(format!("cannot read {}", self.path.display()), e),
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A new state directory: an empty state, written at once.
                let empty = DesiredState::default();
                self.write_snapshot(&empty, 0)?;
                return Ok(Loaded {
                    state: empty,
                    revision: 0,
                });
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", self.path.display()), e)),
        }
        let loaded = self.parse(&text)?;
        let first = text.find('\n').map_or(text.len(), |i| i + 1) as u64;
        self.snapshot_bytes = first;
        self.appended_bytes = text.len() as u64 - first;
        self.revision = loaded.revision;
        self.file = Some(
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| Error::io(format!("cannot open {}", self.path.display()), e))?,
        );
        Ok(loaded)
    }

    fn commit(
        &mut self,
        base: Revision,
        deltas: &[Delta],
        after: &DesiredState,
    ) -> Result<Revision> {
        if base != self.revision {
            return Err(Error::StoreConflict {
                base,
                current: self.revision,
            });
        }
        if self.file.is_none() {
            return Err(Error::Conflict(
                "the store was not loaded before a commit".into(),
            ));
        }
        let revision = base + 1;
        let compact = self.appended_bytes > self.snapshot_bytes.max(MIN_COMPACT_BYTES);
        if compact {
            self.write_snapshot(after, revision)?;
            return Ok(revision);
        }
        let json = serde_json::to_string(&BatchLine {
            revision,
            deltas: deltas.to_vec(),
        })
        .map_err(|e| Error::Conflict(format!("cannot encode a batch: {e}")))?;
        let line = frame(&json);
        let file = self.file.as_mut().expect("checked above");
        let before = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", self.path.display()), e))?
            .len();
        let written = file
            .write_all(line.as_bytes())
            .and_then(|_| file.sync_data());
        if let Err(e) = written {
            // Take a partial line back off, so the file still reads back exactly.
            let _ = file.set_len(before);
            let _ = file.sync_data();
            return Err(Error::io(
                format!("cannot write to {}", self.path.display()),
                e,
            ));
        }
        self.appended_bytes += line.len() as u64;
        self.revision = revision;
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::state::Op;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vdmm-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn ops(s: &DesiredState, n: u32, k: u64) -> Vec<Delta> {
        let mut ops = vec![];
        if s.endpoints().count() == 0 {
            ops.push(Op::EndpointAdd {
                addr: "192.0.2.1".parse().unwrap(),
            });
        }
        for i in 0..n {
            ops.push(Op::BindingAdd {
                home: format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap(),
                locator: format!("198.51.100.{}", 1 + k % 200).parse().unwrap(),
                source: None,
                replace: true,
                route: false,
            });
        }
        s.plan(&ops).unwrap()
    }

    fn commit(store: &mut FileStore, state: &mut DesiredState, rev: &mut Revision, n: u32) {
        let d = ops(state, n, *rev);
        state.apply(&d);
        *rev = store.commit(*rev, &d, state).unwrap();
    }

    #[test]
    fn commits_survive_a_reopen_and_compaction() {
        let dir = tmpdir("reopen");
        let (mut state, mut rev) = {
            let mut st = FileStore::open(&dir).unwrap();
            let l = st.load().unwrap();
            assert_eq!((l.revision, l.state.binding_count()), (0, 0));
            (l.state, l.revision)
        };
        {
            let mut st = FileStore::open(&dir).unwrap();
            st.load().unwrap();
            for _ in 0..3 {
                commit(&mut st, &mut state, &mut rev, 10);
            }
            // A second store on the same directory is refused while this one lives.
            let e = FileStore::open(&dir).err().unwrap();
            assert!(
                e.to_string().contains("in use by another vdmm agent"),
                "{e}"
            );
        }
        let mut st = FileStore::open(&dir).unwrap();
        let l = st.load().unwrap();
        assert_eq!(l.revision, 3);
        assert_eq!(l.state, state);
        // Enough batches to compact: the file shrinks back to one line, same state.
        for _ in 0..40 {
            commit(&mut st, &mut state, &mut rev, 400);
        }
        drop(st);
        let text = fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(text.lines().count() < 40, "not compacted");
        let l = FileStore::open(&dir).unwrap().load().unwrap();
        assert_eq!((l.revision, &l.state), (43, &state));
        // A stale base revision is a conflict.
        let mut st = FileStore::open(&dir).unwrap();
        st.load().unwrap();
        assert!(matches!(
            st.commit(1, &[], &state),
            Err(Error::StoreConflict { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_file_is_refused_and_left_alone() {
        let dir = tmpdir("damaged");
        {
            let mut st = FileStore::open(&dir).unwrap();
            let l = st.load().unwrap();
            let (mut s, mut rev) = (l.state, l.revision);
            commit(&mut st, &mut s, &mut rev, 5);
            commit(&mut st, &mut s, &mut rev, 5);
        }
        let path = dir.join(STATE_FILE);
        let good = fs::read(&path).unwrap();
        let damage = |bytes: Vec<u8>, want: &str| {
            fs::write(&path, &bytes).unwrap();
            let e = FileStore::open(&dir).unwrap().load().unwrap_err();
            assert!(matches!(e, Error::StateFile { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(fs::read(&path).unwrap(), bytes, "the file was changed");
        };
        damage(good[..good.len() - 7].to_vec(), "cut short");
        damage(Vec::new(), "empty");
        let mut flipped = good.clone();
        flipped[40] ^= 0x01;
        damage(flipped, "line 1: checksum mismatch");
        // Drop line 2: revision 3 then follows revision 1.
        let text = String::from_utf8(good.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        damage(
            format!("{}\n{}\n", lines[0], lines[2]).into_bytes(),
            "line 2: revision 2 follows revision 0",
        );
        damage(vec![0xff, 0xfe, b'\n'], "not UTF-8");
        fs::write(&path, &good).unwrap();
        assert_eq!(FileStore::open(&dir).unwrap().load().unwrap().revision, 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
