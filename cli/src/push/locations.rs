//! Where blobs were pushed before (`<cache dir>/depot/blob-locations.json`: digest → the
//! `host/repository`s that received it), so a later push to another repository of the same
//! registry can mount instead of upload, as Docker's own blob cache does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Digests remembered at most (the file stays a few MiB).
const MAX_DIGESTS: usize = 20_000;
/// Repositories remembered per digest.
const MAX_REPOS: usize = 8;

#[derive(Debug, Default)]
pub struct Locations {
    path: Option<PathBuf>,
    map: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Locations {
    /// Loads the cache (an unreadable or corrupt file is an empty cache: it is only a hint).
    pub fn load() -> Locations {
        let path = dirs::cache_dir().map(|d| d.join("depot").join("blob-locations.json"));
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Locations {
            path,
            map: Mutex::new(map),
        }
    }

    /// Repositories of `host` known to hold `digest`, other than `except`.
    pub fn candidates(&self, digest: &str, host: &str, except: &str) -> Vec<String> {
        let prefix = format!("{host}/");
        self.map
            .lock()
            .unwrap()
            .get(digest)
            .map(|repos| {
                repos
                    .iter()
                    .filter_map(|r| r.strip_prefix(&prefix))
                    .filter(|r| *r != except)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn record(&self, digest: &str, host: &str, repo: &str) {
        let entry = format!("{host}/{repo}");
        let mut map = self.map.lock().unwrap();
        let repos = map.entry(digest.to_owned()).or_default();
        repos.retain(|r| *r != entry);
        repos.insert(0, entry);
        repos.truncate(MAX_REPOS);
    }

    /// Writes the cache back (atomically; failures only cost future mounts).
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut map = self.map.lock().unwrap().clone();
        while map.len() > MAX_DIGESTS {
            map.pop_first();
        }
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".blob-locations.{}.tmp", std::process::id()));
        if let Ok(bytes) = serde_json::to_vec(&map) {
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }
}
