//! The state every request handler shares: the store's [`Content`] and what the HTTP layer adds
//! to it (who may do what, upload session ids, this process's metrics, the public address,
//! whether it is shutting down).
//! It sits at the top of the HTTP layer so the handlers (`api`, `control`) and the server use
//! it, and nothing below them does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use depot_store::content::Content;

use crate::access::Access;
use crate::auth::BaseUrl;
use crate::upload_id::UploadIds;

/// Everything a handler needs, behind one `Arc`: axum clones the state for every request, and a
/// clone of the fields themselves (several caches, each a handful of `Arc`s and channels) was
/// a sixth of a manifest GET's CPU.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub content: Content,
    pub access: Access,
    pub upload_ids: UploadIds,
    /// Whether the admin may move the clock forward (`--test-clock`).
    pub test_clock: bool,
    /// This process's garbage collections, recorded for `/metrics`.
    pub gc_metrics: Arc<depot_gc::Metrics>,
    /// What `/metrics` keeps between scrapes.
    pub metrics: Arc<crate::metrics::Exporter>,
    /// The address clients reach the registry at.
    pub base_url: BaseUrl,
    /// Whether the process is shutting down (`/readyz` then answers 503).
    pub lifecycle: Lifecycle,
    /// Manifest requests answered per repository, for the dashboard's usage chart.
    pub pulls: Arc<crate::usage::PullCounter>,
}

/// Whether this process is shutting down; shared by the server and the probes.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle(Arc<AtomicBool>);

impl Lifecycle {
    /// From now on `/readyz` answers `503`.
    pub fn drain(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
