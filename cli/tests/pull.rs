//! `depot pull` against the real registry: to disk (OCI layout, docker archive) verified with
//! skopeo, into a real Docker Engine API (`podman system service`) both ways (the daemon pulls;
//! an archive is streamed when it cannot), checked with `docker image inspect`; and the
//! login, pull-token and list commands around it.

use std::process::Command;

use depot_testkit::cli::Fixture;
use depot_testkit::sha256;
use depot_testkit::tools::{fails, ok};
use depot_testkit::tools::{skopeo, PodmanService};
use serde_json::Value;

/// The config digest of the image manifest `digest` in the layout.
fn config_of(layout: &str, digest: &str) -> String {
    let bytes = std::fs::read(format!(
        "{layout}/blobs/sha256/{}",
        digest.trim_start_matches("sha256:")
    ))
    .unwrap();
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    m["config"]["digest"].as_str().unwrap().to_owned()
}

#[test]
fn pulls_to_disk_verified() {
    let f = Fixture::new();
    let single = f.single("stable");
    let (multi, index) = f.multi();
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());

    // The whole multi-platform index, as the registry holds it.
    ok(f.depot().args(["pull", "--output", &oci, &multi]));
    let raw = skopeo(&["inspect", "--raw", &format!("{oci}:{multi}")]);
    assert_eq!(sha256(raw.as_bytes()), index);
    // One platform of it, under the -t name; and by save tag.
    ok(f.depot().args([
        "pull",
        "--output",
        &oci,
        "--platform",
        "linux/arm64",
        "-t",
        "arm",
        &multi,
    ]));
    let raw = skopeo(&["inspect", "--raw", &format!("{oci}:arm")]);
    assert_eq!(sha256(raw.as_bytes()), f.digests["arm64"]);
    let (stdout, _) = ok(f.depot().args(["pull", "--output", &oci, "stable"]));
    assert_eq!(stdout.trim(), format!("{oci}:stable"));
    let raw = skopeo(&["inspect", "--raw", &format!("{oci}:stable")]);
    assert_eq!(sha256(raw.as_bytes()), f.digests["amd64"]);
    // The layout is valid for other tools: skopeo copies every image out of it.
    skopeo(&[
        "copy",
        &format!("{oci}:{multi}"),
        &format!("oci:{}/copy:x", f.dir.path().display()),
        "--all",
    ]);

    // A docker archive of one platform: the config (the image ID) is the build's.
    let tar = f.dir.path().join("app.tar");
    let (stdout, _) = ok(f.depot().args([
        "pull",
        "--platform",
        "linux/arm64",
        "--output",
        &format!("docker-archive:{}", tar.display()),
        "-t",
        "app:arm",
        &multi,
    ]));
    assert!(stdout.contains("app:arm"), "{stdout}");
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("docker-archive:{}", tar.display()),
    ]))
    .unwrap();
    assert_eq!(
        raw["config"]["digest"],
        config_of(&f.layout, f.digests["arm64"].as_str().unwrap())
    );
    assert!(!f.dir.path().join("app.partial").exists());

    // Errors say what and why, and exit non-zero.
    let err = fails(f.depot().args([
        "pull",
        "--output",
        &oci,
        "--platform",
        "linux/s390x",
        &multi,
    ]));
    assert!(
        err.contains(&multi)
            && err.contains("linux/s390x")
            && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    let err = fails(f.depot().args(["pull", "--output", &oci, "nosuchtag"]));
    assert!(err.contains("no build or save tag nosuchtag"), "{err}");
    let err = fails(
        f.depot()
            .args(["pull", "--output", &oci, "--target", "db", &single]),
    );
    assert!(err.contains("no target db"), "{err}");
    let err = fails(f.depot().args(["pull", "--output", "tar:x", &single]));
    assert!(err.contains("oci:DIR or docker-archive:FILE"), "{err}");
    let err = fails(
        f.depot()
            .env("DEPOT_TOKEN", "depot_pt_wrong")
            .args(["pull", "--output", &oci, &single]),
    );
    assert!(err.contains("refused the token"), "{err}");
}

fn docker(service: &PodmanService, args: &[&str]) -> String {
    ok(Command::new("docker")
        .args(["-H", &service.docker_host()])
        .args(args))
    .0
}

fn inspect(service: &PodmanService, name: &str, format: &str) -> String {
    docker(service, &["image", "inspect", "--format", format, name])
        .trim()
        .to_owned()
}

#[test]
fn pulls_into_a_docker_daemon() {
    let f = Fixture::new();
    let single = f.single("stable");
    let (multi, _) = f.multi();
    let bake = f.bake();
    let host = f.server.host();
    let amd64_config = config_of(&f.layout, f.digests["amd64"].as_str().unwrap());
    let arm64_config = config_of(&f.layout, f.digests["arm64"].as_str().unwrap());

    // A daemon that can reach the registry pulls it itself.
    let daemon = PodmanService::start(&f.dir.path().join("podman"), &host);
    let (stdout, stderr) = ok(f.depot().env("DOCKER_HOST", daemon.docker_host()).args([
        "pull",
        "--transfer",
        "registry",
        "--platform",
        "linux/arm64",
        "-t",
        "app:arm",
        &multi,
    ]));
    assert!(stderr.contains("pulled by the daemon"), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [format!("{host}/{}:{multi}", f.project).as_str(), "app:arm"]
    );
    assert_eq!(
        inspect(&daemon, "app:arm", "{{.Id}}").trim_start_matches("sha256:"),
        arm64_config.trim_start_matches("sha256:")
    );
    assert_eq!(inspect(&daemon, "app:arm", "{{.Architecture}}"), "arm64");
    // Without --platform: the daemon's own (amd64 here).
    ok(f.depot().env("DOCKER_HOST", daemon.docker_host()).args([
        "pull",
        "-t",
        "app:native",
        &multi,
    ]));
    assert_eq!(inspect(&daemon, "app:native", "{{.Architecture}}"), "amd64");

    // Every target of a bake build, each with its own tags.
    ok(f.depot().env("DOCKER_HOST", daemon.docker_host()).args([
        "pull",
        "-t",
        "api=app-api:ci",
        "-t",
        "web=app-web:ci",
        &bake,
    ]));
    assert_eq!(
        inspect(&daemon, "app-api:ci", "{{.Id}}").trim_start_matches("sha256:"),
        amd64_config.trim_start_matches("sha256:")
    );
    assert_eq!(
        inspect(&daemon, "app-web:ci", "{{.Id}}").trim_start_matches("sha256:"),
        arm64_config.trim_start_matches("sha256:")
    );
    inspect(
        &daemon,
        &format!("{host}/{}:{bake}-api", f.project),
        "{{.Id}}",
    );

    // A daemon that cannot pull from it (it insists on TLS for this registry) gets the image
    // streamed as an archive instead.
    let strict = PodmanService::start(
        &f.dir.path().join("podman-strict"),
        "elsewhere.invalid:5000",
    );
    let (_, stderr) = ok(f.depot().env("DOCKER_HOST", strict.docker_host()).args([
        "pull",
        "-t",
        "app:streamed",
        &single,
    ]));
    assert!(
        stderr.contains("streaming the image") && stderr.contains("streamed as an archive"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer 1/"),
        "per-layer progress lines: {stderr}"
    );
    assert_eq!(
        inspect(&strict, "app:streamed", "{{.Id}}").trim_start_matches("sha256:"),
        amd64_config.trim_start_matches("sha256:")
    );
    // Quiet is quiet: a fallback that worked is no warning; and --progress quiet is -q.
    for quiet in [&["-q"][..], &["--progress", "quiet"][..]] {
        let (_, stderr) = ok(f
            .depot()
            .env("DOCKER_HOST", strict.docker_host())
            .args(["pull"])
            .args(quiet)
            .args(["-t", "app:quiet", &single]));
        assert_eq!(stderr, "", "{quiet:?}");
    }
    // BUILDKIT_PROGRESS is honoured as buildx honours it.
    let (_, stderr) = ok(f
        .depot()
        .env("DOCKER_HOST", strict.docker_host())
        .env("BUILDKIT_PROGRESS", "quiet")
        .args(["pull", "-t", "app:quiet", &single]));
    assert_eq!(stderr, "");
    // Forced either way.
    ok(f.depot().env("DOCKER_HOST", strict.docker_host()).args([
        "pull",
        "--transfer",
        "archive",
        "-q",
        "-t",
        "app:arch",
        &multi,
    ]));
    assert_eq!(inspect(&strict, "app:arch", "{{.Architecture}}"), "amd64");
    let err = fails(f.depot().env("DOCKER_HOST", strict.docker_host()).args([
        "pull",
        "--transfer",
        "registry",
        &single,
    ]));
    assert!(err.contains(&single), "{err}");
    // No daemon at all: said plainly.
    let err = fails(
        f.depot()
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .args(["pull", &single]),
    );
    assert!(err.contains("Docker daemon"), "{err}");
}

#[test]
fn login_pull_token_and_lists() {
    let f = Fixture::new();
    let single = f.single("stable");
    let creds = f.home().join(".config/depot/credentials.json");

    // login checks the token, then saves it privately; later commands use it.
    let mut login = f.depot();
    login
        .env_remove("DEPOT_TOKEN")
        .args(["login", "--token-stdin"]);
    let out = depot_testkit::tools::with_stdin(&mut login, "depot_pt_wrong\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the token"), "{err}");
    assert!(!creds.exists());
    let mut login = f.depot();
    login
        .env_remove("DEPOT_TOKEN")
        .args(["login", "--token-stdin"]);
    let out = depot_testkit::tools::with_stdin(&mut login, &format!("{}\n", f.token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (csv, _) = ok(f
        .depot()
        .env_remove("DEPOT_TOKEN")
        .env_remove("DEPOT_REGISTRY")
        .args(["list", "builds"]));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,state,platforms,targets,save_tags,created_at,expires_at,size,image,failure"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{single},saved,,,stable,")),
        "{csv}"
    );

    let (json, _) = ok(f
        .depot()
        .env_remove("DEPOT_TOKEN")
        .args(["list", "projects", "--output", "json"]));
    let projects: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(projects[0]["id"], f.project);

    // A pull token for a build works with any client: skopeo reads the build with it.
    let (token, _) = ok(f
        .depot()
        .env_remove("DEPOT_TOKEN")
        .args(["pull-token", &single]));
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--creds",
        &format!("x-token:{}", token.trim()),
        &format!("docker://{}/{}:{single}", f.server.host(), f.project),
    ]);
    assert_eq!(sha256(raw.as_bytes()), f.digests["amd64"]);

    // depot.json names the project when nothing else does.
    let work = f.dir.path().join("work/sub");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        f.dir.path().join("work/depot.json"),
        format!("{{\"id\": \"{}\"}}", f.project),
    )
    .unwrap();
    let (csv, _) = ok(f
        .depot()
        .env_remove("DEPOT_PROJECT_ID")
        .current_dir(&work)
        .args(["list", "builds", "-o", "csv"]));
    assert!(csv.contains(&single));
    let err = fails(
        f.depot()
            .env_remove("DEPOT_PROJECT_ID")
            .current_dir(f.dir.path())
            .args(["list", "builds"]),
    );
    assert!(err.contains("no project"), "{err}");

    ok(f.depot().args(["logout"]));
    assert!(!creds.exists());
    // Without any credential, the error says every way to give one.
    let err = fails(f.depot().env_remove("DEPOT_TOKEN").args(["list", "builds"]));
    assert!(
        err.contains("wants credentials")
            && err.contains("depot login")
            && err.contains("id-token: write"),
        "{err}"
    );

    // Every command has help with examples.
    for cmd in [
        vec!["--help"],
        vec!["login", "--help"],
        vec!["logout", "--help"],
        vec!["pull-token", "--help"],
        vec!["list", "builds", "--help"],
        vec!["list", "projects", "--help"],
        vec!["pull", "--help"],
        vec!["push", "--help"],
        vec!["build", "--help"],
        vec!["bake", "--help"],
    ] {
        let (help, _) = ok(f.depot().args(&cmd));
        assert!(help.contains("Example"), "{cmd:?}: {help}");
    }
}
