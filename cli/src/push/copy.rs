//! The blob copies of one push: each destination goes through the blobs on its own (`HEAD`,
//! then a mount where its registry holds the blob elsewhere), and pushes its manifests as soon
//! as its own blobs have landed, so a destination that is down never holds up one that is not.
//!
//! Reading each blob from the depot registry once still holds: destinations that lack a blob
//! *gather* for it, and the first to arrive waits until every other destination has said
//! whether it needs the blob too, then one read streams it to all of them ([`fanout`]). The
//! wait leaves out destinations that have failed or whose registry is being retried (a dead
//! or refusing registry: `Registry::retried_within`), and ends after [`GATHER_AT_MOST`] in any case; a
//! destination that comes to a blob after its read began is served by a read of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::StreamExt;
use tokio::sync::{watch, Notify};

use super::fanout;
use super::locations::Locations;
use super::Dest;
use crate::image::Blob;
use crate::oci::{Started, UploadError};
use crate::progress::short;
use crate::source::Source;

/// The longest a destination waits for the others to say whether they need a blob.
pub const GATHER_AT_MOST: Duration = Duration::from_secs(30);
/// A registry retried this recently is not waited for: it is down, refusing, or overloaded.
const TROUBLE_WINDOW: Duration = Duration::from_secs(10);

/// The destinations that lack one blob, and which have said whether they do.
#[derive(Default)]
struct Gathering {
    joined: Vec<usize>,
    decided: HashSet<usize>,
    /// The read began: a destination arriving now gathers anew.
    started: bool,
    /// Turns true when the gathered destinations' uploads have ended.
    done: Option<watch::Receiver<bool>>,
}

/// The state shared by the blob copies of one push.
pub struct Copy<'a> {
    pub source: &'a Source,
    pub dests: &'a [Dest],
    pub locations: Locations,
    pub chunk: usize,
    pub parallel: usize,
    pub source_bytes: AtomicU64,
    gatherings: Mutex<HashMap<String, Gathering>>,
    changed: Notify,
}

impl<'a> Copy<'a> {
    pub fn new(source: &'a Source, dests: &'a [Dest], chunk: usize, parallel: usize) -> Copy<'a> {
        Copy {
            source,
            dests,
            locations: Locations::load(),
            chunk,
            parallel,
            source_bytes: AtomicU64::new(0),
            gatherings: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Every blob of `blobs` onto destination `i`, `parallel` at a time.
    pub async fn destination(&self, i: usize, blobs: &[Blob]) {
        futures::stream::iter(blobs)
            .map(|b| self.blob(i, b))
            .buffer_unordered(self.parallel)
            .collect::<Vec<()>>()
            .await;
    }

    async fn blob(&self, i: usize, blob: &Blob) {
        let d = &self.dests[i];
        let digest = &blob.desc.digest;
        let size = blob.desc.size;
        let lacking = !d.failed()
            && match d.reg.blob_exists(&d.repo, digest).await {
                Ok(true) => {
                    let mut s = d.stats.lock().unwrap();
                    s.skipped_bytes += size;
                    s.blobs_skipped += 1;
                    d.bar.inc(size);
                    self.locations.record(digest, &d.host, &d.repo);
                    false
                }
                // Mounted where the registry already holds it in another repository.
                Ok(false) => !self.mount(d, blob).await,
                Err(e) => {
                    d.fail(format!("{} ({}): {e}", blob.label, short(digest)));
                    false
                }
            };
        if lacking {
            self.gather(i, blob).await;
        } else {
            self.decided(digest, i);
        }
    }

    /// Destination `i` does not need this blob (it has it, mounted it, or failed).
    fn decided(&self, digest: &str, i: usize) {
        let mut all = self.gatherings.lock().unwrap();
        let g = all.entry(digest.to_owned()).or_default();
        if !g.started {
            g.decided.insert(i);
        }
        drop(all);
        self.changed.notify_waiters();
    }

    /// Destination `i` needs this blob: joins the others that do, and returns once its upload
    /// has ended (its outcome is in its stats or its failure).
    async fn gather(&self, i: usize, blob: &Blob) {
        let digest = &blob.desc.digest;
        let (lead, mut done) = {
            let mut all = self.gatherings.lock().unwrap();
            let g = all.entry(digest.clone()).or_default();
            if g.started {
                // Late: the blob's read is under way or over. Gather anew.
                *g = Gathering::default();
            }
            g.decided.insert(i);
            g.joined.push(i);
            match &g.done {
                Some(rx) => (None, rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(false);
                    g.done = Some(rx.clone());
                    (Some(tx), rx)
                }
            }
        };
        self.changed.notify_waiters();
        let Some(tx) = lead else {
            // Another destination leads this gathering; wait for its uploads to end.
            let _ = done.wait_for(|d| *d).await;
            return;
        };
        self.wait_for_the_others(digest).await;
        let joined = {
            let mut all = self.gatherings.lock().unwrap();
            let g = all
                .get_mut(digest)
                .expect("a gathering is only ever replaced");
            g.started = true;
            let mut joined = std::mem::take(&mut g.joined);
            // In the order of the command line, whatever order they came in: the first
            // destination on a registry uploads, its others mount from it.
            joined.sort_unstable();
            joined
        };
        self.deliver(joined.iter().map(|&j| &self.dests[j]).collect(), blob)
            .await;
        let _ = tx.send(true);
    }

    /// Until every destination has said whether it needs the blob, except those failed or in
    /// trouble; [`GATHER_AT_MOST`] at most.
    async fn wait_for_the_others(&self, digest: &str) {
        let until = Instant::now() + GATHER_AT_MOST;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change made meanwhile is not missed.
            changed.as_mut().enable();
            let waiting = {
                let all = self.gatherings.lock().unwrap();
                let g = &all[digest];
                self.dests.iter().enumerate().any(|(j, d)| {
                    !g.decided.contains(&j) && !d.failed() && !d.reg.retried_within(TROUBLE_WINDOW)
                })
            };
            let now = Instant::now();
            if !waiting || now >= until {
                return;
            }
            // Failures and retries do not notify: look again now and then.
            let _ =
                tokio::time::timeout((until - now).min(Duration::from_millis(100)), changed).await;
        }
    }

    /// One gathering's destinations get the blob: one upload per registry (one read for all),
    /// whose other repositories then mount it; what could not be mounted is uploaded after.
    async fn deliver(&self, lacking: Vec<&Dest>, blob: &Blob) {
        let mut first: Vec<&Dest> = Vec::new();
        let mut later: Vec<&Dest> = Vec::new();
        for d in lacking {
            if first.iter().any(|f| f.host == d.host) {
                later.push(d);
            } else {
                first.push(d);
            }
        }
        self.upload(first, blob).await;
        let mounted = join_all(later.iter().map(|d| self.mount(d, blob))).await;
        let rest: Vec<&Dest> = later
            .into_iter()
            .zip(mounted)
            .filter_map(|(d, m)| (!m).then_some(d))
            .collect();
        self.upload(rest, blob).await;
    }

    /// Tries to mount the blob from repositories of the same registry known to hold it.
    async fn mount(&self, d: &Dest, blob: &Blob) -> bool {
        let digest = &blob.desc.digest;
        for from in self
            .locations
            .candidates(digest, &d.host, &d.repo)
            .into_iter()
            .take(3)
        {
            match d.reg.mount(&d.repo, digest, &from).await {
                Ok(Started::Mounted) => {
                    let mut s = d.stats.lock().unwrap();
                    s.mounted_bytes += blob.desc.size;
                    s.blobs_mounted += 1;
                    d.bar.inc(blob.desc.size);
                    self.locations.record(digest, &d.host, &d.repo);
                    return true;
                }
                // Not there any more, or not readable with these credentials: upload instead.
                Ok(Started::Upload(up)) => up.cancel().await,
                Err(_) => {}
            }
        }
        false
    }

    /// Streams the blob to `dests`; sessions the registries lost are started again (reading
    /// the source again for them only), twice at most.
    async fn upload(&self, mut dests: Vec<&Dest>, blob: &Blob) {
        let digest = &blob.desc.digest;
        for pass in 0..3 {
            if dests.is_empty() {
                return;
            }
            let outcomes = match fanout::fan_out(
                &self.source.reg,
                &self.source.project,
                &blob.desc,
                &dests,
                self.chunk,
                &self.source_bytes,
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    for d in &dests {
                        d.fail(format!(
                            "reading {} ({}) from the depot registry: {e}",
                            blob.label,
                            short(digest)
                        ));
                    }
                    return;
                }
            };
            let mut again = Vec::new();
            for (d, outcome) in dests.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        let mut s = d.stats.lock().unwrap();
                        s.pushed_bytes += blob.desc.size;
                        s.blobs_pushed += 1;
                        self.locations.record(digest, &d.host, &d.repo);
                    }
                    Err(UploadError::Lost(why)) if pass < 2 => {
                        d.progress.note(&format!(
                            "{}: {} ({}): {why}; uploading it again",
                            d.label,
                            blob.label,
                            short(digest)
                        ));
                        again.push(d);
                    }
                    Err(e) => d.fail(format!("{} ({}): {e}", blob.label, short(digest))),
                }
            }
            dests = again;
        }
    }
}
