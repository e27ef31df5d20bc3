//! Durability checkpoints of the file store's uploads.
//!
//! A chunk (`PATCH`) is acknowledged once its bytes are in the page cache; an fsync starts in
//! the background as the request ends. The kernel keeps the page cache when the registry
//! process dies, so a `kill -9` loses nothing acknowledged. Only the machine going down
//! uncleanly can: each session row therefore carries a [`Checkpoint`], the boot it was written
//! in and the offset known fsynced then, and a session found after another boot is rolled back
//! to that offset (`BlobStore::recover`), its hash state rebuilt from the bytes that survived.
//! The client, which reads `Range` before resuming, sends the rest again. The closing `PUT`
//! fsyncs the whole upload before the blob is published, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What an upload's session row carries for the file store (`Written::state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The kernel's boot id when the state was written.
    pub boot: String,
    /// Bytes known fsynced then.
    pub durable: u64,
}

impl Checkpoint {
    /// `None` for an empty state: a session that has written nothing, or one written by a
    /// version that fsynced every chunk before acknowledging it.
    pub fn parse(state: &[u8]) -> Result<Option<Checkpoint>> {
        if state.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(state)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("file upload state: {e}")))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a checkpoint serializes")
    }

    /// The state to carry: `durable` bytes known fsynced in boot `boot`.
    pub fn state(boot: &str, durable: u64) -> Vec<u8> {
        Checkpoint {
            boot: boot.to_owned(),
            durable,
        }
        .to_bytes()
    }
}

/// This machine's boot id (`/proc/sys/kernel/random/boot_id`), or `None` where there is none:
/// the store then fsyncs every chunk before acknowledging it. `DEPOT_TEST_BOOT_ID` replaces it:
/// the only way a test can stand for an OS crash, which it cannot cause.
pub fn boot_id() -> Option<String> {
    if let Ok(id) = std::env::var("DEPOT_TEST_BOOT_ID") {
        return Some(id);
    }
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// Offsets this process has fsynced, per upload. An entry is tied to an epoch that moves
/// whenever a request cuts the upload back (dropping an interrupted request's bytes), so a
/// background fsync that started before the cut cannot vouch for bytes written after it.
#[derive(Debug, Default, Clone)]
pub struct Synced(Arc<Mutex<HashMap<String, (u64, u64)>>>);

impl Synced {
    /// A request starts writing `upload` at `offset` over a file of `len` bytes: the epoch it
    /// writes in. Bytes past `offset` (an interrupted request's) are dropped, and with them
    /// whatever was fsynced there.
    pub fn begin(&self, upload: &str, offset: u64, len: u64) -> u64 {
        let mut map = self.0.lock().unwrap();
        let entry = map.entry(upload.to_owned()).or_insert((0, 0));
        if offset < len {
            *entry = (entry.0 + 1, entry.1.min(offset));
        }
        entry.0
    }

    /// The offset fsynced in `epoch` so far (0 if the upload was cut back since).
    pub fn durable(&self, upload: &str, epoch: u64) -> u64 {
        match self.0.lock().unwrap().get(upload) {
            Some(&(e, offset)) if e == epoch => offset,
            _ => 0,
        }
    }

    /// An fsync begun in `epoch` covered the first `offset` bytes. Nothing is recorded for an
    /// upload committed or discarded meanwhile, nor for one cut back since.
    pub fn record(&self, upload: &str, epoch: u64, offset: u64) {
        if let Some(entry) = self.0.lock().unwrap().get_mut(upload) {
            if entry.0 == epoch {
                entry.1 = entry.1.max(offset);
            }
        }
    }

    /// The upload is committed or discarded.
    pub fn forget(&self, upload: &str) {
        self.0.lock().unwrap().remove(upload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fsync_from_before_a_cut_vouches_for_nothing_after_it() {
        let synced = Synced::default();
        let epoch = synced.begin("u", 0, 0);
        synced.record("u", epoch, 100);
        assert_eq!(synced.durable("u", epoch), 100);
        // The next request appends where the last ended: same epoch.
        assert_eq!(synced.begin("u", 100, 100), epoch);
        // A request cut the upload back to 40: a new epoch, nothing past 40 vouched for.
        let cut = synced.begin("u", 40, 130);
        assert_ne!(cut, epoch);
        assert_eq!(synced.durable("u", cut), 40);
        // The fsync of a request from before the cut lands late: ignored.
        synced.record("u", epoch, 130);
        assert_eq!(synced.durable("u", cut), 40);
        synced.record("u", cut, 90);
        assert_eq!(synced.durable("u", cut), 90);
        // Committed: a late fsync leaves no entry behind.
        synced.forget("u");
        synced.record("u", cut, 120);
        assert_eq!(synced.durable("u", cut), 0);
        assert!(synced.0.lock().unwrap().is_empty());
    }

    #[test]
    fn states_round_trip_and_empty_means_fsynced_every_chunk() {
        let c = Checkpoint {
            boot: "b".into(),
            durable: 7,
        };
        assert_eq!(Checkpoint::parse(&c.to_bytes()).unwrap(), Some(c));
        assert_eq!(Checkpoint::parse(&[]).unwrap(), None);
        assert!(Checkpoint::parse(b"{").is_err());
    }
}
