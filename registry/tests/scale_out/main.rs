//! Scale-out on a real distributed store: three registry replicas on one PostgreSQL cluster and a
//! three-node Garage cluster (one zone per node, replication factor 3, behind an nginx that
//! balances S3 requests over the nodes), with the README's nginx configuration balancing clients
//! over the replicas request by request.
//!
//! - Faults under load: 8 clients (our CLI with chunked uploads, skopeo) push while a replica is
//!   killed and restarted, a Garage node is lost and comes back, and PostgreSQL restarts; every
//!   acknowledged image then pulls back by digest, no partial blob is visible and
//!   `depot-gc reconcile` finds nothing inconsistent.
//! - The replica holding the collection lock is killed in the middle of a collection: another
//!   takes over within one interval and nothing live is lost.
//! - A thundering herd of 50 pulls of a 512 MiB image, counted in Garage's S3 GETs, beside the
//!   same pulls from distribution 2.8 on the same Garage cluster.
//! - The cost of each operation in database statements (`pg_stat_statements`) and S3 requests
//!   (Garage's counters), as `docs/scaling.md` reports them.
//! - Cache coherence between replicas while a tag moves every few milliseconds.
//! - `depot-gc reconcile` on a listing that lags the store's deletes (a Garage node back from
//!   an outage lists what was deleted while it was away): it counts only what a read confirms.
//!
//! The tests run one at a time (they measure; two at once would share two cores). Needs
//! `garage` and `nginx`, which `.ci/setup` installs.

mod coherence;
mod costs;
mod faults;
mod gc_takeover;
mod herd;
mod images;
mod lagging_listing;
mod world;
