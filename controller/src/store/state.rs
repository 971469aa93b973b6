//! The rollout state on disk (`state_dir/state.json`), written so that a crash at any moment
//! leaves either the old state or the new one: write a temp file, fsync it, rename it over the
//! old one, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::rollout::RolloutState;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{file}: cannot read rollout state: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: rollout state is not valid ({source}); canaryd routes 100 % to stable and will not progress until an operator fixes or removes this file")]
    Corrupt {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: cannot write rollout state: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
    /// A fleet: the shared state in etcd was not written (`cluster/store.rs`).
    #[error("shared rollout state not written to etcd: {error}")]
    Shared { error: String },
}

/// Reads and writes `state.json`.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The persisted state, `None` when no rollout has ever been persisted here.
    pub fn load(&self) -> Result<Option<RolloutState>, StateError> {
        let path = self.path();
        let file = path.display().to_string();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { file, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { file, source })
    }

    /// Persists `state` atomically and durably.
    pub fn save(&self, state: &RolloutState) -> Result<(), StateError> {
        let path = self.path();
        let err = |source| StateError::Write {
            file: path.display().to_string(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = self.dir.join("state.json.tmp");
        let mut body = serde_json::to_vec_pretty(state).map_err(|e| err(e.into()))?;
        body.push(b'\n');
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(&body).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, &path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
