//! `depot-bench`: runs the same workloads against the depot registry (release build, embedded
//! default) and the CNCF distribution registry 2.8 (filesystem driver) in one run, on loopback,
//! and prints both figures and their ratio, with this machine's ceilings measured alongside.
//!
//! Not a test: nothing here asserts. `--smoke` runs everything at 1/10 size.

mod ceilings;
mod gc;
mod promote;
mod s3_ceiling;
mod servers;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use reqwest::Client;

use servers::{Registry, S3Server};
use workloads::*;

#[derive(Debug, Parser)]
#[command(
    name = "depot-bench",
    about = "depot registry vs CNCF distribution 2.8, side by side"
)]
struct Cli {
    /// The depot-registry binary (a release build; give the path when CARGO_TARGET_DIR moves it).
    #[arg(long, default_value = "target/release/depot-registry")]
    depot: PathBuf,
    /// The depot CLI binary (a release build), for the promotion workload.
    #[arg(long, default_value = "target/release/depot")]
    cli: PathBuf,
    /// Run only the promotion workload (`depot push` to 1 and 3 registries vs skopeo).
    #[arg(long)]
    promotion_only: bool,
    /// Run only the garbage-collection workload (10,000 and 100,000 blobs, 1% garbage).
    #[arg(long)]
    gc_only: bool,
    /// Run every workload at 1/10 of its size.
    #[arg(long)]
    smoke: bool,
    /// Where the registries keep their data (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also run both registries on one real S3 server (s3s-fs) and count its requests.
    #[arg(long)]
    s3: bool,
}

const MIB: u64 = 1024 * 1024;

struct Row {
    name: String,
    unit: &'static str,
    depot: f64,
    distribution: f64,
    /// Whether a larger figure is better (throughput) or worse (time, memory).
    higher_is_better: bool,
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<46} {:>14} {:>14} {:>9}",
        "workload", "depot", "distribution", "ratio"
    );
    for r in rows {
        let ratio = if r.higher_is_better {
            r.depot / r.distribution
        } else {
            r.distribution / r.depot
        };
        println!(
            "{:<46} {:>14} {:>14} {:>8.2}x",
            format!("{} ({})", r.name, r.unit),
            fmt(r.depot),
            fmt(r.distribution),
            ratio
        );
    }
    println!("(ratio > 1 means depot is better: faster, or smaller)");
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

struct Figures {
    mono_mbps: f64,
    chunked_mbps: f64,
    pull_mbps: f64,
    small_blobs_per_s: f64,
    manifest_rps: f64,
    manifest_p99_ms: f64,
    tag_pages_per_s: f64,
    tags_per_page: f64,
    peak_rss_mib: f64,
    cpu_s_per_gib: f64,
    cpu_s_per_gib_chunked: f64,
    cpu_s_per_gib_pulled: f64,
    /// Server CPU seconds per 1,000 manifest GETs (the hot one, c=32).
    cpu_s_per_1000_gets: f64,
    /// Resident memory after start, before any request.
    idle_rss_mib: f64,
    ready_ms: f64,
    scale_push_s: Vec<f64>,
    manifest_rps_small: f64,
    manifest_rps_large: f64,
}

struct Sizes {
    big: u64,
    small_count: usize,
    tag_count: u64,
    wrk_seconds: u32,
    scale: [u64; 3],
    manifests_small: u64,
    manifests_large: u64,
}

/// Flushes dirty pages system-wide, so one workload's writeback does not slow the next one's
/// fsyncs (and the two registries start each workload from the same state).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

async fn measure(
    reg: &Registry,
    c: &Client,
    pattern: &Arc<Pattern>,
    sizes: &Sizes,
) -> anyhow::Result<Figures> {
    let base = reg.url.as_str();
    let idle_rss = reg.rss()?;
    settle();
    eprintln!("[{}] monolithic push of {} MiB", reg.name, sizes.big / MIB);
    let blob = pattern.blob(sizes.big);
    reg.reset_peak_rss()?;
    let cpu0 = reg.cpu_seconds()?;
    let t = Instant::now();
    push_monolithic(c, base, "bench/big", &blob).await?;
    let mono = t.elapsed().as_secs_f64();
    let cpu = reg.cpu_seconds()? - cpu0;
    let peak_rss = reg.peak_rss()?;

    settle();
    eprintln!("[{}] chunked push (16 MiB PATCHes)", reg.name);
    let chunked_blob = pattern.blob(sizes.big);
    let cpu0 = reg.cpu_seconds()?;
    let t = Instant::now();
    push_chunked(c, base, "bench/chunked", &chunked_blob, 16 * MIB).await?;
    let chunked = t.elapsed().as_secs_f64();
    let cpu_chunked = reg.cpu_seconds()? - cpu0;

    settle();
    eprintln!("[{}] pull", reg.name);
    // The client reads into one reused buffer: its own cost stays out of the figure (the
    // report says when it is the limit all the same).
    let cpu0 = reg.cpu_seconds()?;
    let t = Instant::now();
    let n = ceilings::raw_pull(&format!("{base}/v2/bench/big/blobs/{}", blob.digest)).await?;
    let pull_s = t.elapsed().as_secs_f64();
    let cpu_pull = reg.cpu_seconds()? - cpu0;
    anyhow::ensure!(n == blob.size, "pulled {n} bytes of {}", blob.size);

    settle();
    eprintln!(
        "[{}] {} pushes of 64 KiB at concurrency 16",
        reg.name, sizes.small_count
    );
    let small = many_pushes(c, base, pattern, sizes.small_count, 64 * 1024, 16).await?;

    settle();
    eprintln!("[{}] manifest GET by tag, 32 connections", reg.name);
    let layers = image_base(c, base, "bench/manifests", pattern).await?;
    put_manifests(
        c,
        base,
        "bench/manifests",
        &layers,
        0,
        sizes.manifests_small,
        false,
    )
    .await?;
    put_manifest(
        c,
        base,
        "bench/manifests",
        "hot",
        manifest(&layers.0, &layers.1, u64::MAX),
    )
    .await?;
    let url = format!("{base}/v2/bench/manifests/manifests/hot");
    let cpu0 = reg.cpu_seconds()?;
    let load_small = wrk(&url, 32, sizes.wrk_seconds)?;
    let cpu_gets = reg.cpu_seconds()? - cpu0;

    settle();
    eprintln!(
        "[{}] tags/list of {} tags by 100",
        reg.name, sizes.tag_count
    );
    let tag_layers = image_base(c, base, "bench/tags", pattern).await?;
    put_manifests(c, base, "bench/tags", &tag_layers, 0, sizes.tag_count, true).await?;
    let (pages, per_page) = tag_pages(c, base, "bench/tags", 100, Duration::from_secs(5)).await?;

    eprintln!(
        "[{}] scaling: push times and manifest GET with {} manifests",
        reg.name, sizes.manifests_large
    );
    let mut scale = Vec::new();
    for size in sizes.scale {
        let b = pattern.blob(size);
        settle();
        let t = Instant::now();
        push_monolithic(c, base, "bench/scale", &b).await?;
        scale.push(t.elapsed().as_secs_f64());
    }
    put_manifests(
        c,
        base,
        "bench/manifests",
        &layers,
        sizes.manifests_small,
        sizes.manifests_large,
        false,
    )
    .await?;
    let load_large = wrk(&url, 32, sizes.wrk_seconds)?;

    let mb = |bytes: u64, secs: f64| bytes as f64 / MIB as f64 / secs;
    let gib = sizes.big as f64 / (1024.0 * MIB as f64);
    Ok(Figures {
        cpu_s_per_gib_chunked: cpu_chunked / gib,
        cpu_s_per_gib_pulled: cpu_pull / gib,
        cpu_s_per_1000_gets: cpu_gets / load_small.requests.max(1.0) * 1000.0,
        idle_rss_mib: idle_rss as f64 / MIB as f64,
        ready_ms: reg.ready_after.as_secs_f64() * 1000.0,
        mono_mbps: mb(sizes.big, mono),
        chunked_mbps: mb(sizes.big, chunked),
        pull_mbps: mb(sizes.big, pull_s),
        small_blobs_per_s: small,
        manifest_rps: load_small.rps,
        manifest_p99_ms: load_small.p99_ms,
        tag_pages_per_s: pages,
        tags_per_page: per_page,
        peak_rss_mib: peak_rss as f64 / MIB as f64,
        cpu_s_per_gib: cpu / (sizes.big as f64 / (1024.0 * MIB as f64)),
        scale_push_s: scale,
        manifest_rps_small: load_small.rps,
        manifest_rps_large: load_large.rps,
    })
}

/// Blob workloads with S3 storage, and the S3 requests each pushed blob costs.
struct S3Figures {
    mono_mbps: f64,
    chunked_mbps: f64,
    pull_mbps: f64,
    small_blobs_per_s: f64,
    requests_per_small_blob: f64,
    requests_per_big_blob: f64,
}

async fn measure_s3(
    reg: &Registry,
    s3: &S3Server,
    c: &Client,
    pattern: &Arc<Pattern>,
    sizes: &Sizes,
) -> anyhow::Result<S3Figures> {
    let base = reg.url.as_str();
    let big = sizes.big / 4;
    eprintln!("[{} on S3] monolithic push of {} MiB", reg.name, big / MIB);
    let blob = pattern.blob(big);
    let before = s3.requests().await?;
    let t = Instant::now();
    push_monolithic(c, base, "bench/big", &blob).await?;
    let mono = t.elapsed().as_secs_f64();
    let big_requests = s3.requests().await? - before;

    eprintln!("[{} on S3] chunked push (16 MiB PATCHes)", reg.name);
    let chunked_blob = pattern.blob(big);
    let t = Instant::now();
    push_chunked(c, base, "bench/chunked", &chunked_blob, 16 * MIB).await?;
    let chunked = t.elapsed().as_secs_f64();

    eprintln!("[{} on S3] pull", reg.name);
    let t = Instant::now();
    let n = ceilings::raw_pull(&format!("{base}/v2/bench/big/blobs/{}", blob.digest)).await?;
    let pull_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(n == blob.size, "pulled {n} bytes of {}", blob.size);

    let count = sizes.small_count / 2;
    eprintln!(
        "[{} on S3] {count} pushes of 64 KiB at concurrency 16",
        reg.name
    );
    let before = s3.requests().await?;
    let small = many_pushes(c, base, pattern, count, 64 * 1024, 16).await?;
    let small_requests = s3.requests().await? - before;

    let mbps = |bytes: u64, secs: f64| bytes as f64 / MIB as f64 / secs;
    Ok(S3Figures {
        mono_mbps: mbps(big, mono),
        chunked_mbps: mbps(big, chunked),
        pull_mbps: mbps(big, pull_s),
        small_blobs_per_s: small,
        requests_per_small_blob: small_requests as f64 / count as f64,
        requests_per_big_blob: big_requests as f64,
    })
}

/// Whether a figure meets its goal, in the report's words.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets"
    } else {
        "misses"
    }
}

/// The S3 mode against the store's own rate (issue 21's targets: push and streamed pull at
/// least 80% of it).
fn print_s3_ceiling(
    ours: &S3Figures,
    theirs: &S3Figures,
    ceiling: &s3_ceiling::S3Ceiling,
    size: &str,
) {
    println!(
        "\nS3 mode against Garage's own rate ({size} objects through the AWS SDK, no registry)"
    );
    println!(
        "  Garage alone: PutObject {:.0} MiB/s, GetObject (streamed) {:.0} MiB/s",
        ceiling.put_mbps, ceiling.get_mbps
    );
    // One line per workload: both registries as a share of the store's own rate, and the
    // goal where the issue sets one.
    let line = |what: &str, ours: f64, theirs: f64, store: f64, op: &str, goal: Option<f64>| {
        let share = ours / store;
        let goal = goal.map_or(String::new(), |g| {
            format!(" [>= {:.0}%: {}]", 100.0 * g, verdict(share >= g))
        });
        println!(
            "  {what}: depot {ours:.0} MiB/s = {:.0}% of {op}{goal}; distribution {theirs:.0} MiB/s = {:.0}%",
            100.0 * share,
            100.0 * theirs / store
        );
    };
    let (put, get) = (ceiling.put_mbps, ceiling.get_mbps);
    line(
        "monolithic push",
        ours.mono_mbps,
        theirs.mono_mbps,
        put,
        "PutObject",
        Some(0.8),
    );
    line(
        "chunked push",
        ours.chunked_mbps,
        theirs.chunked_mbps,
        put,
        "PutObject",
        None,
    );
    line(
        "streamed pull",
        ours.pull_mbps,
        theirs.pull_mbps,
        get,
        "GetObject",
        Some(0.8),
    );
    println!("  (both registries stream: no redirects to the store)");
}

/// The hot manifest GET against a registry with token auth on: the admin token (from its data
/// directory) buys an access token at `/token`, sent on every request as a real client would.
async fn auth_cost(
    reg: &Registry,
    data: &std::path::Path,
    pattern: &Arc<Pattern>,
    sizes: &Sizes,
) -> anyhow::Result<Load> {
    let admin = std::fs::read_to_string(data.join("admin-token"))?;
    let token: serde_json::Value = Client::new()
        .get(format!("{}/token", reg.url))
        .query(&[
            ("service", "depot-registry"),
            ("scope", "repository:bench/manifests:pull,push"),
        ])
        .basic_auth("x-token", Some(admin.trim()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"]
        .as_str()
        .context("no token in /token answer")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    let c = Client::builder().default_headers(headers).build()?;
    let base = &reg.url;
    let layers = image_base(&c, base, "bench/manifests", pattern).await?;
    put_manifest(
        &c,
        base,
        "bench/manifests",
        "hot",
        manifest(&layers.0, &layers.1, u64::MAX),
    )
    .await?;
    settle();
    eprintln!("[depot, token auth] manifest GET by tag, 32 connections");
    wrk_with(
        &format!("{base}/v2/bench/manifests/manifests/hot"),
        32,
        sizes.wrk_seconds,
        &[format!("Authorization: Bearer {token}")],
    )
}

/// This machine's limits, measured in the same run as the registries.
struct Limits {
    sha_mbps: f64,
    disk_mbps: f64,
    /// What the pull client alone receives from a bare server sending from memory.
    receive_mbps: f64,
    /// A bare hyper server's 1 KiB answers under the manifest GET's wrk command.
    bare_rps: f64,
    /// depot's hot manifest GET with token auth on.
    authed_rps: f64,
}

/// Each figure against its limit and its peer, with the goal it is held to (issue 21).
fn print_limits(ours: &Figures, theirs: &Figures, l: &Limits) {
    println!("\nAgainst this machine's limits (same run; goals in brackets)");
    let write_limit = l.sha_mbps.min(l.disk_mbps);
    let mono = ours.mono_mbps / write_limit;
    let mono_vs = ours.mono_mbps / theirs.mono_mbps;
    println!(
        "  monolithic push: {:.0} MiB/s = {:.0}% of min(SHA-256 {:.0}, disk + fsync {:.0}) [>= 80%: {}], {:.2}x distribution [>= 4x: {}]",
        ours.mono_mbps, 100.0 * mono, l.sha_mbps, l.disk_mbps, verdict(mono >= 0.8), mono_vs, verdict(mono_vs >= 4.0)
    );
    let chunked = ours.chunked_mbps / ours.mono_mbps;
    let chunked_vs = ours.chunked_mbps / theirs.chunked_mbps;
    println!(
        "  chunked push: {:.0} MiB/s = {:.0}% of monolithic [>= 90%: {}], {:.2}x distribution [>= 4x: {}]",
        ours.chunked_mbps, 100.0 * chunked, verdict(chunked >= 0.9), chunked_vs, verdict(chunked_vs >= 4.0)
    );
    let fastest = ours.pull_mbps.max(theirs.pull_mbps);
    let client_bound = l.receive_mbps < 1.25 * fastest;
    let pull_vs = ours.pull_mbps / theirs.pull_mbps;
    println!(
        "  pull: {:.0} MiB/s vs distribution {:.0} = {:.2}x [>= 1.5x: {}]; the client alone receives {:.0} MiB/s{}",
        ours.pull_mbps, theirs.pull_mbps, pull_vs, verdict(pull_vs >= 1.5), l.receive_mbps,
        if client_bound { " (less than 1.25x the faster server: these pull figures are client-bound)" } else { " (not the limit)" }
    );
    let pull_cpu = ours.cpu_s_per_gib_pulled / theirs.cpu_s_per_gib_pulled;
    println!(
        "  server CPU per GiB pulled: {:.2} s vs distribution {:.2} s = {:.2}x [<= 0.5x: {}]",
        ours.cpu_s_per_gib_pulled,
        theirs.cpu_s_per_gib_pulled,
        pull_cpu,
        verdict(pull_cpu <= 0.5)
    );
    let sha_s_per_gib = 1024.0 / l.sha_mbps;
    let push_cpu = ours.cpu_s_per_gib / sha_s_per_gib;
    println!(
        "  server CPU per GiB pushed: {:.2} s monolithic, {:.2} s chunked (distribution {:.2} s, {:.2} s); SHA-256 of a GiB takes {:.2} s: {:.2}x [<= 1.5x: {}]",
        ours.cpu_s_per_gib, ours.cpu_s_per_gib_chunked, theirs.cpu_s_per_gib, theirs.cpu_s_per_gib_chunked,
        sha_s_per_gib, push_cpu, verdict(push_cpu <= 1.5)
    );
    let gets = l.authed_rps / l.bare_rps;
    println!(
        "  manifest GET by tag, token auth on: {:.0} req/s = {:.0}% of a bare hyper server's {:.0} req/s (1 KiB, same wrk) [>= 70%: {}]; without auth {:.0} req/s",
        l.authed_rps, 100.0 * gets, l.bare_rps, verdict(gets >= 0.7), ours.manifest_rps
    );
    println!(
        "  server CPU per 1,000 manifest GETs: {:.3} s vs distribution {:.3} s",
        ours.cpu_s_per_1000_gets, theirs.cpu_s_per_1000_gets
    );
    println!(
        "  peak RSS during the big push: {:.0} MiB [<= 64 MiB: {}] (distribution {:.0} MiB); idle RSS {:.1} MiB (distribution {:.1} MiB); start-up to ready {:.0} ms (distribution {:.0} ms to its first answer)",
        ours.peak_rss_mib, verdict(ours.peak_rss_mib <= 64.0), theirs.peak_rss_mib,
        ours.idle_rss_mib, theirs.idle_rss_mib, ours.ready_ms, theirs.ready_ms
    );
}

fn print_promotion(p: &promote::Promotion) {
    println!(
        "\nPromotion: a {} MiB, 5-layer image from depot to fresh distribution 2.8 registries",
        p.image_bytes / MIB
    );
    println!("  depot push to 1 destination:   {:>7.2} s", p.one_secs);
    println!(
        "  depot push to 3 destinations:  {:>7.2} s  ({:.2}x the time of one; goal <= 1.3x)",
        p.three_secs,
        p.three_secs / p.one_secs
    );
    println!(
        "  3 sequential skopeo copy runs: {:>7.2} s  (depot push to 3 takes {:.2}x of it; goal <= 0.5x)",
        p.skopeo_three_secs,
        p.three_secs / p.skopeo_three_secs
    );
    println!(
        "  bytes our registry sent during the 3-destination push: {:.2}x the image ({} MiB; the CLI counted {} MiB read)",
        p.source_bytes_sent as f64 / p.image_bytes as f64,
        p.source_bytes_sent / MIB,
        p.cli_bytes_read / MIB
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "  CPU during the 3-destination push: destinations {:.1} s, depot registry {:.1} s, CLI {:.1} s ({:.1} s of wall time on {} cores)",
        p.cpu.0, p.cpu.1, p.cpu.2, p.three_secs, cores
    );
    let floor = (p.cpu.0 + p.cpu.1 + p.cpu.2) / cores as f64;
    println!(
        "  that CPU spread over every core takes {floor:.1} s: the 3-destination push ran at {:.0}% of this machine's floor",
        100.0 * floor / p.three_secs
    );
    println!(
        "  CLI peak memory during the 3-destination push: {} MiB",
        p.cli_peak_rss / MIB
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let div = if cli.smoke { 10 } else { 1 };
    let sizes = Sizes {
        big: 1024 * MIB / div,
        small_count: 1000 / div as usize,
        tag_count: 10_000 / div,
        wrk_seconds: if cli.smoke { 3 } else { 10 },
        scale: [64 * MIB / div, 256 * MIB / div, 1024 * MIB / div],
        manifests_small: 1_000 / div,
        manifests_large: 100_000 / div,
    };
    let tmp = tempfile::tempdir()?;
    let work = cli
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_owned());
    let client = Client::builder().pool_max_idle_per_host(64).build()?;
    let pattern = Arc::new(Pattern::new(64 * MIB as usize));

    println!(
        "depot-bench{}: loopback, {} cores",
        if cli.smoke {
            " --smoke (1/10 size)"
        } else {
            ""
        },
        std::thread::available_parallelism()?
    );
    let gc_sizes = (10_000 / div as usize, 100_000 / div as usize);
    if cli.gc_only {
        let small = gc::measure(&work, gc_sizes.0, gc_sizes.0 / 100).await?;
        let large = gc::measure(&work, gc_sizes.1, gc_sizes.1 / 100).await?;
        let same = gc::measure(&work, gc_sizes.1, gc_sizes.0 / 100).await?;
        gc::print(&small, &large, &same);
        return Ok(());
    }
    if cli.promotion_only {
        let p = promote::measure(&cli.cli, &cli.depot, &work, &client, &pattern, sizes.big).await?;
        print_promotion(&p);
        return Ok(());
    }
    let sha = sha256_ceiling(&pattern, sizes.big);
    let loopback = loopback_ceiling(&client, &pattern.blob(sizes.big)).await?;
    let disk = disk_ceiling(&pattern, &work, sizes.big)?;
    let receive = ceilings::client_receive_ceiling(&pattern, sizes.big).await?;
    eprintln!("[bare hyper] a fixed 1 KiB body, the manifest GET's wrk command");
    let bare = ceilings::small_request_ceiling(32, sizes.wrk_seconds)?;

    let depot = Registry::depot(&cli.depot, &work.join("depot"))?;
    let ours = measure(&depot, &client, &pattern, &sizes).await?;
    drop(depot);
    let distribution = Registry::distribution(&work.join("distribution"))?;
    let theirs = measure(&distribution, &client, &pattern, &sizes).await?;
    drop(distribution);
    let s3_figures = if cli.s3 {
        let s3 = S3Server::start(&work.join("s3"), &["depot", "distribution", "ceiling"])?;
        let reg = Registry::depot_s3(&cli.depot, &work.join("depot-s3"), &s3.endpoint, "depot")?;
        let ours = measure_s3(&reg, &s3, &client, &pattern, &sizes).await?;
        drop(reg);
        let reg =
            Registry::distribution_s3(&work.join("distribution-s3"), &s3.endpoint, "distribution")?;
        let theirs = measure_s3(&reg, &s3, &client, &pattern, &sizes).await?;
        drop(reg);
        // Last: the ceiling's deleted objects leave Garage collecting their blocks in the
        // background, which slowed the first registry's pull to half when measured first.
        eprintln!("[garage] its own PutObject and GetObject rate, no registry");
        let ceiling =
            s3_ceiling::measure(&s3.endpoint, "ceiling", &pattern.blob(sizes.big / 4)).await?;
        Some((ours, theirs, ceiling))
    } else {
        None
    };
    let promotion =
        promote::measure(&cli.cli, &cli.depot, &work, &client, &pattern, sizes.big).await?;
    let authed = Registry::depot_with_auth(&cli.depot, &work.join("depot-auth"))?;
    let with_auth = auth_cost(&authed, &work.join("depot-auth"), &pattern, &sizes).await?;
    drop(authed);

    let big = format!("{} MiB", sizes.big / MIB);
    let row = |name: String, unit, d: f64, r: f64, hib| Row {
        name,
        unit,
        depot: d,
        distribution: r,
        higher_is_better: hib,
    };
    print_table(
        "Throughput and footprint",
        &[
            row(
                format!("push {big}, monolithic"),
                "MiB/s",
                ours.mono_mbps,
                theirs.mono_mbps,
                true,
            ),
            row(
                format!("push {big}, 16 MiB chunks"),
                "MiB/s",
                ours.chunked_mbps,
                theirs.chunked_mbps,
                true,
            ),
            row(
                format!("pull {big}"),
                "MiB/s",
                ours.pull_mbps,
                theirs.pull_mbps,
                true,
            ),
            row(
                format!("{} pushes of 64 KiB, c=16", sizes.small_count),
                "blobs/s",
                ours.small_blobs_per_s,
                theirs.small_blobs_per_s,
                true,
            ),
            row(
                "manifest GET by tag, c=32".into(),
                "req/s",
                ours.manifest_rps,
                theirs.manifest_rps,
                true,
            ),
            row(
                "manifest GET by tag, c=32, p99".into(),
                "ms",
                ours.manifest_p99_ms,
                theirs.manifest_p99_ms,
                false,
            ),
            row(
                format!("tags/list of {} tags, n=100", sizes.tag_count),
                "pages/s",
                ours.tag_pages_per_s,
                theirs.tag_pages_per_s,
                true,
            ),
            row(
                format!("peak RSS during {big} push"),
                "MiB",
                ours.peak_rss_mib,
                theirs.peak_rss_mib,
                false,
            ),
            row(
                "server CPU per GiB pushed".into(),
                "s",
                ours.cpu_s_per_gib,
                theirs.cpu_s_per_gib,
                false,
            ),
        ],
    );
    println!(
        "tags per page: depot {:.0}, distribution {:.0} (a registry that ignores n returns every tag in one page)",
        ours.tags_per_page, theirs.tags_per_page
    );

    let mut scale_rows: Vec<Row> = sizes
        .scale
        .iter()
        .enumerate()
        .map(|(i, s)| {
            row(
                format!("push {} MiB, monolithic", s / MIB),
                "s",
                ours.scale_push_s[i],
                theirs.scale_push_s[i],
                false,
            )
        })
        .collect();
    scale_rows.push(row(
        format!("manifest GET, {} manifests", sizes.manifests_small),
        "req/s",
        ours.manifest_rps_small,
        theirs.manifest_rps_small,
        true,
    ));
    scale_rows.push(row(
        format!("manifest GET, {} manifests", sizes.manifests_large),
        "req/s",
        ours.manifest_rps_large,
        theirs.manifest_rps_large,
        true,
    ));
    print_table("How cost grows", &scale_rows);

    if let Some((ours, theirs, ceiling)) = &s3_figures {
        let quarter = format!("{} MiB", sizes.big / 4 / MIB);
        let rows = vec![
            row(
                format!("push {quarter}, monolithic"),
                "MiB/s",
                ours.mono_mbps,
                theirs.mono_mbps,
                true,
            ),
            row(
                format!("push {quarter}, 16 MiB chunks"),
                "MiB/s",
                ours.chunked_mbps,
                theirs.chunked_mbps,
                true,
            ),
            row(
                format!("pull {quarter}"),
                "MiB/s",
                ours.pull_mbps,
                theirs.pull_mbps,
                true,
            ),
            row(
                format!("{} pushes of 64 KiB, c=16", sizes.small_count / 2),
                "blobs/s",
                ours.small_blobs_per_s,
                theirs.small_blobs_per_s,
                true,
            ),
            row(
                "S3 requests per 64 KiB blob pushed".into(),
                "requests",
                ours.requests_per_small_blob,
                theirs.requests_per_small_blob,
                false,
            ),
            row(
                format!("S3 requests for the {quarter} push"),
                "requests",
                ours.requests_per_big_blob,
                theirs.requests_per_big_blob,
                false,
            ),
        ];
        print_table(
            "S3 mode: both registries on one Garage server (loopback)",
            &rows,
        );
        print_s3_ceiling(ours, theirs, ceiling, &quarter);
    }

    println!("\nCost of token authentication (depot, the same hot manifest GET, c=32)");
    println!(
        "  --no-auth: {:.0} req/s; token auth (Bearer JWT on every request): {:.0} req/s, p99 {:.2} ms ({:.2}x)",
        ours.manifest_rps_small,
        with_auth.rps,
        with_auth.p99_ms,
        with_auth.rps / ours.manifest_rps_small
    );

    print_promotion(&promotion);
    let gc_small = gc::measure(&work, gc_sizes.0, gc_sizes.0 / 100).await?;
    let gc_large = gc::measure(&work, gc_sizes.1, gc_sizes.1 / 100).await?;
    let gc_same = gc::measure(&work, gc_sizes.1, gc_sizes.0 / 100).await?;
    gc::print(&gc_small, &gc_large, &gc_same);

    let limits = Limits {
        sha_mbps: sha / MIB as f64,
        disk_mbps: disk / MIB as f64,
        receive_mbps: receive / MIB as f64,
        bare_rps: bare.rps,
        authed_rps: with_auth.rps,
    };
    print_limits(&ours, &theirs, &limits);

    let sha_mbps = sha / MIB as f64;
    println!("\nCeilings measured in this run");
    println!(
        "  single-core SHA-256: {sha_mbps:.0} MiB/s; depot monolithic push reaches {:.0}% of it",
        100.0 * ours.mono_mbps / sha_mbps
    );
    println!(
        "  client loopback copy rate: {:.0} MiB/s",
        loopback / MIB as f64
    );
    println!(
        "  disk write + fsync of {big}: {:.0} MiB/s; monolithic push reaches {:.0}% of it (depot), {:.0}% (distribution)",
        disk / MIB as f64,
        100.0 * ours.mono_mbps * MIB as f64 / disk,
        100.0 * theirs.mono_mbps * MIB as f64 / disk
    );
    Ok(())
}
