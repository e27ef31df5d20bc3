//! The cost of each operation in SQL statements and S3 requests (docs/scaling.md).

use std::collections::BTreeMap;
use std::time::Duration;

use depot_testkit::oci::OCI_MANIFEST;
use depot_testkit::{random_bytes, sha256, ApiClient, Server};
use serde_json::json;

use crate::images::write_layout;
use crate::world::{http, serial, skopeo, World, ADMIN};

/// Statements the registry's sessions ran on its database, and S3 requests by endpoint, since
/// the last [`Costs::reset`].
struct Costs<'a> {
    world: &'a World,
    s3: BTreeMap<String, u64>,
}

impl<'a> Costs<'a> {
    fn new(world: &'a World) -> Self {
        world.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        let mut c = Costs {
            world,
            s3: BTreeMap::new(),
        };
        c.reset();
        c
    }

    fn reset(&mut self) {
        self.world.sql("SELECT pg_stat_statements_reset()");
        self.s3 = self.world.garage.s3_requests();
    }

    /// (statements, S3 requests, the S3 requests by endpoint), then resets.
    fn take(&mut self) -> (i64, u64, String) {
        use sqlx::Row;
        // Statistics reach the view when a statement ends: the last ones are in.
        let rows = self.world.sql(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'depot'",
        );
        let statements: i64 = rows[0].get(0);
        // Where they went, most frequent first (printed: docs/scaling.md reads from it).
        let top = self.world.sql(
            "SELECT s.calls::bigint, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = 'depot' ORDER BY s.calls DESC LIMIT 8",
        );
        for r in &top {
            eprintln!("    {:>4}  {}", r.get::<i64, _>(0), r.get::<String, _>(1));
        }
        let now = self.world.garage.s3_requests();
        let mut by = Vec::new();
        let mut total = 0;
        for (k, v) in &now {
            let d = v - self.s3.get(k).copied().unwrap_or(0);
            if d > 0 {
                total += d;
                by.push(format!("{k} {d}"));
            }
        }
        self.reset();
        (statements, total, by.join(", "))
    }
}

#[test]
fn the_cost_of_each_operation_in_statements_and_s3_requests() {
    let _serial = serial();
    let world = World::start(
        &["--gc-interval", "0"],
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
    );
    let urls: Vec<String> = world.replicas.iter().map(Server::url).collect();
    let hosts: Vec<String> = world.replicas.iter().map(Server::host).collect();
    let admin = ApiClient::new(&urls[0], ADMIN);
    let project = admin.create_project("cost").id;
    let token = admin.create_token(&project, "ci").token.unwrap();
    let ci = ApiClient::new(&urls[0], &token);
    // Five layers, one of them larger than an S3 part (16 MiB): a multipart upload.
    let layers: Vec<Vec<u8>> = [1 << 20, 2 << 20, 3 << 20, 4 << 20, 20 << 20]
        .iter()
        .map(|&n| random_bytes(n))
        .collect();
    let layout = world.dir.path().join("layout");
    write_layout(&layout, &layers);
    let src = format!("oci:{}:latest", layout.display());
    let http = http();
    let mut costs = Costs::new(&world);
    let mut rows: Vec<(String, i64, u64, String)> = Vec::new();
    let mut record = |what: &str, costs: &mut Costs| {
        let (statements, s3, by) = costs.take();
        rows.push((what.to_owned(), statements, s3, by));
    };

    let build = |retention: Option<i64>| {
        let spec = depot_api_types::CreateBuild {
            retention_secs: retention,
            ..serde_json::from_value(json!({})).unwrap()
        };
        ci.create_build(&project, &spec)
    };
    let digest_file = world.dir.path().join("pushed.digest");
    let push = |host: &str, b: &depot_api_types::Build| -> String {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            &format!("x-token:{}", b.push_token.as_deref().unwrap()),
            "--digestfile",
            digest_file.to_str().unwrap(),
            &src,
            &format!("docker://{host}/{project}:{}", b.id),
        ])
        .unwrap();
        std::fs::read_to_string(&digest_file).unwrap()
    };
    let first = build(None);
    costs.reset();
    let pushed = push(&hosts[0], &first);
    record(
        "push of a 5-layer image (30 MiB), first time (skopeo, token included)",
        &mut costs,
    );
    let second = build(None);
    costs.reset();
    push(&hosts[1], &second);
    record("push of the same layers from another build", &mut costs);
    let pull_out = world.dir.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &format!("x-token:{token}"),
        &format!("docker://{}/{project}:{}", hosts[2], first.id),
        &format!("oci:{}:x", pull_out.display()),
    ])
    .unwrap();
    record(
        "pull of the image (skopeo, token included; replica had not served it)",
        &mut costs,
    );
    let bearer = depot_testkit::api::access_token(
        &http,
        &urls[1],
        &token,
        &format!("repository:{project}:pull"),
    );
    costs.reset();
    let get_manifest = |url: &str| {
        let r = http
            .get(format!("{url}/v2/{project}/manifests/{}", first.id))
            .header("accept", OCI_MANIFEST)
            .bearer_auth(&bearer)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(sha256(&r.bytes().unwrap()), pushed);
    };
    get_manifest(&urls[1]);
    record(
        "manifest GET by tag, cold (first on this replica)",
        &mut costs,
    );
    get_manifest(&urls[1]);
    record("manifest GET by tag, hot", &mut costs);
    // One expired build of its own layers, collected by `depot-gc run --once`.
    let gc_layout = world.dir.path().join("gc-layout");
    let gc_layers: Vec<Vec<u8>> = (0..5).map(|_| random_bytes(256 << 10)).collect();
    write_layout(&gc_layout, &gc_layers);
    let doomed = build(Some(1));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        "--dest-creds",
        &format!("x-token:{}", doomed.push_token.as_deref().unwrap()),
        &format!("oci:{}:latest", gc_layout.display()),
        &format!("docker://{}/{project}:{}", hosts[0], doomed.id),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    costs.reset();
    let out = world.depot_gc(&["--gc-grace", "0", "run", "--once"]);
    record(
        "collection of one expired build (5 blobs of its own; depot-gc run --once)",
        &mut costs,
    );
    assert!(out.contains("collection"), "{out}");

    {
        use sqlx::Row;
        let conns = world.sql(
            "SELECT application_name || ' ' || count(*) FROM pg_stat_activity \
             WHERE datname = 'depot' GROUP BY application_name ORDER BY 1",
        );
        let conns: Vec<String> = conns.iter().map(|r| r.get(0)).collect();
        eprintln!("database connections open afterwards, per process: {conns:?}");
    }
    eprintln!("cost per operation (statements on PostgreSQL, S3 requests on Garage):");
    eprintln!("| operation | SQL statements | S3 requests | S3 requests by operation |");
    eprintln!("|---|---:|---:|---|");
    for (what, statements, s3, by) in &rows {
        eprintln!("| {what} | {statements} | {s3} | {by} |");
    }
    let hot = &rows[4];
    assert_eq!(
        (hot.1, hot.2),
        (0, 0),
        "a hot manifest GET costs nothing: {hot:?}"
    );
    let cold = &rows[3];
    assert_eq!(cold.2, 0, "a manifest GET never touches S3: {cold:?}");
    let repush = &rows[1];
    assert!(
        !repush.3.contains("PutObject") && !repush.3.contains("UploadPart"),
        "a re-push stores nothing: {repush:?}"
    );
    assert!(
        rows[5].3.contains("DeleteObjects"),
        "the collection deleted: {:?}",
        rows[5]
    );
}
