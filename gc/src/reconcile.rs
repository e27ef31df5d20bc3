//! `depot-gc reconcile`: the one operation that lists the whole store. It finds objects no
//! metadata refers to (bytes a crash left between the store and the database: a committed
//! upload never linked, an upload whose session row is gone) and removes those older than the
//! grace period. Collections never need it in the normal path.

use std::collections::HashSet;

use serde::Serialize;

use crate::{Catalog, Clock, Listed, Objects};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Objects the store listed.
    pub listed: u64,
    /// Objects nothing refers to, old enough, and removed (or, in a dry run, to be removed).
    pub orphans: u64,
    pub bytes: u64,
    /// Objects nothing refers to but younger than the grace period (perhaps being linked now).
    pub young: u64,
    /// Objects the listing named but a read finds gone: deleted already, in a store whose
    /// listing lags its deletes. Neither counted as orphans nor removed again.
    pub gone: u64,
}

/// Lists the store page by page and removes what no blob, trash entry or open session owns.
/// The store itself refuses to delete any object a blob refers to (`BlobStore::delete_many`,
/// `discard`), so a mistake here cannot lose a stored blob either.
pub async fn reconcile(
    catalog: &dyn Catalog,
    objects: &dyn Objects,
    clock: &dyn Clock,
    grace: std::time::Duration,
    dry_run: bool,
    on_item: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Reconciled> {
    let cutoff = clock.now_ms() - grace.as_millis() as i64;
    let mut out = Reconciled::default();
    let mut cursor = None;
    loop {
        let (page, next) = objects.list(cursor).await?;
        out.listed += page.len() as u64;
        // Every key is first asked about as a blob location, whatever its name looks like: an
        // upload's staged piece becomes the blob itself when the upload is committed.
        let keys: Vec<String> = page.iter().map(|l| l.location.clone()).collect();
        let known: HashSet<String> = catalog.known_locations(&keys).await?.into_iter().collect();
        let uploads: Vec<String> = page
            .iter()
            .filter(|l| !known.contains(&l.location))
            .filter_map(|l| l.upload.clone())
            .collect();
        let open: HashSet<String> = catalog.open_uploads(&uploads).await?.into_iter().collect();
        let unowned: Vec<&Listed> = page
            .iter()
            .filter(|l| {
                !known.contains(&l.location)
                    && !l.upload.as_ref().is_some_and(|id| open.contains(id))
            })
            .collect();
        let (young, old): (Vec<&Listed>, Vec<&Listed>) =
            unowned.into_iter().partition(|l| l.modified_ms > cutoff);
        out.young += young.len() as u64;
        // Only what a read confirms is an orphan: an object listed but already gone would be
        // reported (and "removed") on every run, its bytes counted though nothing holds them.
        let candidates: Vec<String> = old.iter().map(|l| l.location.clone()).collect();
        let present: HashSet<String> = objects.present(&candidates).await?.into_iter().collect();
        let mut orphan_blobs = Vec::new();
        let mut orphan_uploads = Vec::new();
        for l in old {
            if !present.contains(&l.location) {
                out.gone += 1;
                on_item(&format!("listed but gone {}", l.location));
                continue;
            }
            out.orphans += 1;
            out.bytes += l.size;
            on_item(&format!("orphan {} ({} bytes)", l.location, l.size));
            match &l.upload {
                None => orphan_blobs.push(l.location.clone()),
                Some(id) if !orphan_uploads.contains(id) => orphan_uploads.push(id.clone()),
                Some(_) => {}
            }
        }
        if !dry_run {
            objects.delete_many(&orphan_blobs).await?;
            for id in &orphan_uploads {
                objects.discard_upload(id, &[]).await?;
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}
