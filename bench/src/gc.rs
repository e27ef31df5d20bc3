//! What a garbage collection costs against the size of the store: the embedded default
//! (SQLite, blob files) holding N blobs, 1% of them used only by an expired build, collected by
//! one `depot-gc` collection (the same code the registry runs on its interval). A collection's
//! queries follow indexes over what may be garbage, so its time should follow the garbage, not
//! the store: the figure to watch is how much more 10x the blobs costs.

use std::path::Path;
use std::time::Instant;

use depot_gc::{Collector, Config, Report};
use depot_store::clock::Clock;
use depot_store::digest::{Algorithm, Digest};
use depot_store::gc::Backend;
use depot_store::metadata::{Link, Metadata, NewManifest, Owner, StoredBlob};
use depot_store::model::{Build, BuildSpec, BuildState, Project};
use depot_store::storage::FileStore;

/// Blobs per manifest.
const PER_MANIFEST: usize = 100;

pub struct GcFigures {
    pub blobs: usize,
    pub garbage: usize,
    pub populate_secs: f64,
    pub collect_secs: f64,
    pub report: Report,
    /// Blob files left after the collection.
    pub files_left: usize,
}

/// Fills a fresh embedded store with `blobs` blobs, `garbage` of them (a multiple of 100) used
/// only by an expired build, and times one collection.
pub async fn measure(work: &Path, blobs: usize, garbage: usize) -> anyhow::Result<GcFigures> {
    let dir = work.join(format!("gc-{blobs}-{garbage}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let meta = Metadata::connect(&format!(
        "sqlite:{}?mode=rwc",
        dir.join("metadata.db").display()
    ))
    .await?;
    let store = std::sync::Arc::new(FileStore::open(&dir, std::sync::Arc::new(meta.clone()))?);
    let now = Clock::default().now_ms();
    meta.create_project(&Project {
        id: "bench".into(),
        name: "bench".into(),
        retention_secs: 60,
        created_at: now,
        keep: None,
    })
    .await?;
    let expired = Build {
        id: "expired".into(),
        project: "bench".into(),
        state: BuildState::Saved,
        spec: BuildSpec::default(),
        failure: None,
        created_at: now - 10_000,
        updated_at: now - 10_000,
        lease_expires_at: now - 10_000,
        expires_at: now - 1_000,
    };
    meta.create_build(&expired).await?;
    let repo = "bench".parse().expect("repository name");

    let started = Instant::now();
    let digests: Vec<Digest> = (0..blobs)
        .map(|i| Digest::of(Algorithm::Sha256, format!("bench blob {i}").as_bytes()))
        .collect();
    // The bytes: files where the file store keeps them (written directly: this measures
    // collection, not ingestion).
    for (i, d) in digests.iter().enumerate() {
        let hex = d.hex();
        let path = dir.join("blobs/sha256").join(&hex[..2]).join(hex);
        std::fs::create_dir_all(path.parent().expect("parent"))?;
        std::fs::write(path, format!("bench blob {i}"))?;
    }
    for chunk in digests.chunks(256) {
        let links = chunk.iter().map(|d| {
            let blob = StoredBlob::new(16, d.to_string());
            meta.link_blob(&repo, d, Link::New(blob), now - 5_000)
        });
        for r in futures::future::join_all(links).await {
            r?;
        }
    }
    // Manifests of a hundred blobs each; the last 1% belong to the expired build only.
    let owner = Owner {
        build_id: expired.id.clone(),
        expires_at: expired.expires_at,
    };
    for (n, chunk) in digests.chunks(PER_MANIFEST).enumerate() {
        let content = format!("bench manifest {n}").into_bytes();
        let m = NewManifest {
            digest: Digest::of(Algorithm::Sha256, &content),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content,
            subject: None,
            artifact_type: None,
            annotations: None,
            blobs: chunk.to_vec(),
            manifests: vec![],
        };
        let owned = n * PER_MANIFEST >= blobs - garbage;
        meta.put_manifest(&repo, &m, &[], owned.then_some(&owner))
            .await?;
    }
    // The load left a large write-ahead log; folding it in is the load's cost, not the
    // collection's. The page cache is warm either way (the files were just written).
    meta.checkpoint().await?;
    // Nor is writing back the hundred thousand files just created: a collection's commits
    // would wait behind it.
    std::process::Command::new("sync").status()?;
    let populate_secs = started.elapsed().as_secs_f64();

    let backend = Backend {
        meta: meta.clone(),
        store,
        caches: None,
    };
    let clock = Clock::default();
    let collector = Collector {
        catalog: &backend,
        objects: &backend,
        clock: &clock,
        config: Config {
            grace: std::time::Duration::ZERO,
            ..Config::default()
        },
        holder: "depot-bench".into(),
        on_item: None,
    };
    let started = Instant::now();
    let report = collector
        .run()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the collection lock was taken"))?;
    let collect_secs = started.elapsed().as_secs_f64();
    let mut files_left = 0;
    for prefix in std::fs::read_dir(dir.join("blobs/sha256"))? {
        files_left += std::fs::read_dir(prefix?.path())?.count();
    }
    meta.close().await;
    Ok(GcFigures {
        blobs,
        garbage,
        populate_secs,
        collect_secs,
        report,
        files_left,
    })
}

pub fn print(small: &GcFigures, large: &GcFigures, same_garbage: &GcFigures) {
    println!("\nGarbage collection (embedded default: SQLite and blob files; one collection)");
    for f in [small, large, same_garbage] {
        println!(
            "  {:>7} blobs, {:>5} garbage: collection {:>7.1} ms ({} builds, {} manifests, {} blobs, {} bytes; {} blob files left, {} errors); store filled in {:.1} s",
            f.blobs,
            f.garbage,
            f.collect_secs * 1000.0,
            f.report.builds_expired,
            f.report.manifests_deleted,
            f.report.blobs_deleted,
            f.report.bytes_freed,
            f.files_left,
            f.report.errors,
            f.populate_secs,
        );
    }
    println!(
        "  1% garbage: {}x the blobs took {:.2}x the time (the garbage is {}x too)",
        large.blobs / small.blobs.max(1),
        large.collect_secs / small.collect_secs.max(1e-9),
        large.garbage / small.garbage.max(1),
    );
    println!(
        "  the same garbage in a store {}x the size took {:.2}x the time",
        same_garbage.blobs / small.blobs.max(1),
        same_garbage.collect_secs / small.collect_secs.max(1e-9),
    );
}
