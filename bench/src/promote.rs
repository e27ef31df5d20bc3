//! Promotion: `depot push` of a 5-layer image from our registry to one and to three CNCF
//! distribution registries, against three sequential `skopeo copy` runs to three. Each run
//! gets fresh destinations (nothing to skip or mount). The bytes our registry sent are read
//! from its `/proc/<pid>/io` (`wchar`, which counts `sendfile` too), independently of what the
//! CLI reports.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use reqwest::Client;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::servers::Registry;
use crate::workloads::{push_monolithic, put_manifest, Pattern};

pub struct Promotion {
    pub image_bytes: u64,
    pub one_secs: f64,
    pub three_secs: f64,
    pub skopeo_three_secs: f64,
    /// Bytes our registry sent during the three-destination push.
    pub source_bytes_sent: u64,
    /// What the CLI said it read.
    pub cli_bytes_read: u64,
    /// CPU seconds spent during the three-destination push: the destinations together, our
    /// registry, the CLI.
    pub cpu: (f64, f64, f64),
    /// The CLI's peak resident memory during the three-destination push.
    pub cli_peak_rss: u64,
}

/// CPU seconds of this process's waited-for children (`cutime` + `cstime`).
fn children_cpu() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok((f[13].parse::<f64>()? + f[14].parse::<f64>()?) / 100.0)
}

fn wchar(pid: u32) -> anyhow::Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .context("no wchar in /proc/<pid>/io")?
        .trim()
        .parse()
        .context("wchar")
}

/// Pushes the source image (`bench/app:v1`, `layers` × `layer_size` bytes) into `source`.
async fn source_image(
    c: &Client,
    source: &Registry,
    pattern: &Arc<Pattern>,
    layers: usize,
    layer_size: u64,
) -> anyhow::Result<u64> {
    let repo = "bench/app";
    let mut descs = Vec::new();
    let mut total = 0;
    for _ in 0..layers {
        let b = pattern.blob(layer_size);
        push_monolithic(c, &source.url, repo, &b).await?;
        total += b.size;
        descs.push(json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": b.digest, "size": b.size }));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": descs.iter().map(|d| d["digest"].clone()).collect::<Vec<_>>() },
    }))?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
    let r = c
        .post(format!(
            "{}/v2/{repo}/blobs/uploads/?digest={digest}",
            source.url
        ))
        .body(config.clone())
        .send()
        .await?;
    if r.status() != 201 {
        bail!("config upload: {}", r.status());
    }
    total += config.len() as u64;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": config.len() },
        "layers": descs,
    }))?;
    put_manifest(c, &source.url, repo, "v1", manifest).await?;
    Ok(total)
}

fn host(r: &Registry) -> &str {
    r.url.trim_start_matches("http://")
}

/// Runs `depot push` to `dests`; returns seconds and the CLI's summary.
fn depot_push(
    cli: &Path,
    source: &Registry,
    dests: &[Registry],
    home: &Path,
) -> anyhow::Result<(f64, u64, serde_json::Value)> {
    let mut cmd = Command::new(cli);
    cmd.env("DEPOT_REGISTRY", &source.url)
        .env("DEPOT_PROJECT_ID", "bench/app")
        .env_remove("DEPOT_TOKEN")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .args(["push", "--json", "--insecure"]);
    for d in dests {
        cmd.args(["-t", &format!("{}/app:v1", host(d))]);
    }
    cmd.arg("v1");
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", cli.display()))?;
    // The CLI's peak memory, read while it runs (the kernel keeps the high-water mark). Its
    // output is small (a JSON summary; progress is off), so the pipes cannot fill meanwhile.
    let mut peak_kib = 0u64;
    while child.try_wait()?.is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "depot push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((secs, peak_kib * 1024, serde_json::from_slice(&out.stdout)?))
}

fn destinations(work: &Path, run: &str) -> anyhow::Result<Vec<Registry>> {
    (0..3)
        .map(|i| Registry::distribution(&work.join(format!("{run}-{i}"))))
        .collect()
}

pub async fn measure(
    cli: &Path,
    depot_bin: &Path,
    work: &Path,
    c: &Client,
    pattern: &Arc<Pattern>,
    image_bytes: u64,
) -> anyhow::Result<Promotion> {
    let source = Registry::depot(depot_bin, &work.join("promote-source"))?;
    let layers = 5;
    let total = source_image(c, &source, pattern, layers, image_bytes / layers as u64).await?;
    let home = work.join("promote-home");

    let one = destinations(work, "promote-one")?;
    let (one_secs, _, _) = depot_push(cli, &source, &one[..1], &home)?;
    drop(one);

    let three = destinations(work, "promote-three")?;
    let before = wchar(source.pid())?;
    let cpu_before = (
        three
            .iter()
            .map(|d| d.cpu_seconds())
            .sum::<anyhow::Result<f64>>()?,
        source.cpu_seconds()?,
        children_cpu()?,
    );
    let (three_secs, cli_peak_rss, summary) = depot_push(cli, &source, &three, &home)?;
    let source_bytes_sent = wchar(source.pid())? - before;
    let cpu = (
        three
            .iter()
            .map(|d| d.cpu_seconds())
            .sum::<anyhow::Result<f64>>()?
            - cpu_before.0,
        source.cpu_seconds()? - cpu_before.1,
        children_cpu()? - cpu_before.2,
    );
    drop(three);

    let sequential = destinations(work, "promote-skopeo")?;
    let t = Instant::now();
    for d in &sequential {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{}/bench/app:v1", host(&source)),
                &format!("docker://{}/app:v1", host(d)),
            ])
            .output()
            .context("running skopeo (bash .ci/setup installs it)")?;
        if !out.status.success() {
            bail!(
                "skopeo copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let skopeo_three_secs = t.elapsed().as_secs_f64();
    Ok(Promotion {
        image_bytes: total,
        one_secs,
        three_secs,
        skopeo_three_secs,
        source_bytes_sent,
        cli_bytes_read: summary["source_bytes_read"].as_u64().unwrap_or_default(),
        cpu,
        cli_peak_rss,
    })
}
