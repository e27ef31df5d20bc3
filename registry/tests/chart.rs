//! The Helm chart (`charts/depot-registry/`), proven as far as a machine without a cluster can:
//! `helm lint --strict` of the chart and of every values file in its `ci/` folder; each of those
//! renderings checked against the Kubernetes OpenAPI schemas in strict mode
//! (`kubernetes-validate`); values that cannot work refused at install with a reason; the
//! README's values table in step with `values.yaml`; and the production rendering's Deployment
//! run as processes: exactly its container's arguments and environment, its Secrets (the ones
//! an operator creates beside it) and volumes resolved into files, against a real PostgreSQL and
//! S3 server, until its readiness probe's path answers; an image pushed and pulled through it;
//! SIGTERM turns the probe 503 before a clean exit. The GC CronJob's container runs the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use depot_testkit::oci::{image_manifest, push_blob, put_manifest};
use depot_testkit::registry::{registry_bin, workspace_bin};
use depot_testkit::{random_bytes, sha256};
use serde_json::{json, Value};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/depot-registry")
}

/// Runs `helm` (installed by `.ci/setup`) and returns (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("helm")
        .args(args)
        .output()
        .expect("helm is not installed (bash .ci/setup installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `ci/` values files, the chart-testing convention.
fn ci_values() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

/// `helm template` of the chart with these arguments: its documents.
fn render(args: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut all = vec!["template", "release", chart.to_str().unwrap()];
    all.extend(args);
    let (ok, out, err) = helm(&all);
    assert!(ok, "helm template {args:?}: {err}");
    serde_norway::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

#[test]
fn lints_strictly_with_every_ci_values_file() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let (ok, out, err) = helm(&["lint", "--strict", chart]);
    assert!(ok, "{out}{err}");
    for values in ci_values() {
        let (ok, out, err) = helm(&["lint", "--strict", chart, "-f", values.to_str().unwrap()]);
        assert!(ok, "{}: {out}{err}", values.display());
    }
}

#[test]
fn every_ci_rendering_passes_the_kubernetes_schemas_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let chart = chart();
    for values in ci_values() {
        let name = values.file_stem().unwrap().to_str().unwrap().to_owned();
        let (ok, out, err) = helm(&[
            "template",
            "release",
            chart.to_str().unwrap(),
            "-f",
            values.to_str().unwrap(),
            "--kube-version",
            "1.33.0",
        ]);
        assert!(ok, "{name}: {err}");
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &out).unwrap();
        let check = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", "1.33.0"])
            .arg(&file)
            .output()
            .expect("kubernetes-validate is not installed (bash .ci/setup installs it)");
        let said = String::from_utf8_lossy(&check.stdout).into_owned()
            + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success(), "{name}: {said}");
        // Only the Prometheus Operator's ServiceMonitor (a custom resource) has no schema there.
        for line in said.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.contains("kind ServiceMonitor"),
                "{name}: unexpected: {line}"
            );
        }
    }
}

#[test]
fn the_renderings_have_what_each_values_file_asks_for() {
    let ci = chart().join("ci");
    let with = |file: &str| {
        let path = ci.join(file);
        render(&["-f", path.to_str().unwrap(), "--kube-version", "1.33.0"])
    };
    let kinds = |docs: &[Value]| -> Vec<String> {
        let mut k: Vec<String> = docs
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect();
        k.sort();
        k
    };

    let embedded = with("embedded-values.yaml");
    assert!(find(&embedded, "PersistentVolumeClaim").is_some());
    let deployment = find(&embedded, "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(find(&embedded, "PodDisruptionBudget").is_none());

    let production = with("production-values.yaml");
    assert_eq!(
        kinds(&production),
        [
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ],
        "existing secrets only: the chart makes none"
    );
    let pod = &find(&production, "Deployment").unwrap()["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // Secure defaults.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    // Keyless CI: the issuers the values replace, in the form --oidc-issuer's variable takes.
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env("DEPOT_OIDC_ISSUERS"),
        Some(json!(
            "github=https://ghe.example.com/_services/token,gitlab=https://gitlab.example.com"
        ))
    );
    assert_eq!(
        env("DEPOT_OIDC_AUDIENCE"),
        None,
        "the public URL is the audience"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["lifecycle"]["preStop"]["sleep"]["seconds"], 10);
    // The termination grace period covers the pause, the delay and the grace.
    assert_eq!(pod["terminationGracePeriodSeconds"], 10 + 3 + 30 + 10);
    assert!(pod["topologySpreadConstraints"].is_array());

    let ingress = with("ingress-tls-values.yaml");
    for kind in ["Ingress", "NetworkPolicy", "Secret"] {
        assert!(find(&ingress, kind).is_some(), "no {kind}");
    }
    let secrets: Vec<&Value> = ingress.iter().filter(|d| d["kind"] == "Secret").collect();
    assert_eq!(
        secrets.len(),
        3,
        "auth, database and S3 secrets from values"
    );

    let scaled = with("autoscaling-values.yaml");
    for kind in [
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        assert!(find(&scaled, kind).is_some(), "no {kind}");
    }
    let deployment = find(&scaled, "Deployment").unwrap();
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the autoscaler owns the replica count"
    );
    let probe = &deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["scheme"], "HTTPS");

    let cron = with("cronjob-gc-values.yaml");
    let job = find(&cron, "CronJob").unwrap();
    let gc = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(gc["command"], json!(["/usr/local/bin/depot-gc"]));
    assert_eq!(gc["args"], json!(["run", "--once"]));
    let env =
        &find(&cron, "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0]["env"];
    let interval = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DEPOT_GC_INTERVAL")
        .unwrap();
    assert_eq!(interval["value"], "0", "the servers do not collect as well");
}

#[test]
fn values_that_cannot_work_are_refused_with_a_reason() {
    let chart = chart();
    let ci = chart.join("ci");
    let embedded = ci.join("embedded-values.yaml");
    let production = ci.join("production-values.yaml");
    let refused = |args: &[&str], expected: &str| {
        let mut all = vec!["template", "release", chart.to_str().unwrap()];
        all.extend(args);
        let (ok, _, err) = helm(&all);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    let e = embedded.to_str().unwrap();
    let p = production.to_str().unwrap();
    refused(
        &["-f", e, "--set", "replicaCount=2"],
        "replicaCount must be 1",
    );
    refused(
        &["-f", e, "--set", "autoscaling.enabled=true"],
        "autoscaling.enabled needs mode production",
    );
    refused(&["-f", e, "--set", "gc.mode=cronjob"], "gc.mode cronjob");
    refused(&[], "mode production needs PostgreSQL");
    refused(&["-f", p, "--set", "storage.url=file:/data"], "storage/url");
    // The schema: wrong types, unknown keys, values out of their set.
    refused(&["-f", p, "--set", "replicaCount=two"], "replicaCount");
    refused(&["-f", p, "--set", "replicas=3"], "replicas");
    refused(&["-f", p, "--set", "gc.mode=sometimes"], "gc/mode");
    refused(
        &["-f", p, "--set", "auth.adminToken=hunter2"],
        "auth/adminToken",
    );
}

/// The rows of the README's values table, from the `# --` comments of `values.yaml`.
fn values_rows() -> Vec<String> {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let mut rows = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if let Some(help) = trimmed.strip_prefix("# -- ") {
            pending = Some(help.to_owned());
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        path.push((indent, key.to_owned()));
        if let Some(help) = pending.take() {
            let name = path
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".");
            let default = match rest.trim() {
                "" => "see values.yaml".to_owned(),
                v => format!("`{v}`"),
            };
            rows.push(format!("| `{name}` | {default} | {help} |"));
        }
    }
    rows
}

#[test]
fn the_readme_values_table_matches_values_yaml() {
    let rows = values_rows();
    assert!(rows.len() > 60, "{}", rows.len());
    depot_testkit::readme::assert_lists(
        "chart values",
        "| value | default | meaning |\n| --- | --- | --- |",
        &rows,
    );
}

/// A container of a rendering, made runnable here: its environment with every `secretKeyRef`
/// resolved from `secrets`, and every volume it mounts made a directory under `root` (secret
/// volumes filled from `secrets` as the kubelet would), paths in its environment moved there.
struct Runnable {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

fn runnable(
    pod: &Value,
    container: &Value,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    root: &Path,
) -> Runnable {
    // Volumes: mount path → a directory here.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let mount = m["mountPath"].as_str().unwrap().to_owned();
        let here = root.join(name);
        std::fs::create_dir_all(&here).unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} is mounted but not defined"));
        if let Some(secret) = volume.get("secret") {
            let data = &secrets[secret["secretName"].as_str().unwrap()];
            match secret.get("items").and_then(Value::as_array) {
                Some(items) => {
                    for item in items {
                        let key = item["key"].as_str().unwrap();
                        let value = data
                            .get(key)
                            .unwrap_or_else(|| panic!("secret has no key {key}"));
                        std::fs::write(here.join(item["path"].as_str().unwrap()), value).unwrap();
                    }
                }
                None => {
                    for (key, value) in data {
                        std::fs::write(here.join(key), value).unwrap();
                    }
                }
            }
        }
        mounts.push((mount, here));
    }
    let moved = |value: &str| -> String {
        for (mount, here) in &mounts {
            if let Some(rest) = value.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", here.display());
            }
        }
        value.to_owned()
    };
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            moved(v)
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            secrets[r["name"].as_str().unwrap()][r["key"].as_str().unwrap()].clone()
        };
        env.insert(name, value);
    }
    // The image's ENTRYPOINT, unless the container names its command.
    let (program, mut args): (PathBuf, Vec<String>) = match container["command"].as_array() {
        Some(cmd) => {
            let first = cmd[0].as_str().unwrap();
            let name = Path::new(first).file_name().unwrap().to_str().unwrap();
            let rest = cmd[1..]
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            (workspace_bin(name), rest)
        }
        None => (registry_bin(), Vec::new()),
    };
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| moved(a.as_str().unwrap())),
    );
    Runnable { program, args, env }
}

/// A child process killed (and reaped) if the test ends before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Runnable {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).env_clear().envs(&self.env);
        c
    }
}

/// The address after `marker` in the child's log (stdout), within 60 s.
fn address_in(log: &Path, marker: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split(marker).nth(1) {
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return addr;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no {marker:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_production_deployment_runs_as_rendered_against_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("chart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The operator's Secrets, as production-values.yaml names them (created beside the chart).
    let signing_key = dir.path().join("signing.pem");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&signing_key)
        .status()
        .unwrap();
    assert!(made.success());
    let secrets: BTreeMap<String, BTreeMap<String, String>> = [
        ("depot-database", vec![("url", b.database_url.clone())]),
        (
            "depot-s3",
            vec![
                (
                    "AWS_ACCESS_KEY_ID",
                    std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
                ),
            ],
        ),
        (
            "depot-auth",
            vec![
                ("admin-token", b.admin.clone()),
                (
                    "signing-key.pem",
                    std::fs::read_to_string(&signing_key).unwrap(),
                ),
            ],
        ),
    ]
    .into_iter()
    .map(|(name, data)| {
        (
            name.to_owned(),
            data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        )
    })
    .collect();
    // The production values, pointed at this machine's PostgreSQL and S3 servers.
    let values = chart().join("ci/production-values.yaml");
    let storage = format!("storage.url=s3://{}/registry", b.bucket);
    let endpoint = format!("storage.s3.endpoint={}", b.endpoint);
    let docs = render(&[
        "-f",
        values.to_str().unwrap(),
        "--set",
        &storage,
        "--set",
        &endpoint,
        "--set",
        "auth.publicUrl=",
    ]);
    let pod = &find(&docs, "Deployment").unwrap()["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mut run = runnable(pod, container, &secrets, &dir.path().join("pod"));
    // The one change: a pod has its own network; here the ports are chosen by the kernel.
    assert_eq!(run.env["DEPOT_LISTEN"], "0.0.0.0:5000");
    run.env.insert("DEPOT_LISTEN".into(), "127.0.0.1:0".into());
    run.env
        .insert("DEPOT_METRICS_LISTEN".into(), "127.0.0.1:0".into());
    let log = dir.path().join("registry.log");
    let mut child = Reaped(
        run.command()
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("registry.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let addr = address_in(&log, "listening on http://");
    let url = format!("http://{addr}");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // The readiness probe's path, as the kubelet would ask it.
    let probe = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap();
    let started = Instant::now();
    loop {
        if http
            .get(format!("{url}{probe}"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never ready: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with('{')),
        "logFormat json: {text}"
    );

    // An image pushed and pulled through it, with the admin token from the operator's Secret.
    let token =
        depot_testkit::api::access_token(&http, &url, &b.admin, "repository:team/app:push,pull");
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = random_bytes(200_000);
    push_blob(&http, &url, "team/app", Some(&token), &config);
    push_blob(&http, &url, "team/app", Some(&token), &layer);
    let manifest = image_manifest(&config, &[&layer]);
    let put = put_manifest(&http, &url, "team/app", "v1", Some(&token), &manifest);
    assert_eq!(put.status(), 201);
    let got = http
        .get(format!("{url}/v2/team/app/manifests/v1"))
        .bearer_auth(&token)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(sha256(&got), sha256(&manifest));
    let pulled = http
        .get(format!("{url}/v2/team/app/blobs/{}", sha256(&layer)))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(sha256(&pulled), sha256(&layer));
    // The metrics port the chart's Service and ServiceMonitor scrape.
    let metrics = address_in(&log, "metrics on http://");
    let scraped = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(scraped.contains("depot_http_requests_total"));

    // The GC CronJob's container, on the same backends, collects once and exits 0.
    let cron = chart().join("ci/cronjob-gc-values.yaml");
    let docs = render(&[
        "-f",
        cron.to_str().unwrap(),
        "--set",
        &storage,
        "--set",
        &endpoint,
        "--set",
        "storage.s3.forcePathStyle=true",
        "--set",
        "database.existingSecretKey=url",
    ]);
    let job = &find(&docs, "CronJob").unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let gc = runnable(job, &job["containers"][0], &secrets, &dir.path().join("gc"));
    let out = gc.command().stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "depot-gc run --once: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM (after the kubelet's preStop pause): not ready at once, then a clean exit.
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let mut not_ready = false;
    while signalled.elapsed() < Duration::from_secs(3) {
        match http.get(format!("{url}{probe}")).send() {
            Ok(r) if r.status() == 503 => {
                not_ready = true;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert!(not_ready, "{probe} did not answer 503 after SIGTERM");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let exit = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(grace),
            "still running after the termination grace period"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
}
