//! `depot build` and `depot bake` with the real buildah (vfs storage, chroot isolation) and the
//! real registry: Containerfiles that need no network (`FROM scratch` + `COPY`, two stages),
//! one platform and two built at once, a platform that fails, a bake file with several
//! targets; every saved build pulled back with `depot pull` and compared by digest. Without
//! `--save`, `--push` goes to a distribution registry and `--load` into podman's Docker API.

use std::path::{Path, PathBuf};
use std::process::Command;

use depot_testkit::cli::Fixture;
use depot_testkit::distribution::Distribution;
use depot_testkit::sha256;
use depot_testkit::tools::{fails, ok};
use depot_testkit::tools::{skopeo, PodmanService};
use serde_json::Value;

const CONTAINERFILE: &str = "\
FROM scratch AS base
COPY a.txt /a.txt
FROM scratch
ARG MSG=none
ARG TARGETARCH
COPY --from=base /a.txt /b.txt
COPY only-${TARGETARCH}.txt /arch.txt
LABEL msg=$MSG
";

/// A build context; `arches` are the architectures it has a file for (others fail to build).
fn context(dir: &Path, arches: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Containerfile"), CONTAINERFILE).unwrap();
    std::fs::write(dir.join("a.txt"), "from the first stage\n").unwrap();
    for a in arches {
        std::fs::write(
            dir.join(format!("only-{a}.txt")),
            format!("built for {a}\n"),
        )
        .unwrap();
    }
    dir.to_owned()
}

/// The CLI with buildah on storage of its own (vfs) and chroot isolation, plain HTTP allowed
/// to `insecure` registries.
fn depot(f: &Fixture, insecure: &[String]) -> Command {
    let mut c = f.depot();
    c.envs(f.builder_env(insecure));
    c
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Checks that one image's entry of our metadata file has every key `docker buildx build
/// --metadata-file` writes (`tests/fixtures/buildx-metadata.json`, as buildx documents it), with
/// values of the same JSON type, and the descriptor's `mediaType`, `digest` and `size`. Keys
/// about buildx itself (`buildx.build.*`: its builder's ref, provenance, warnings) are its own,
/// and a multi-platform index has no one config (buildx writes no `containerimage.config.digest`
/// for one either).
fn has_buildx_keys(ours: &Value) {
    let index = ours["containerimage.descriptor"]["mediaType"]
        .as_str()
        .is_some_and(|m| m.contains("index") || m.contains("manifest.list"));
    let buildx: Value =
        serde_json::from_str(include_str!("fixtures/buildx-metadata.json")).unwrap();
    let kind = |v: &Value| std::mem::discriminant(v);
    for (key, value) in buildx.as_object().unwrap() {
        if key.starts_with("buildx.build.") || (index && key == "containerimage.config.digest") {
            continue;
        }
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {ours}"));
        assert_eq!(kind(mine), kind(value), "{key}: {mine} vs buildx's {value}");
    }
    for key in ["mediaType", "digest", "size"] {
        let d = &ours["containerimage.descriptor"];
        assert_eq!(
            kind(&d[key]),
            kind(&buildx["containerimage.descriptor"][key]),
            "{d}"
        );
    }
    assert_eq!(
        ours["containerimage.descriptor"]["digest"], ours["containerimage.digest"],
        "{ours}"
    );
}

/// The image config of `reference` (an `oci:` or `docker://` reference) via skopeo.
fn config(reference: &str) -> Value {
    serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        reference,
    ]))
    .unwrap()
}

fn digest_of(reference: &str) -> String {
    sha256(skopeo(&["inspect", "--tls-verify=false", "--raw", reference]).as_bytes())
}

#[test]
fn saves_one_platform_and_pulls_it_back() {
    let f = Fixture::new();
    let ctx = context(&f.dir.path().join("ctx"), &["amd64", "arm64"]);
    let meta = f.dir.path().join("meta.json");
    let (stdout, stderr) = ok(depot(&f, &[]).args([
        "build",
        "--save",
        "--save-tag",
        "stable",
        "--platform",
        "linux/arm64",
        "--build-arg",
        "MSG=hello",
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]));
    let id = stdout.trim().to_owned();
    assert!(stderr.contains("Building with buildah"), "{stderr}");
    assert!(
        stderr.contains("[linux/arm64]"),
        "builder output is prefixed: {stderr}"
    );
    assert!(
        stderr.contains(&format!("depot pull --project {} {id}", f.project)),
        "{stderr}"
    );
    let host = f.server.host();
    assert!(
        stderr.contains(&format!("docker pull {host}/{}:stable", f.project)),
        "{stderr}"
    );

    let shown = f.show(&id);
    assert_eq!(shown["state"], "saved", "{shown}");
    let digest = shown["images"][0]["digest"].as_str().unwrap().to_owned();
    // The metadata file, as `jq -r '.["depot.build"].buildID'` reads it.
    let m = json_file(&meta);
    has_buildx_keys(&m);
    assert_eq!(m["depot.build"]["buildID"], id.as_str());
    assert_eq!(m["depot.build"]["projectID"], f.project.as_str());
    assert!(m["depot.build"].get("targets").is_none(), "{m}");
    assert_eq!(m["containerimage.digest"], digest.as_str());
    assert_eq!(
        m["image.name"],
        format!("{host}/{}:{id}", f.project).as_str()
    );

    // Pulled back: the same digest, the build arg and platform in its config, both stages' files.
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());
    ok(f.depot().args(["pull", "--output", &oci, &id]));
    assert_eq!(digest_of(&format!("{oci}:{id}")), digest);
    let c = config(&format!("{oci}:{id}"));
    assert_eq!(c["architecture"], "arm64");
    assert_eq!(c["config"]["Labels"]["msg"], "hello");
    // And by its save tag, with any registry client.
    let pull_token = ok(f.depot().args(["pull-token", &id])).0;
    let creds = format!("x-token:{}", pull_token.trim());
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--raw",
        &format!("docker://{host}/{}:{id}", f.project),
    ]);
    assert_eq!(sha256(raw.as_bytes()), digest);
}

#[test]
fn saves_two_platforms_built_at_once_as_one_index() {
    let f = Fixture::new();
    let ctx = context(&f.dir.path().join("ctx"), &["amd64", "arm64"]);
    let meta = f.dir.path().join("meta.json");
    let (stdout, stderr) = ok(depot(&f, &[]).args([
        "build",
        "--save",
        "--platform",
        "linux/amd64,linux/arm64",
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]));
    let id = stdout.trim().to_owned();
    assert!(stderr.contains("[linux/amd64]") && stderr.contains("[linux/arm64]"));
    let shown = f.show(&id);
    assert_eq!(shown["state"], "saved", "{shown}");
    let image = &shown["images"][0];
    assert_eq!(
        image["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let digest = image["digest"].as_str().unwrap().to_owned();
    assert_eq!(json_file(&meta)["containerimage.digest"], digest.as_str());

    // The whole index pulled back is the registry's; each platform is its own build.
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());
    ok(f.depot().args(["pull", "--output", &oci, &id]));
    let index: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &format!("{oci}:{id}")])).unwrap();
    assert_eq!(digest_of(&format!("{oci}:{id}")), digest);
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    for arch in ["amd64", "arm64"] {
        let tag = format!("only-{arch}");
        ok(f.depot().args([
            "pull",
            "--output",
            &oci,
            "--platform",
            &format!("linux/{arch}"),
            "-t",
            &tag,
            &id,
        ]));
        assert_eq!(config(&format!("{oci}:{tag}"))["architecture"], arch);
    }
}

#[test]
fn a_failing_platform_fails_the_build_and_says_which() {
    let f = Fixture::new();
    // No file for arm64: that platform's COPY fails, amd64's succeeds.
    let ctx = context(&f.dir.path().join("ctx"), &["amd64"]);
    let err = fails(depot(&f, &[]).args([
        "build",
        "--save",
        "--platform",
        "linux/amd64,linux/arm64",
        ctx.to_str().unwrap(),
    ]));
    assert!(err.contains("[linux/arm64]"), "{err}");
    assert!(
        err.contains("only-arm64.txt"),
        "the builder's reason is shown: {err}"
    );
    let id = err
        .lines()
        .find_map(|l| l.strip_prefix("Build ")?.split_once(" created"))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("no build id in {err}"));
    let shown = f.show(&id);
    assert_eq!(shown["state"], "failed", "{shown}");
    assert!(
        shown["failure"]
            .as_str()
            .unwrap()
            .starts_with("platform linux/arm64: "),
        "{shown}"
    );
    // The whole reason is kept, down to the builder's own words, and the list shows it too.
    assert!(
        shown["failure"]
            .as_str()
            .unwrap()
            .contains("only-arm64.txt"),
        "{shown}"
    );
    let listed = f.api(
        reqwest::Method::GET,
        &format!("/api/v1/projects/{}/builds", f.project),
        &f.token,
        serde_json::Value::Null,
    );
    let row = listed["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["failure"], shown["failure"], "{listed}");
    let (out, _) = ok(f.depot().args(["list", "builds"]));
    assert!(out.contains("failed"), "{out}");
    // Nothing to pull from a failed build.
    let err = fails(f.depot().args(["pull", "--output", "oci:/tmp/never", &id]));
    assert!(err.contains(&id), "{err}");
}

#[test]
fn bake_saves_every_target_into_one_build() {
    let f = Fixture::new();
    let root = f.dir.path().join("bake");
    context(&root.join("app"), &["amd64", "arm64"]);
    std::fs::write(
        root.join("docker-bake.hcl"),
        r#"
variable "MSG" { default = "from-bake" }
group "default" { targets = ["web", "tools"] }
target "web" {
  context = "app"
  args = { MSG = MSG }
  platforms = ["linux/amd64", "linux/arm64"]
  tags = ["example.com/web:${MSG}"]
}
target "tools" {
  name = "tool-${t}"
  matrix = { t = ["lint", "fmt"] }
  context = "app"
  dockerfile = "Containerfile"
  target = "base"
  labels = { tool = t }
}
"#,
    )
    .unwrap();
    let meta = f.dir.path().join("bake.json");
    let (stdout, stderr) = ok(depot(&f, &[])
        .current_dir(&root)
        .env("MSG", "from-env")
        .args(["bake", "--save", "--metadata-file", meta.to_str().unwrap()]));
    let id = stdout.trim().to_owned();
    assert!(
        stderr.contains("[web linux/arm64]") && stderr.contains("[tool-fmt]"),
        "{stderr}"
    );
    let shown = f.show(&id);
    assert_eq!(shown["state"], "saved", "{shown}");
    let mut targets: Vec<&str> = shown["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["tool-fmt", "tool-lint", "web"]);
    let m = json_file(&meta);
    assert_eq!(m["depot.build"]["buildID"], id.as_str());
    // One object per target, each as buildx writes one image's, and the targets built listed
    // under `depot.build` as Depot lists them.
    for t in ["tool-fmt", "tool-lint", "web"] {
        has_buildx_keys(&m[t]);
    }
    assert_eq!(
        m["depot.build"]["targets"],
        serde_json::json!(["tool-fmt", "tool-lint", "web"]),
        "{m}"
    );
    assert!(m["web"]["image.name"]
        .as_str()
        .unwrap()
        .ends_with(":from-env"));

    // `depot pull <build-id>` pulls every target; each is what the registry saved.
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());
    ok(f.depot().args(["pull", "--output", &oci, &id]));
    for image in shown["images"].as_array().unwrap() {
        let tag = image["tag"].as_str().unwrap();
        assert_eq!(
            digest_of(&format!("{oci}:{tag}")),
            image["digest"].as_str().unwrap()
        );
        assert_eq!(
            m[image["target"].as_str().unwrap()]["containerimage.digest"],
            image["digest"]
        );
    }
    // Named as Depot names them: the -t names the build was created with (recorded on the
    // build, shown by the API) are the image's names too, without a -t on the pull.
    let web = shown["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["target"] == "web")
        .unwrap();
    assert_eq!(
        web["image_names"],
        serde_json::json!(["example.com/web:from-env"]),
        "{shown}"
    );
    assert_eq!(
        digest_of(&format!("{oci}:example.com/web:from-env")),
        web["digest"].as_str().unwrap()
    );
    // A plain -t over several targets names each as NAME:TAG-<target>.
    let named = f.dir.path().join("named");
    let named = format!("oci:{}", named.display());
    ok(f.depot()
        .args(["pull", "--output", &named, "-t", "app:ci", &id]));
    for image in shown["images"].as_array().unwrap() {
        let target = image["target"].as_str().unwrap();
        assert_eq!(
            digest_of(&format!("{named}:app:ci-{target}")),
            image["digest"].as_str().unwrap()
        );
    }
    let c = config(&format!("{oci}:{id}-tool-lint"));
    assert_eq!(c["config"]["Labels"]["tool"], "lint");
    // The `base` stage was built: the final stage's label is not there.
    assert!(c["config"]["Labels"].get("msg").is_none(), "{c}");
    let c = config(&format!("{oci}:{id}-web"));
    assert_eq!(c["config"]["Labels"]["msg"], "from-env");
    let web: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &format!("{oci}:{id}-web")])).unwrap();
    assert_eq!(web["manifests"].as_array().unwrap().len(), 2);

    // Named targets only; a name that is not there is an error naming what is.
    let (stdout, stderr) = ok(depot(&f, &[]).current_dir(&root).args([
        "bake",
        "--save",
        "-q",
        "--retention",
        "2h",
        "tool-lint",
    ]));
    // Quiet: the build ID on stdout, nothing on stderr (no Building/Saved/Next).
    assert_eq!(stderr, "", "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let shown = f.show(stdout.trim());
    // --retention: kept two hours, not the project's seven days.
    let at = |field: &str| humantime::parse_rfc3339(shown[field].as_str().unwrap()).unwrap();
    let kept = at("expires_at").duration_since(at("created_at")).unwrap();
    assert_eq!(kept.as_secs(), 7200, "{shown}");
    assert_eq!(shown["images"].as_array().unwrap().len(), 1);
    let err = fails(
        depot(&f, &[])
            .current_dir(&root)
            .args(["bake", "--save", "nope"]),
    );
    assert!(err.contains("nope") && err.contains("web"), "{err}");
}

#[test]
fn push_and_load_keep_their_meaning() {
    let f = Fixture::new();
    let ctx = context(&f.dir.path().join("ctx"), &["amd64", "arm64"]);
    let dist = Distribution::start(&f.dir.path().join("dist"), None);
    let insecure = vec![dist.host()];
    let c = ctx.to_str().unwrap();

    // Without --save: buildah pushes straight to the -t names; nothing goes to depot.
    let one = format!("{}/app:one", dist.host());
    let meta = f.dir.path().join("meta.json");
    ok(depot(&f, &insecure)
        .args(["build", "--push", "-t", &one, "--metadata-file"])
        .arg(&meta)
        .arg(c));
    assert_eq!(
        digest_of(&format!("docker://{one}")),
        json_file(&meta)["containerimage.digest"].as_str().unwrap()
    );
    let many = format!("{}/app:many", dist.host());
    ok(depot(&f, &insecure).args([
        "build",
        "--push",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &many,
        c,
    ]));
    let list: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{many}"),
    ]))
    .unwrap();
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2);
    let listed = ok(f.depot().args(["list", "builds", "-o", "json"])).0;
    assert_eq!(
        serde_json::from_str::<Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // --load into the Docker daemon, with and without --save.
    let daemon = PodmanService::start(&f.dir.path().join("podman"), &f.server.host());
    let inspect = |name: &str| {
        ok(Command::new("docker")
            .env("DOCKER_HOST", daemon.docker_host())
            .args([
                "image",
                "inspect",
                "--format",
                "{{.Id}} {{.Architecture}}",
                name,
            ]))
        .0
    };
    ok(depot(&f, &insecure)
        .env("DOCKER_HOST", daemon.docker_host())
        .args(["build", "--load", "-t", "app:dev", c]));
    assert!(inspect("app:dev").trim().ends_with("amd64"));
    let err = fails(depot(&f, &insecure).args([
        "build",
        "--load",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "app:x",
        c,
    ]));
    assert!(err.contains("one platform"), "{err}");

    // --save with --load and --push: from the saved build, by the CLI's own pull and push.
    let promoted = format!("{}/app:promoted", dist.host());
    let err = fails(depot(&f, &insecure).args(["build", "--save", "--push", "-t", "app:x", c]));
    assert!(
        err.contains("name the registry"),
        "refused before building: {err}"
    );
    let (stdout, stderr) = ok(depot(&f, &insecure)
        .env("DOCKER_HOST", daemon.docker_host())
        .args(["build", "--save", "--load", "--push", "-t", &promoted, c]));
    let id = stdout.lines().next().unwrap().trim().to_owned();
    let digest = f.show(&id)["images"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        digest_of(&format!("docker://{promoted}")),
        digest,
        "{stderr}"
    );
    // The daemon's image is the saved one: its ID is the saved manifest's config digest.
    let manifest: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{promoted}"),
    ]))
    .unwrap();
    assert_eq!(
        inspect(&promoted).trim(),
        format!("{} amd64", manifest["config"]["digest"].as_str().unwrap())
    );
}

#[test]
fn the_credential_helper_answers_buildx_from_its_environment() {
    // `depot build --builder buildx` links `docker-credential-depot-build` to the depot binary.
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-depot-build");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_depot"), &helper).unwrap();
    let out = depot_testkit::tools::with_stdin(
        Command::new(&helper)
            .arg("get")
            .env("DEPOT_CREDENTIAL_HOST", "127.0.0.1:5000")
            .env("DEPOT_CREDENTIAL_USERNAME", "x-token")
            .env("DEPOT_CREDENTIAL_SECRET", "the-push-token"),
        "127.0.0.1:5000\n",
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Secret"], "the-push-token");
    let out = depot_testkit::tools::with_stdin(
        Command::new(&helper)
            .arg("get")
            .env("DEPOT_CREDENTIAL_HOST", "127.0.0.1:5000"),
        "ghcr.io\n",
    );
    assert!(!out.status.success());
}

/// Tags of `repository` in the fixture's registry, read with the project token (its pull
/// access covers the project's build cache).
fn tags_of(f: &Fixture, repository: &str) -> Vec<String> {
    let http = reqwest::blocking::Client::new();
    let token = depot_testkit::api::access_token(
        &http,
        &f.server.url(),
        &f.token,
        &format!("repository:{repository}:pull"),
    );
    let v: Value = http
        .get(format!("{}/v2/{repository}/tags/list", f.server.url()))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// How many builds the fixture's project has.
fn builds_of(f: &Fixture) -> usize {
    f.api(
        reqwest::Method::GET,
        &format!("/api/v1/projects/{}/builds", f.project),
        &f.token,
        Value::Null,
    )["builds"]
        .as_array()
        .unwrap()
        .len()
}

/// buildx's flags handed to buildah: a secret (file and environment), an extra build context
/// that the Containerfile copies from, `--pull`, `--network`, `--iidfile` (the saved image's
/// config digest), and the project's own build cache in the depot registry, written by the
/// first build with its push token and read by the second. What buildah cannot do is refused
/// before a build is created, saying what helps.
#[test]
fn build_flags_reach_buildah_and_the_cache_lives_in_the_project() {
    let f = Fixture::new();
    let ctx = f.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY --from=extra shared.txt /shared.txt\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "mine\n").unwrap();
    let extra = f.dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("shared.txt"), "from another context\n").unwrap();
    let secret = f.dir.path().join("npmrc");
    std::fs::write(&secret, "//registry/:_authToken=s3cret\n").unwrap();
    let iid = f.dir.path().join("iid");
    let build = |extra_args: &[&str]| {
        let mut c = depot(&f, &[]);
        c.env("NPM_TOKEN", "t0ken").args([
            "build",
            "--save",
            "--secret",
            &format!("id=npmrc,src={}", secret.display()),
            "--secret",
            "id=npm,env=NPM_TOKEN",
            "--build-context",
            &format!("extra={}", extra.display()),
            "--pull",
            "--network",
            "none",
            "--iidfile",
            iid.to_str().unwrap(),
            "--cache-to",
            "type=registry,mode=max",
            "--cache-from",
            "type=registry",
        ]);
        c.args(extra_args).arg(&ctx);
        c
    };
    let (stdout, stderr) = ok(&mut build(&[]));
    let id = stdout.trim().to_owned();
    assert_eq!(f.show(&id)["state"], "saved");
    // The extra context's file is in the image.
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());
    ok(f.depot().args(["pull", "--output", &oci, &id]));
    let unpacked = f.dir.path().join("unpacked");
    depot_testkit::backends::run_ok(Command::new("umoci").args([
        "raw",
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:{id}", out.display()),
        unpacked.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(unpacked.join("shared.txt")).unwrap(),
        "from another context\n"
    );
    // --iidfile: the image ID, its config's digest.
    let manifest: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", &format!("{oci}:{id}")])).unwrap();
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        manifest["config"]["digest"].as_str().unwrap()
    );
    // The cache went to the project's cache repository, with the build's push token.
    let cache = format!("{}/cache", f.project);
    let cached = tags_of(&f, &cache);
    assert!(!cached.is_empty(), "no cache in {cache}: {stderr}");
    // A second build reads it back.
    let (stdout, stderr) = ok(&mut build(&[]));
    assert_ne!(stdout.trim(), id);
    assert!(stderr.contains("Using cache"), "{stderr}");

    // Refused before a build is created, saying what helps.
    let builds_before = builds_of(&f);
    let err = fails(&mut build(&["--provenance=mode=max"]));
    assert!(
        err.contains("--provenance and --sbom need --builder buildx"),
        "{err}"
    );
    let err = fails(&mut build(&["--cache-to", "type=local,dest=/tmp/x"]));
    assert!(
        err.contains("buildah keeps a build cache only in a registry"),
        "{err}"
    );
    let err = fails(
        depot(&f, &[])
            .args(["build", "--secret", "id=npmrc,src=/no/such/npmrc"])
            .arg(&ctx),
    );
    assert!(
        err.contains("secret npmrc: no file /no/such/npmrc"),
        "{err}"
    );
    let err = fails(
        depot(&f, &[])
            .args(["build", "--cache-to", "type=registry"])
            .arg(&ctx),
    );
    assert!(err.contains("add --save"), "{err}");
    let builds_after = builds_of(&f);
    assert_eq!(builds_before, builds_after, "a refused build was created");
}

/// `depot bake --set` overrides the files (patterns, lists replaced, args and labels) in what is
/// built, and `--print` shows the resolved definition as buildx does, building nothing.
#[test]
fn bake_set_overrides_the_files_and_print_shows_them() {
    let f = Fixture::new();
    let root = f.dir.path().join("bake");
    context(&root.join("app"), &["amd64", "arm64"]);
    std::fs::write(
        root.join("docker-bake.hcl"),
        r#"
group "default" { targets = ["web", "api"] }
target "web" {
  context = "app"
  platforms = ["linux/amd64"]
  tags = ["example.com/web:file"]
  args = { MSG = "from-file" }
}
target "api" {
  inherits = ["web"]
  tags = ["example.com/api:file"]
}
"#,
    )
    .unwrap();
    let sets = [
        "--set",
        "*.platform=linux/arm64",
        "--set",
        "web.tags=example.com/web:set",
        "--set",
        "api.args.MSG=from-set",
        "--set",
        "web.labels.org.example.set=yes",
    ];
    let (printed, _) = ok(f
        .depot()
        .current_dir(&root)
        .args(["bake", "--print"])
        .args(sets));
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        printed,
        serde_json::json!({
            "group": { "default": { "targets": ["web", "api"] } },
            "target": {
                "web": {
                    "context": "app",
                    "dockerfile": "Dockerfile",
                    "args": { "MSG": "from-file" },
                    "labels": { "org.example.set": "yes" },
                    "tags": ["example.com/web:set"],
                    "platforms": ["linux/arm64"],
                },
                "api": {
                    "context": "app",
                    "dockerfile": "Dockerfile",
                    "args": { "MSG": "from-set" },
                    "tags": ["example.com/api:file"],
                    "platforms": ["linux/arm64"],
                },
            }
        })
    );
    let err =
        fails(
            f.depot()
                .current_dir(&root)
                .args(["bake", "--print", "--set", "worker.tags=x"]),
        );
    assert!(
        err.contains("no target matches \"worker\" (building: web, api)"),
        "{err}"
    );

    let (stdout, _) = ok(depot(&f, &[])
        .current_dir(&root)
        .args(["bake", "--save", "--save-tag", "edge"])
        .args(sets));
    let id = stdout.trim().to_owned();
    let shown = f.show(&id);
    assert_eq!(shown["state"], "saved", "{shown}");
    let out = f.dir.path().join("out");
    let oci = format!("oci:{}", out.display());
    ok(f.depot().args(["pull", "--output", &oci, &id]));
    let web = config(&format!("{oci}:{id}-web"));
    assert_eq!(web["architecture"], "arm64");
    assert_eq!(web["config"]["Labels"]["msg"], "from-file");
    assert_eq!(web["config"]["Labels"]["org.example.set"], "yes");
    let api = config(&format!("{oci}:{id}-api"));
    assert_eq!(api["config"]["Labels"]["msg"], "from-set");
    assert_eq!(
        shown["targets"][0]["image_names"],
        serde_json::json!(["example.com/web:set"])
    );
    // Pulled by its save tag, the image is named after the build's -t names too.
    let by_tag = f.dir.path().join("by-tag");
    let by_tag = format!("oci:{}", by_tag.display());
    ok(f.depot().args(["pull", "--output", &by_tag, "edge"]));
    let web_digest = shown["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["target"] == "web")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        digest_of(&format!("{by_tag}:example.com/web:set")),
        web_digest
    );
}
