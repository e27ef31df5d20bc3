//! A fresh PostgreSQL database and S3 bucket on the servers `.ci/run` starts, for tests of
//! replicas on the production backends. Included by those tests only (`#[path]`): the CLI's
//! tests share `common/` and have no sqlx.

/// What several replicas share.
pub struct Backends {
    pub database_url: String,
    pub endpoint: String,
    pub bucket: String,
    /// An admin token every replica is started with.
    pub admin: String,
}

impl Backends {
    /// The `serve` flags that put a replica on these backends.
    pub fn flags(&self) -> Vec<String> {
        [
            "--database-url",
            &self.database_url,
            "--storage",
            &format!("s3://{}/registry", self.bucket),
            "--s3-endpoint",
            &self.endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
            "--admin-token",
            &self.admin,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// A new database and bucket named after `prefix`, or `None` (and a note) when
/// `DEPOT_TEST_POSTGRES_URL` or `DEPOT_TEST_S3_ENDPOINT` is not set.
pub fn fresh(prefix: &str) -> Option<Backends> {
    let (Ok(postgres), Ok(endpoint)) = (
        std::env::var("DEPOT_TEST_POSTGRES_URL"),
        std::env::var("DEPOT_TEST_S3_ENDPOINT"),
    ) else {
        eprintln!("DEPOT_TEST_S3_ENDPOINT not set (or DEPOT_TEST_POSTGRES_URL); this test runs in .ci/run");
        return None;
    };
    let suffix = format!("{:016x}", rand::random::<u64>());
    let database = format!("{prefix}_{suffix}");
    let bucket = format!("{prefix}-{suffix}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&postgres).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {database}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let options = depot_registry::storage::S3Options {
                endpoint: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
                force_path_style: true,
            };
            let client = depot_registry::storage::s3_client(&options).await;
            client.create_bucket().bucket(&bucket).send().await.unwrap();
        });
    let base = postgres.rsplit_once('/').unwrap().0;
    Some(Backends {
        database_url: format!("{base}/{database}"),
        endpoint,
        bucket,
        admin: format!("depot_admin_{}", "k".repeat(8) + &suffix + &suffix),
    })
}
