//! Exclusive locks on a results directory's files.
//!
//! An OS file lock (`flock` on Unix, through `std::fs::File::try_lock`): the
//! kernel releases it when its holder exits, however it exits, so there is
//! no stale lock to take over and no race in taking one over. The file stays
//! (removing it would let two processes lock two different files of one
//! name); what it says is who holds it, for the error a second taker gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A held lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path` for `what` (the command holding it), or
    /// fails naming the process that holds it.
    pub fn acquire(path: &Path, what: &str) -> anyhow::Result<Lock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                anyhow::bail!(
                    "{} is locked by {}; wait for it to finish, or use another --out",
                    path.display(),
                    describe(&holder)
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot lock {} (a file system without locks?)",
                        path.display()
                    )
                });
            }
        }
        let text = format!(
            "{what}: pid {} on {}{} since {}\n",
            std::process::id(),
            host_name(),
            std::env::var("SLURM_JOB_ID")
                .ok()
                .filter(|j| !j.is_empty())
                .map_or(String::new(), |j| format!(" (SLURM job {j})")),
            utc_now()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write the lock {}", path.display()))?;
        Ok(Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock at `path` now, if anyone does.
pub fn holder(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(describe(&text))
        }
        Err(TryLockError::Error(_)) => None,
    }
}

fn describe(holder: &str) -> String {
    match holder.trim() {
        "" => "another process (starting up)".to_string(),
        text => text.to_string(),
    }
}

/// This machine's host name.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `2026-12-07 02:40 UTC`.
fn utc_now() -> String {
    records::utc_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_naming_its_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert_eq!(holder(&path), None);
        let lock = Lock::acquire(&path, "lrscape run").unwrap();
        let pid = format!("lrscape run: pid {} on ", std::process::id());
        assert!(
            holder(&path).unwrap().starts_with(&pid),
            "{:?}",
            holder(&path)
        );
        let err = Lock::acquire(&path, "lrscape merge")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is locked by") && err.contains(&pid), "{err}");
        drop(lock);
        // A process another test forks in the same instant shares the
        // descriptor until it execs (close-on-exec): the release may lag.
        let freed = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            holder(&path).is_none()
        });
        assert!(freed, "still held after drop: {:?}", holder(&path));
        // What a dead holder left in the file is no lock at all.
        std::fs::write(&path, "lrscape run: pid 1 on elsewhere since then\n").unwrap();
        let lock = Lock::acquire(&path, "lrscape merge").unwrap();
        assert!(
            std::fs::read_to_string(lock.path())
                .unwrap()
                .starts_with("lrscape merge: pid")
        );
    }
}
