//! Opening the store from its options: the metadata database and the blob store named by
//! flags and environment variables shared by `depot-registry serve`, `admin` and `depot-gc`,
//! and how garbage collection judges garbage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metadata::Metadata;
#[cfg(feature = "s3")]
use crate::storage::{s3, s3_client, S3Options, S3Store};
use crate::storage::{BlobStore, FileStore, Referenced};

/// Where metadata and blobs live: shared by `serve`, `admin` and `depot-gc`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendConfig {
    /// Directory for the embedded metadata database and blob files; created on first start.
    #[arg(long, env = "DEPOT_DATA_DIR", default_value = "./depot-data")]
    pub data_dir: PathBuf,

    /// Metadata database (`sqlite:PATH` or `postgres://...`); default SQLite under --data-dir.
    #[arg(long, env = "DATABASE_URL", conflicts_with = "database_url_file")]
    pub database_url: Option<String>,

    /// A file holding the database URL (it carries the password: a mounted Secret, say).
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Where blob bytes go: `file:DIR` or `s3://BUCKET[/PREFIX]`; default files under --data-dir.
    #[arg(long, env = "DEPOT_STORAGE")]
    pub storage: Option<String>,

    /// S3 endpoint URL, for S3-compatible stores (Garage, MinIO, ...); AWS when unset.
    /// Credentials come from the standard AWS environment and profile chain.
    #[arg(long, env = "DEPOT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region (default: from the AWS chain, else us-east-1).
    #[arg(long, env = "DEPOT_S3_REGION")]
    pub s3_region: Option<String>,

    /// Address buckets by path (`endpoint/bucket`), as most S3-compatible servers want.
    #[arg(long, env = "DEPOT_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,

    /// Size of the parts blobs are uploaded to S3 in, MiB (S3 allows 5 to 5120, and 10,000
    /// parts a blob: 16 MiB parts carry blobs up to 160 GB).
    #[arg(long, env = "DEPOT_S3_PART_SIZE_MIB", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub s3_part_size_mib: u64,
}

impl BackendConfig {
    /// The database URL: the flag's, the file's (trimmed), or SQLite under the data directory.
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.database_url_file {
            let url = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let url = url.trim();
            anyhow::ensure!(!url.is_empty(), "{} is empty", path.display());
            return Ok(url.to_owned());
        }
        Ok(format!(
            "sqlite:{}?mode=rwc",
            self.data_dir.join("metadata.db").display()
        ))
    }

    /// Whether the metadata lives in the default SQLite file under the data directory.
    fn default_database(&self) -> bool {
        self.database_url.is_none() && self.database_url_file.is_none()
    }
}

/// How garbage collection judges garbage: shared by the server's collections and `depot-gc`.
#[derive(Debug, Clone, clap::Args)]
pub struct GcConfig {
    /// Seconds a blob must have been unreferenced and unused before it is deleted. Keep it well
    /// above the time a client takes between checking a blob and pushing the manifest that
    /// uses it, and above --cache-ttl.
    #[arg(long = "gc-grace", env = "DEPOT_GC_GRACE", default_value_t = depot_gc::DEFAULT_GRACE_SECS)]
    pub grace_secs: u64,

    /// Seconds an upload session may sit idle before collection deletes it (and its bytes);
    /// session ids expire after 24 hours anyway.
    #[arg(
        long = "upload-timeout",
        env = "DEPOT_UPLOAD_TIMEOUT",
        default_value_t = depot_gc::DEFAULT_UPLOAD_TIMEOUT_SECS
    )]
    pub upload_timeout_secs: u64,

    /// Rows a collection handles per transaction (builds, manifests, blobs): smaller batches
    /// hold locks for less time and renew the collection lock more often, at more round trips.
    #[arg(
        long = "gc-batch",
        env = "DEPOT_GC_BATCH",
        default_value_t = depot_gc::DEFAULT_BATCH,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub batch: u32,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace_secs: depot_gc::DEFAULT_GRACE_SECS,
            upload_timeout_secs: depot_gc::DEFAULT_UPLOAD_TIMEOUT_SECS,
            batch: depot_gc::DEFAULT_BATCH,
        }
    }
}

impl GcConfig {
    /// The collector's settings these options give.
    pub fn collector(&self, dry_run: bool) -> depot_gc::Config {
        depot_gc::Config {
            grace: Duration::from_secs(self.grace_secs),
            upload_timeout: Duration::from_secs(self.upload_timeout_secs),
            batch: self.batch as usize,
            dry_run,
        }
    }
}

/// Opens the metadata database and the blob store `backend` names (shared with `depot-gc`).
pub async fn open_backend(
    backend: &BackendConfig,
    redirect: bool,
) -> anyhow::Result<(Metadata, Arc<dyn BlobStore>)> {
    // The data directory is made only for what goes in it by default (the SQLite database,
    // the blob files): a registry on PostgreSQL and S3 leaves no `./depot-data` behind.
    if backend.default_database() || backend.storage.is_none() {
        std::fs::create_dir_all(&backend.data_dir)?;
    }
    let meta = Metadata::connect(&backend.database_url()?).await?;
    // Files acknowledged from the page cache only where one process owns them: on a shared
    // database, replicas on other machines may share the directory too (a network volume),
    // and another machine's boot id would look like a restart of this one.
    let single_process = !meta.dialect().shared();
    let store = open_store(backend, redirect, single_process, Arc::new(meta.clone())).await?;
    Ok((meta, store))
}

/// The blob store `--storage` names: files under a directory, or an S3 bucket (checked to be
/// reachable, so a wrong bucket or endpoint fails at start rather than at the first push).
async fn open_store(
    config: &BackendConfig,
    redirect: bool,
    single_process: bool,
    referenced: Arc<dyn Referenced>,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let files = |dir: &std::path::Path| -> anyhow::Result<Arc<dyn BlobStore>> {
        let store = FileStore::open(dir, referenced.clone())?;
        Ok(Arc::new(if single_process {
            store
        } else {
            store.fsync_every_chunk()
        }))
    };
    match config.storage.as_deref() {
        None => files(&config.data_dir),
        Some(spec) if spec.starts_with("file:") => {
            files(std::path::Path::new(&spec["file:".len()..]))
        }
        Some(spec) => open_s3(config, spec, redirect, referenced).await,
    }
}

/// An S3 bucket, checked to be reachable, so a wrong bucket or endpoint fails at start rather
/// than at the first push.
#[cfg(feature = "s3")]
async fn open_s3(
    config: &BackendConfig,
    spec: &str,
    redirect: bool,
    referenced: Arc<dyn Referenced>,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let (bucket, prefix) = s3::parse_url(spec).ok_or_else(|| {
        anyhow::anyhow!("--storage must be file:DIR or s3://BUCKET[/PREFIX], not {spec:?}")
    })?;
    let options = S3Options {
        endpoint: config.s3_endpoint.clone(),
        region: config.s3_region.clone(),
        force_path_style: config.s3_force_path_style,
    };
    let client = s3_client(&options).await;
    client
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "bucket {bucket} is not reachable: {}",
                e.into_service_error()
            )
        })?;
    tracing::info!(%bucket, %prefix, redirect, "blobs are stored in S3");
    Ok(Arc::new(
        S3Store::new(client, bucket, prefix, referenced)
            .with_redirects(redirect)
            .with_part_size(config.s3_part_size_mib as usize * 1024 * 1024),
    ))
}

#[cfg(not(feature = "s3"))]
async fn open_s3(
    _: &BackendConfig,
    spec: &str,
    _: bool,
    _: Arc<dyn Referenced>,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    anyhow::bail!(
        "--storage {spec:?}: this build has no S3 support (the `s3` feature); use file:DIR"
    )
}
