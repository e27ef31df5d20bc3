//! What a Depot user reaches for, against the real registry: `depot init` and the project files
//! Depot reads, a login that remembers its project, shell completion, `--version` with the
//! commit. Pickers are tried on a real pseudo-terminal (util-linux `script`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use depot_testkit::cli::Fixture;
use depot_testkit::distribution::Distribution;
use depot_testkit::sha256;
use depot_testkit::tools::{fails, ok, remote_manifest, with_stdin};
use reqwest::Method;
use serde_json::{json, Value};

/// Runs `cmd` under a pseudo-terminal and types `answer` once `prompt` is on the screen (as a
/// person would: so a prompt that turns echo off has done so, where input typed earlier would
/// be echoed by the terminal itself); its exit status and everything the terminal showed.
fn on_terminal(cmd: &Command, prompt: &str, answer: &str) -> (bool, String) {
    use std::io::{Read, Write};
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = line
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut script = Command::new("script");
    script.args(["-qec", &quoted.join(" "), "/dev/null"]);
    script.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        script.current_dir(dir);
    }
    script.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = script.spawn().expect("util-linux script");
    let mut stdout = child.stdout.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let prompt = prompt.to_owned();
    let reader = std::thread::spawn(move || {
        let (mut screen, mut buf, mut told) = (Vec::new(), [0u8; 4096], false);
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
            if !told && String::from_utf8_lossy(&screen).contains(&prompt) {
                told = true;
                let _ = seen_tx.send(());
            }
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    let mut stdin = child.stdin.take().unwrap();
    if seen_rx.recv_timeout(Duration::from_secs(60)).is_ok() {
        // The prompt is written just before the terminal is set up to read: a moment more.
        std::thread::sleep(Duration::from_millis(200));
        stdin.write_all(answer.as_bytes()).unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    (status.success(), reader.join().unwrap())
}

#[test]
fn init_writes_the_project_file_every_later_command_reads() {
    let f = Fixture::new();
    let work = f.dir.path().join("work");
    let nested = work.join("services/api");
    std::fs::create_dir_all(&nested).unwrap();
    let depot = || {
        let mut c = f.depot();
        c.env_remove("DEPOT_PROJECT_ID");
        c
    };

    let (_, err) = ok(depot().args(["init", work.to_str().unwrap(), "--project", &f.project]));
    assert!(err.contains(&f.project), "{err}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(work.join("depot.json")).unwrap()).unwrap();
    assert_eq!(written, json!({ "id": f.project }));
    // Commands in a folder below find it.
    let single = f.single("main");
    let (csv, _) = ok(depot().current_dir(&nested).args(["list", "builds"]));
    assert!(csv.contains(&single), "{csv}");

    // Not replaced unless asked; an unknown project is caught now, not at the first build.
    let err = fails(
        depot()
            .current_dir(&work)
            .args(["init", "--project", &f.project]),
    );
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let err =
        fails(
            depot()
                .current_dir(&work)
                .args(["init", "--force", "--project", "nosuchproj"]),
        );
    assert!(err.contains("nosuchproj not found"), "{err}");
    assert!(
        err.contains(&f.project),
        "names the token's projects: {err}"
    );
    ok(depot()
        .current_dir(&work)
        .args(["init", "--force", "--project", &f.project]));

    // Without --project and without a terminal: the projects, and what to pass.
    let bare = f.dir.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let out = depot().current_dir(&bare).arg("init").output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("id,name,created_at\n"), "{stdout}");
    assert!(stdout.contains(&format!("{},app,", f.project)), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --project"), "{stderr}");
    assert!(!bare.join("depot.json").exists());

    // On a terminal: a numbered choice (a wrong answer asks again).
    let mut cmd = depot();
    cmd.current_dir(&bare).arg("init");
    let (success, screen) = on_terminal(&cmd, "Which project", "7\n1\n");
    assert!(success, "{screen}");
    assert!(
        screen.contains("1) ") && screen.contains("Type a number"),
        "{screen}"
    );
    let written: Value =
        serde_json::from_slice(&std::fs::read(bare.join("depot.json")).unwrap()).unwrap();
    assert_eq!(written["id"], f.project.as_str());

    // depot.yml / depot.yaml, as Depot's CLI reads them.
    let yml = f.dir.path().join("yml");
    std::fs::create_dir_all(&yml).unwrap();
    std::fs::write(yml.join("depot.yml"), format!("id: {}\n", f.project)).unwrap();
    let (csv, _) = ok(depot().current_dir(&yml).args(["list", "builds"]));
    assert!(csv.contains(&single), "{csv}");
    std::fs::rename(yml.join("depot.yml"), yml.join("depot.yaml")).unwrap();
    let (csv, _) = ok(depot().current_dir(&yml).args(["list", "builds"]));
    assert!(csv.contains(&single), "{csv}");
    // init there replaces the YAML file with depot.json, so one project is named.
    ok(depot()
        .current_dir(&yml)
        .args(["init", "--force", "--project", &f.project]));
    assert!(!yml.join("depot.yaml").exists() && yml.join("depot.json").exists());
}

#[test]
fn login_with_a_project_token_remembers_its_project() {
    let f = Fixture::new();
    let single = f.single("main");
    let bare = f.dir.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let depot = || {
        let mut c = f.depot();
        c.env_remove("DEPOT_PROJECT_ID")
            .env_remove("DEPOT_TOKEN")
            .current_dir(&bare);
        c
    };
    let out = with_stdin(depot().args(["login", "--token-stdin"]), &f.token);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("project {}", f.project)), "{err}");
    // No depot.json, no --project: the login's project.
    let (csv, _) = ok(depot().args(["list", "builds"]));
    assert!(csv.contains(&single), "{csv}");

    // On a terminal without --token-stdin, the token is asked for.
    ok(depot().arg("logout"));
    let mut cmd = depot();
    cmd.arg("login");
    let (success, screen) = on_terminal(&cmd, "Token (input hidden):", &format!("{}\n", f.token));
    assert!(
        success && screen.contains("Token (input hidden):"),
        "{screen}"
    );
    assert!(
        !screen.contains(&f.token),
        "the token is not echoed: {screen}"
    );
    ok(depot().args(["list", "builds"]));

    // An admin token sees every project: it records none, and says how to name one.
    let admin = ApiProject::second(&f);
    let out = with_stdin(depot().args(["login", "--token-stdin"]), &f.admin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("depot init"), "{err}");
    let err = fails(depot().args(["list", "builds"]));
    assert!(
        err.contains("no project") && err.contains("depot init"),
        "{err}"
    );
    let (csv, _) = ok(depot().args(["list", "builds", "--project", &admin]));
    assert!(csv.starts_with("id,"), "{csv}");
}

/// A second project, so an admin token sees more than one.
struct ApiProject;
impl ApiProject {
    fn second(f: &Fixture) -> String {
        let p = f.api(
            Method::POST,
            "/api/v1/projects",
            &f.admin,
            json!({ "name": "other" }),
        );
        p["id"].as_str().unwrap().to_owned()
    }
}

#[test]
fn completion_scripts_and_the_version_with_its_commit() {
    let f = Fixture::new();
    for (shell, marker) in [
        ("bash", "complete -F _depot"),
        ("zsh", "#compdef depot"),
        ("fish", "complete -c depot"),
    ] {
        let (script, _) = ok(f.depot().args(["completion", shell]));
        assert!(script.contains(marker), "{shell}: {}", &script[..200]);
        assert!(script.contains("pull") && script.contains("trust-policy"));
    }
    let (version, _) = ok(f.depot().arg("--version"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(!head.is_empty());
    assert_eq!(
        version.trim(),
        format!("depot {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

/// `depot push` to a plain-HTTP registry without `--insecure-registry`, and `--registry
/// https://` against a plain-HTTP depot registry: a TLS mismatch is no transient failure, so it
/// fails at once (not after a minute of retries) and says which flag helps.
#[test]
fn a_tls_mismatch_fails_at_once_naming_the_flag() {
    let f = Fixture::new();
    let (multi, _) = f.multi();
    let open = Distribution::start(&f.dir.path().join("open"), None);
    let started = Instant::now();
    let err = fails(
        f.depot()
            .args(["push", "-t", &format!("{}/app:v1", open.host()), &multi]),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {err}",
        started.elapsed()
    );
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(
        err.contains(&format!("--insecure-registry {}", open.host())),
        "{err}"
    );
    assert!(!err.contains("retrying"), "{err}");

    let secure = format!("https://{}", f.server.host());
    let layout = format!("oci:{}", f.dir.path().join("out").display());
    for args in [
        vec!["list", "builds"],
        vec!["pull", "--output", &layout, &multi],
    ] {
        let started = Instant::now();
        let err = fails(f.depot().arg("--registry").arg(&secure).args(&args));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&format!("--registry http://{}", f.server.host())),
            "{args:?}: {err}"
        );
    }
}

/// `DEPOT_PUSH_REGISTRY_USERNAME`/`_PASSWORD` or `_AUTH` are the credentials of every
/// destination, over whatever the Docker config holds.
#[test]
fn push_credentials_from_the_environment_override_the_docker_config() {
    let f = Fixture::new();
    let (multi, index) = f.multi();
    let basic = Distribution::start(&f.dir.path().join("basic"), Some(("alice", "s3cret")));
    // The Docker config holds wrong credentials for it.
    std::fs::create_dir_all(f.docker_config()).unwrap();
    let wrong = base64::engine::general_purpose::STANDARD.encode("alice:wrong");
    std::fs::write(
        f.docker_config().join("config.json"),
        json!({ "auths": { basic.host(): { "auth": wrong } } }).to_string(),
    )
    .unwrap();
    let push = |tag: &str| {
        let mut c = f.depot();
        c.env("DEPOT_INSECURE_REGISTRIES", basic.host()).args([
            "push",
            "-q",
            "-t",
            &format!("{}/team/app:{tag}", basic.host()),
            &multi,
        ]);
        c
    };
    let err = fails(&mut push("v0"));
    assert!(err.contains("401"), "{err}");
    ok(push("v1")
        .env("DEPOT_PUSH_REGISTRY_USERNAME", "alice")
        .env("DEPOT_PUSH_REGISTRY_PASSWORD", "s3cret"));
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    ok(push("v2").env("DEPOT_PUSH_REGISTRY_AUTH", &auth));
    for tag in ["v1", "v2"] {
        let raw = remote_manifest(
            &basic.host(),
            &format!("team/app:{tag}"),
            Some("alice:s3cret"),
        );
        assert_eq!(sha256(&raw), index);
    }
    // Half a pair is refused, rather than pushing anonymously.
    let err = fails(push("v3").env("DEPOT_PUSH_REGISTRY_USERNAME", "alice"));
    assert!(err.contains("DEPOT_PUSH_REGISTRY_PASSWORD"), "{err}");
}

/// One unreachable destination (its requests retried until it is given up) does not hold up the
/// healthy one: that one's manifests land as soon as its own blobs have, and every blob is
/// still read from the depot registry once.
#[test]
fn each_destination_finishes_on_its_own() {
    let f = Fixture::new();
    let (multi, index) = f.multi();
    let open = Distribution::start(&f.dir.path().join("open"), None);
    let dead = "127.0.0.1:1";
    let out = depot_testkit::tools::output(
        f.depot()
            .env(
                "DEPOT_INSECURE_REGISTRIES",
                format!("{},{dead}", open.host()),
            )
            // 0.5 + 1 + 2 + 4 s of backoff before the dead one is given up.
            .args(["push", "--json", "--retries", "5"])
            .args(["-t", &format!("{dead}/x/app:v1")])
            .args(["-t", &format!("{}/app:v1", open.host())])
            .arg(&multi),
    );
    assert!(!out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = s["destinations"].as_array().unwrap();
    let healthy = rows.iter().find(|d| d["ok"] == true).unwrap();
    let failed = rows.iter().find(|d| d["ok"] == false).unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{s}"
    );
    let total = s["seconds"].as_f64().unwrap();
    let healthy_done = healthy["seconds"].as_f64().unwrap();
    assert!(total > 7.0, "the dead destination was retried: {s}");
    assert!(healthy_done < 3.0, "the healthy destination waited: {s}");
    assert_eq!(s["source_bytes_read"], s["image_bytes"], "{s}");
    assert_eq!(
        sha256(&remote_manifest(&open.host(), "app:v1", None)),
        index
    );
}

/// `depot list builds` says what a user needs of each build: `expired` once it is past its
/// expiry (not `saved`), the size of what it saved, and a failed build's reason; `depot pull`
/// refuses a build of another project than the one named.
#[test]
fn list_builds_shows_expiry_size_and_failure() {
    let f = Fixture::new();
    let (multi, _) = f.multi();
    // Kept a few seconds: long enough to push it under a loaded machine, then it expires.
    let (short, push) = f.build(json!({ "retention_secs": 5 }));
    f.push("amd64", &short, &push);
    let (failed, push) = f.build(json!({}));
    f.api(
        Method::POST,
        &format!("/api/v1/builds/{failed}/fail"),
        &push,
        json!({ "reason": "exited with status 125:\nCOPY failed: no such file only-arm64.txt" }),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while f.show(&short)["expired"] != true {
        assert!(Instant::now() < until, "build {short} never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (csv, _) = ok(f.depot().args(["list", "builds"]));
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let row = |id: &str| rows.iter().find(|r| &r[col("id")] == id).unwrap().clone();
    assert_eq!(&row(&short)[col("state")], "expired", "{csv}");
    assert_eq!(&row(&short)[col("size")], "", "{csv}");
    assert_eq!(&row(&multi)[col("state")], "saved", "{csv}");
    let size: u64 = row(&multi)[col("size")].parse().unwrap();
    assert_eq!(size, f.show(&multi)["images"][0]["size"].as_u64().unwrap());
    assert_eq!(&row(&failed)[col("state")], "failed", "{csv}");
    assert!(
        row(&failed)[col("failure")].ends_with("no such file only-arm64.txt"),
        "{csv}"
    );

    // A build ID with --project naming another project is refused, not silently used.
    let other = f.api(
        Method::POST,
        "/api/v1/projects",
        &f.admin,
        json!({ "name": "other" }),
    );
    let other = other["id"].as_str().unwrap();
    let out = f.dir.path().join("pulled");
    let err = fails(f.depot().args([
        "pull",
        "--project",
        other,
        "--output",
        &format!("oci:{}", out.display()),
        &multi,
    ]));
    assert!(
        err.contains(&format!("belongs to project {}, not {other}", f.project)),
        "{err}"
    );
}

/// Project names are unique (a new project or a rename taking one in use is a `409`), and only
/// the admin changes a project: a project token's `PATCH` is a `403`, as the README says.
#[test]
fn project_names_are_unique_and_only_the_admin_changes_a_project() {
    let f = Fixture::new();
    let admin = f.client(&f.admin);
    let name = f.api(
        Method::GET,
        &format!("/api/v1/projects/{}", f.project),
        &f.token,
        Value::Null,
    )["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin.call(Method::POST, "/projects", Some(&json!({ "name": name })));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exists already"),
        "{body}"
    );
    let other = admin.create_project("other");
    let path = format!("/projects/{}", other.id);
    let (status, body) = admin.call(Method::PATCH, &path, Some(&json!({ "name": name })));
    assert_eq!(status, 409, "{body}");
    let (status, _) = admin.call(Method::PATCH, &path, Some(&json!({ "name": "renamed" })));
    assert_eq!(status, 200);
    let (status, body) = f.client(&f.token).call(
        Method::PATCH,
        &format!("/projects/{}", f.project),
        Some(&json!({ "retention_secs": 60 })),
    );
    assert_eq!(status, 403, "{body}");
}

/// `depot pull` without a build ID: a picker of the newest saved builds on a terminal; elsewhere
/// they are printed as CSV and the command fails, saying that a build ID is needed.
#[test]
fn pull_without_a_build_id_offers_the_newest_builds() {
    let f = Fixture::new();
    let older = f.single("main");
    let (newest, index) = f.multi();
    let out = f.dir.path().join("picked");
    let layout = format!("oci:{}", out.display());
    let piped = depot_testkit::tools::output(f.depot().args(["pull", "--output", &layout]));
    assert!(!piped.status.success());
    let csv = String::from_utf8_lossy(&piped.stdout);
    let ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(
        ids,
        [newest.as_str(), older.as_str()],
        "newest first: {csv}"
    );
    assert!(
        String::from_utf8_lossy(&piped.stderr).contains("a build ID is needed"),
        "{piped:?}"
    );
    assert!(!out.exists());

    let mut cmd = f.depot();
    cmd.args(["pull", "-q", "--output", &layout]);
    let (success, screen) = on_terminal(&cmd, "Which build", "1\n");
    assert!(success && screen.contains("Which build"), "{screen}");
    let pulled = depot_testkit::tools::skopeo(&["inspect", "--raw", &format!("{layout}:{newest}")]);
    assert_eq!(sha256(pulled.as_bytes()), index);
}

/// `depot image list`: a project's images as Depot prints them (`Tag,Digest,Size (bytes),Pushed
/// At`, CSV without a terminal, `--output json`), mapped onto builds and save tags (platform
/// tags are left out); `depot image rm` deletes a build by its own tag and only the tag for a
/// save tag, and says which; an unknown tag fails, the others are still removed.
#[test]
fn image_list_and_rm_map_onto_builds_and_save_tags() {
    let f = Fixture::new();
    let single = f.single("latest");
    let (multi, index) = f.multi();
    let bake = f.bake();
    let (csv, _) = ok(f.depot().args(["image", "list"]));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("Tag,Digest,Size (bytes),Pushed At"),
        "{csv}"
    );
    let tags: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    let mut sorted = tags.clone();
    sorted.sort();
    let mut want = vec![
        single.clone(),
        "latest".to_owned(),
        multi.clone(),
        format!("{bake}-api"),
        format!("{bake}-web"),
    ];
    want.sort();
    assert_eq!(sorted, want, "no platform tags: {csv}");
    // Most recently pushed first: the bake build came last.
    assert!(tags[0].starts_with(&bake), "{csv}");

    let (json, _) = ok(f.depot().args(["image", "list", "--output", "json"]));
    let images: Vec<Value> = serde_json::from_str(&json).unwrap();
    let image = |tag: &str| images.iter().find(|i| i["tag"] == tag).unwrap().clone();
    assert_eq!(image(&multi)["digest"], index.as_str());
    assert_eq!(image(&multi)["kind"], "build");
    assert_eq!(image(&multi)["size"], f.show(&multi)["images"][0]["size"]);
    assert_eq!(image("latest")["kind"], "save-tag");
    assert_eq!(image("latest")["build"], single.as_str());
    assert_eq!(image(&format!("{bake}-web"))["target"], "web");

    // A save tag goes alone; a build's own tag deletes the build (its save tags with it).
    let (_, err) = ok(f.depot().args(["image", "rm", "latest"]));
    assert!(
        err.contains(&format!("Removed tag latest (build {single} stays)")),
        "{err}"
    );
    assert_eq!(f.show(&single)["state"], "saved");
    let err = fails(f.depot().args(["image", "rm", "no-such-tag", &multi]));
    assert!(err.contains("has no image no-such-tag"), "{err}");
    assert!(
        err.contains(&format!("Deleted build {multi} ({multi})")),
        "{err}"
    );
    assert!(err.contains("1 of 2 images not removed"), "{err}");
    let (status, _) =
        f.client(&f.token)
            .call(Method::GET, &format!("/builds/{multi}"), None::<&()>);
    assert_eq!(status, 404);
    // A platform tag is refused with what to do instead.
    let (status, body) = f.client(&f.token).call(
        Method::DELETE,
        &format!("/projects/{}/images/{single}-linux-amd64", f.project),
        None::<&()>,
    );
    assert!(status == 400 || status == 404, "{status} {body}");
    let (csv, _) = ok(f.depot().args(["image", "list"]));
    assert!(!csv.contains(&multi) && !csv.contains("latest,"), "{csv}");
    assert!(csv.contains(&single), "{csv}");
    // Paging: one image a page still lists them all.
    let (status, page) = f.client(&f.token).call(
        Method::GET,
        &format!("/projects/{}/images?limit=1", f.project),
        None::<&()>,
    );
    assert_eq!(status, 200);
    assert_eq!(page["images"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = f.client(&f.token).call(
        Method::GET,
        &format!("/projects/{}/images?limit=10&cursor={cursor}", f.project),
        None::<&()>,
    );
    assert_eq!(rest["images"].as_array().unwrap().len(), 2, "{rest}");
    assert!(rest["next_cursor"].is_null());
}

/// `depot projects`: create with retention by count, a count policy set later applies at once
/// (the oldest saved build answers 404), `none` removes it, a project token may not change
/// it, and delete needs `--yes`, then ends the project's builds and token.
#[test]
fn projects_retention_by_count_and_delete_from_the_cli() {
    let f = Fixture::new();
    let admin_cli = || {
        let mut c = f.depot();
        c.env("DEPOT_TOKEN", &f.admin);
        c
    };
    let (id, err) = ok(admin_cli().args([
        "projects",
        "create",
        "web",
        "--retention",
        "30d",
        "--keep-builds",
        "5",
        "--keep-days",
        "2",
    ]));
    let id = id.trim().to_owned();
    assert!(err.contains("Created project web"), "{err}");
    let (csv, _) = ok(admin_cli().args(["projects", "list"]));
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{id},web,2592000,5,2,"))),
        "{csv}"
    );

    let first = f.single("one");
    let second = f.single("two");
    let err = fails(f.depot().args(["projects", "update", "--keep-builds", "1"]));
    assert!(err.contains("admin"), "{err}");
    let (_, err) = ok(admin_cli().args(["projects", "update", "--keep-builds", "1"]));
    assert!(err.contains("keeps the newest 1 builds"), "{err}");
    assert_eq!(f.show(&first)["expired"], true, "the older build, at once");
    assert_eq!(f.show(&second)["expired"], false);
    let (_, err) = ok(admin_cli().args(["projects", "update", "--keep-builds", "none"]));
    assert!(err.contains("keeps every build until it expires"), "{err}");
    let err = fails(admin_cli().args(["projects", "update", "--keep-builds", "0"]));
    assert!(
        err.contains("keep_builds must be between 1 and 100000"),
        "{err}"
    );
    let err = fails(admin_cli().args(["projects", "update"]));
    assert!(err.contains("nothing to change"), "{err}");

    let err = fails(admin_cli().args(["projects", "delete", &f.project]));
    assert!(err.contains("pass --yes"), "{err}");
    assert_eq!(f.show(&second)["expired"], false);
    let (_, err) = ok(admin_cli().args(["projects", "delete", &f.project, "--yes"]));
    // The first build expired already (the count policy): only the second was live.
    assert!(
        err.contains("1 builds expired, 1 tokens revoked, 0 trust policies removed"),
        "{err}"
    );
    let err = fails(f.depot().args(["list", "builds"]));
    assert!(err.contains("revoked"), "{err}");
}
