//! The S3 mode's ceiling: what the object store itself sustains for an object of the size the
//! registries push, with no registry in between. One `PutObject` of the whole object and one
//! streamed `GetObject` through the same AWS SDK client the registry builds
//! ([`depot_store::storage::s3_client`]: same timeouts, same checksum defaults), so the
//! registry's push and pull can be read as a fraction of what the store allows.

use std::time::Instant;

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};
use depot_store::storage::{s3_client, S3Options};

use crate::servers::{S3_ACCESS_KEY, S3_SECRET_KEY};
use crate::workloads::Blob;

/// Garage's own rates, MiB/s (best of two each: the ceiling, not its noise).
pub struct S3Ceiling {
    pub put_mbps: f64,
    pub get_mbps: f64,
}

/// Puts `blob` into `bucket` at `endpoint` whole, then reads it back streamed (bytes counted
/// and dropped, as a pull's socket would take them), twice each.
pub async fn measure(endpoint: &str, bucket: &str, blob: &Blob) -> anyhow::Result<S3Ceiling> {
    let client = s3_client(&S3Options {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        force_path_style: true,
    })
    .await;
    // The bench's own key, given to the client rather than through the process environment.
    let config = client
        .config()
        .to_builder()
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
            None,
            None,
            "depot-bench",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    // The object in memory: the client's reading of it is not what is measured.
    let mut whole = BytesMut::with_capacity(blob.size as usize);
    for frame in blob.frames() {
        whole.extend_from_slice(&frame);
    }
    let whole: Bytes = whole.freeze();
    let mbps = |bytes: u64, secs: f64| bytes as f64 / (1024.0 * 1024.0) / secs;
    let (mut put, mut get) = (0f64, 0f64);
    for attempt in 0..2 {
        let key = format!("ceiling/{attempt}");
        let t = Instant::now();
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(whole.clone()))
            .send()
            .await
            .context("PutObject to the S3 server")?;
        put = put.max(mbps(blob.size, t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let mut body = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .context("GetObject from the S3 server")?
            .body;
        let mut received = 0u64;
        while let Some(chunk) = body.try_next().await? {
            received += chunk.len() as u64;
        }
        anyhow::ensure!(
            received == blob.size,
            "read {received} of {} bytes",
            blob.size
        );
        get = get.max(mbps(blob.size, t.elapsed().as_secs_f64()));
        client
            .delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await?;
    }
    Ok(S3Ceiling {
        put_mbps: put,
        get_mbps: get,
    })
}
