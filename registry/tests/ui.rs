//! The web dashboard (`/ui/`) against the real registry: in a real browser (Debian's chromium
//! driven by playwright-core: `tests/ui/dashboard.cjs`, screenshots of every page in
//! `target/ui-screenshots/`) on the embedded default and on PostgreSQL + S3, and the builds page of a project with 10,000 builds, whose server
//! time must stay under 100 ms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use depot_api_types as api;
use depot_testkit::tools::build_layout;
use depot_testkit::{ApiClient, Server};
use reqwest::blocking::Client;

/// Where playwright-core is (`.ci/setup` installs it there), unless `DEPOT_PLAYWRIGHT_CORE`
/// says otherwise.
fn playwright_core() -> PathBuf {
    let path = std::env::var_os("DEPOT_PLAYWRIGHT_CORE").map_or_else(
        || PathBuf::from("/usr/local/lib/depot-playwright/node_modules/playwright-core"),
        PathBuf::from,
    );
    assert!(
        path.join("package.json").is_file() && Path::new("/usr/bin/chromium").is_file(),
        "the browser test needs chromium and playwright-core: run .ci/setup"
    );
    path
}

/// Where the screenshots go: beside the build, where a developer finds them.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The push token in a [`skopeo_push`] command line.
fn push_token_of(command: &[String]) -> String {
    command
        .iter()
        .find_map(|a| a.strip_prefix("x-token:"))
        .unwrap()
        .to_owned()
}

/// A manifest of `repo` as stored, read with `secret`.
fn manifest_bytes(server: &Server, repo: &str, digest: &str, secret: &str) -> Vec<u8> {
    let http = Client::new();
    let token = depot_testkit::api::access_token(
        &http,
        &server.url(),
        secret,
        &format!("repository:{repo}:pull"),
    );
    http.get(format!("{}/v2/{repo}/manifests/{digest}", server.url()))
        .header("accept", depot_testkit::oci::OCI_MANIFEST)
        .bearer_auth(token)
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec()
}

/// A build of `project` created through the API, and the skopeo command line that pushes
/// the layout's amd64 image to it with its push token (which saves it).
fn skopeo_push(
    client: &ApiClient,
    server: &Server,
    layout: &str,
    project: &str,
    save: &[&str],
) -> (String, Vec<String>) {
    let spec = api::CreateBuild {
        save_tags: save.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let build = client.create_build(project, &spec);
    let command = vec![
        "skopeo".to_owned(),
        "copy".to_owned(),
        "--dest-tls-verify=false".to_owned(),
        "--dest-creds".to_owned(),
        format!("x-token:{}", build.push_token.unwrap()),
        format!("oci:{layout}:amd64"),
        format!("docker://{}/{project}:{}", server.host(), build.id),
    ];
    (build.id, command)
}

#[test]
fn the_dashboard_in_a_real_browser_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    in_a_real_browser(dir.path(), &[], "embedded");
}

#[test]
fn the_dashboard_in_a_real_browser_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("ui") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    in_a_real_browser(dir.path(), &b.store_flags(), "postgres-s3");
}

/// The browser's walk through the dashboard of a registry on `backend` (its flags);
/// screenshots under `target/ui-screenshots/<name>/`.
fn in_a_real_browser(dir: &Path, backend: &[String], name: &str) {
    let playwright = playwright_core();
    let mut flags = vec!["--usage-interval", "1"];
    flags.extend(backend.iter().map(String::as_str));
    let server = Server::start_with(&dir.join("data"), &flags);
    let admin = ApiClient::new(&server.url(), &server.admin_token());
    build_layout(dir);
    let layout = dir.join("layout").display().to_string();

    let web = admin.create_project("web");
    let token = admin.create_token(&web.id, "ci").token.unwrap();
    let other = admin.create_project("secret-other-project");
    let other_token = admin.create_token(&other.id, "ci").token.unwrap();
    let other_client = ApiClient::new(&server.url(), &other_token);
    let (other_build, push_other) = skopeo_push(&other_client, &server, &layout, &other.id, &[]);
    let status = Command::new(&push_other[0])
        .args(&push_other[1..])
        .status()
        .unwrap();
    assert!(status.success());
    // A saved build of the project, with an SBOM pointing at it: the same image as the next,
    // so their layer is shared.
    let client = ApiClient::new(&server.url(), &token);
    let (stable, push_stable) = skopeo_push(&client, &server, &layout, &web.id, &["stable"]);
    let status = Command::new(&push_stable[0])
        .args(&push_stable[1..])
        .status()
        .unwrap();
    assert!(status.success());
    let shown: api::Build = client.ok(
        reqwest::Method::GET,
        &format!("/builds/{stable}"),
        None::<&()>,
    );
    let image = &shown.images[0];
    let manifest = manifest_bytes(&server, &web.id, &image.digest, &token);
    depot_testkit::oci::push_sbom(
        &server.url(),
        &web.id,
        &push_token_of(&push_stable),
        &image.digest,
        manifest.len(),
    );
    // The build the browser sees arrive: created now, pushed by the script when it is looking.
    let (build, push) = skopeo_push(&client, &server, &layout, &web.id, &["latest"]);

    let shots = screenshots().join(name);
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/dashboard.cjs"))
        .env("UI_URL", server.url())
        .env("PROJECT", &web.id)
        .env("PROJECT_NAME", &web.name)
        .env("PROJECT_TOKEN", &token)
        .env("OTHER_PROJECT", &other.id)
        .env("OTHER_PROJECT_NAME", &other.name)
        .env("OTHER_BUILD", &other_build)
        .env("BUILD", &build)
        .env("STABLE_BUILD", &stable)
        .env("PUSH", serde_json::to_string(&push).unwrap())
        .env("SHOTS", &shots)
        .env("PLAYWRIGHT_CORE", &playwright)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{log}\n(screenshots in {})",
        shots.display()
    );
    assert!(log.contains("every step passed"), "{log}");
    for page in [
        "01-sign-in",
        "03-projects",
        "04-builds",
        "06-build",
        "08-pull-token",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "no screenshot {page}"
        );
    }
    // What the browser did, the API saw: the build is gone, the other project untouched.
    let (status, _) = client.call(
        reqwest::Method::GET,
        &format!("/builds/{build}"),
        None::<&()>,
    );
    assert_eq!(status, 404);
    let (status, _) = other_client.call(
        reqwest::Method::GET,
        &format!("/builds/{other_build}"),
        None::<&()>,
    );
    assert_eq!(status, 200);
    // No secret reached the log.
    let logs = server.logs();
    assert!(!logs.contains(&token) && !logs.contains(&other_token));
}

/// A browser's session: the sign-in form's CSRF token and cookie, then the session cookie.
fn sign_in(http: &Client, base: &str, token: &str) -> String {
    let form = http.get(format!("{base}/ui/login")).send().unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = form.text().unwrap();
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let resp = http
        .post(format!("{base}/ui/login"))
        .header("cookie", cookie)
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303);
    resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The server's own time for a page (its `Server-Timing`), in milliseconds.
fn server_ms(http: &Client, url: &str, cookie: &str) -> f64 {
    let resp = http.get(url).header("cookie", cookie).send().unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let timing = resp.headers()["server-timing"].to_str().unwrap().to_owned();
    let body = resp.text().unwrap();
    assert!(
        body.contains("<table class=\"builds\">"),
        "{url}: no builds table"
    );
    timing
        .strip_prefix("app;dur=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Server-Timing {timing:?}"))
}

#[test]
fn a_project_of_ten_thousand_builds_renders_in_under_100_ms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &["--usage-interval", "0"]);
    let admin = ApiClient::new(&server.url(), &server.admin_token());
    let project = admin.create_project("big");
    // 10,000 builds written the way the registry writes them, through the store; most saved,
    // some failed, some still building, a few with a save tag.
    let url = format!("sqlite:{}", data.join("metadata.db").display());
    let now = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use depot_store::model::{Build, BuildSpec, BuildState};
        let meta = depot_store::metadata::Metadata::connect(&url)
            .await
            .unwrap();
        let now = meta.clock().now_ms();
        for i in 0..10_000i64 {
            let id = format!("b{i:015}");
            let build = Build {
                id: id.clone(),
                project: project.id.clone(),
                state: BuildState::Building,
                spec: BuildSpec {
                    platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                    save_tags: if i % 1000 == 0 {
                        vec!["release".into()]
                    } else {
                        Vec::new()
                    },
                    ..BuildSpec::default()
                },
                failure: None,
                created_at: now - (10_000 - i) * 1000,
                updated_at: now,
                lease_expires_at: now + 3_600_000,
                expires_at: now + 7 * 86_400_000,
            };
            meta.create_build(&build).await.unwrap();
            let to = match i % 10 {
                0 => BuildState::Failed,
                1 => BuildState::Building,
                _ => BuildState::Saved,
            };
            if to != BuildState::Building {
                let failure = (to == BuildState::Failed)
                    .then_some("platform linux/arm64: step 3 exited with status 1");
                meta.transition_build(&id, BuildState::Building, to, failure, now)
                    .await
                    .unwrap();
            }
        }
        meta.close().await;
        now
    });
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &server.url(), &server.admin_token());
    let base = format!("{}/ui/projects/{}", server.url(), project.id);
    for (what, url) in [
        ("newest page", base.clone()),
        ("saved only", format!("{base}?state=saved")),
        ("failed only", format!("{base}?state=failed")),
        ("a save tag", format!("{base}?tag=release")),
        (
            "a page deep down",
            format!("{base}?cursor={}.b000000000005000", now - 5000 * 1000),
        ),
    ] {
        // The first request warms the caches; the median of five is the figure.
        server_ms(&http, &url, &cookie);
        let mut times: Vec<f64> = (0..5).map(|_| server_ms(&http, &url, &cookie)).collect();
        times.sort_by(f64::total_cmp);
        let median = times[2];
        eprintln!("builds page, {what}: {median:.1} ms server time (10,000 builds)");
        assert!(median < 100.0, "{what}: {median:.1} ms");
    }
}

/// Without authentication (`--no-auth`, loopback only) the dashboard needs no sign-in, but its
/// forms still carry a token another site cannot know: a post without it changes nothing.
#[test]
fn without_authentication_the_forms_still_need_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let admin = ApiClient::new(&server.url(), "");
    let project = admin.create_project("open");
    let build = admin.create_build(&project.id, &api::CreateBuild::default());
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/ui/projects", server.url()))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("authentication is off"));
    let delete = format!("{}/ui/builds/{}/delete", server.url(), build.id);
    let forged = http
        .post(&delete)
        .form(&[("csrf", "guessed")])
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    let (status, _) = admin.call(
        reqwest::Method::GET,
        &format!("/builds/{}", build.id),
        None::<&()>,
    );
    assert_eq!(status, 200, "a forged post deleted the build");
    let form = http.get(&delete).send().unwrap().text().unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let done = http.post(&delete).form(&[("csrf", csrf)]).send().unwrap();
    assert_eq!(done.status(), 303);
    let (status, _) = admin.call(
        reqwest::Method::GET,
        &format!("/builds/{}", build.id),
        None::<&()>,
    );
    assert_eq!(status, 404);
}
