//! The controller's state file: JSON, read and changed under an exclusive `flock` on a
//! lock file beside it (FILE.lock), and replaced atomically (written to FILE.tmp, then
//! renamed), so concurrent commands serialise and a crash leaves the old or the new state,
//! never half of one. A change that fails is not written at all.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

use super::state::State;

pub struct StateFile {
    path: PathBuf,
}

/// Holds the lock until dropped.
struct Lock(#[allow(dead_code)] File);

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sibling(&self, ext: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    }

    fn lock(&self, how: libc::c_int) -> Result<Lock> {
        let path = self.sibling(".lock");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("cannot create the directory {}", dir.display()), e)
            })?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        // SAFETY: flock on a file descriptor we own; released when it is closed.
        if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
            return Err(Error::io(
                format!("cannot lock {}", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Lock(f))
    }

    fn load(&self) -> Result<State> {
        match fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::Alb(format!(
                    "{} is not an ALB state file: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(format!("cannot read {}", self.path.display()), e)),
        }
    }

    /// The state (the default, disabled and empty, when the file does not exist yet).
    pub fn read(&self) -> Result<State> {
        let _lock = self.lock(libc::LOCK_SH)?;
        self.load()
    }

    /// Changes the state with `f` and writes it back, unless `f` fails.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = self.lock(libc::LOCK_EX)?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        let tmp = self.sibling(".tmp");
        let text = serde_json::to_string_pretty(&state).expect("the state serialises");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_changes_are_not_written() {
        let dir = std::env::temp_dir().join(format!("vdmm-alb-state-{}", std::process::id()));
        let file = StateFile::new(dir.join("sub/alb.json"));
        assert_eq!(file.read().unwrap(), State::default());
        file.update(|s| {
            s.enabled = true;
            s.add_ap("ap1", 10.0).map_err(Error::Alb)
        })
        .unwrap();
        let e = file
            .update(|s| {
                s.enabled = false;
                s.add_ap("ap1", 10.0).map_err(Error::Alb)
            })
            .unwrap_err();
        assert!(e.to_string().starts_with("AP ap1 already exists"));
        let s = file.read().unwrap();
        assert!(s.enabled && s.aps.contains_key("ap1"));
        fs::write(file.path(), "{not json").unwrap();
        let e = file.read().unwrap_err().to_string();
        assert!(e.contains("is not an ALB state file"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
