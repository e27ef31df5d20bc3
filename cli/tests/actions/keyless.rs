//! A workflow without any stored secret: a push job on main builds with the build-push action
//! (save) and the job's OIDC identity, a test job pulls the build into Docker after the setup
//! action exchanged its identity, a release job promotes it to another registry with
//! `depot push`; a pull-request job is refused a build but may pull.

use depot_testkit::cli::Fixture;
use depot_testkit::distribution::Distribution;
use depot_testkit::oidc::{Issuer, REQUEST_TOKEN};
use depot_testkit::tools::{skopeo, PodmanService};
use serde_json::{json, Value};

use crate::runner::{path_with_depot, text, Job};

const AUD: &str = "https://registry.depot.test";

struct World {
    f: Fixture,
    issuer: Issuer,
    path: String,
    request_url: String,
}

impl World {
    fn new() -> World {
        let issuer = Issuer::start();
        let f = Fixture::with_issuer(&issuer, AUD);
        f.trust(
            json!({"provider": "github", "owner": "acme", "repository": "app",
            "refs": ["refs/heads/main"], "access": "build"}),
        );
        f.trust(
            json!({"provider": "github", "owner": "acme", "repository": "app", "access": "pull"}),
        );
        let path = path_with_depot(&f.dir.path().join("runner"));
        let request_url = issuer.actions_request_url();
        World {
            f,
            issuer,
            path,
            request_url,
        }
    }

    /// A job of `acme/app` with `permissions: id-token: write`, and no depot token.
    fn job(&self, name: &str, extra: &[(&str, &str)]) -> Job {
        let work = self.f.dir.path().join(name);
        let home = self.f.home();
        let registry = self.f.server.url();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), self.path.clone()),
            ("HOME".into(), home.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                home.join(".config").display().to_string(),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
                self.request_url.clone(),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                REQUEST_TOKEN.into(),
            ),
            ("DEPOT_REGISTRY".into(), registry),
            ("DEPOT_PROJECT_ID".into(), self.f.project.clone()),
        ];
        env.extend(self.f.builder_env(&[]));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Job::new(&work, &env)
    }

    /// A checkout with a Containerfile that needs no network.
    fn checkout(&self, job: &Job) {
        std::fs::write(
            job.work.join("Containerfile"),
            "FROM scratch\nCOPY a.txt /a.txt\n",
        )
        .unwrap();
        std::fs::write(job.work.join("a.txt"), "built in CI\n").unwrap();
    }
}

#[test]
fn build_push_pull_and_promote_with_no_stored_secret() {
    let w = World::new();

    // Job 1, on main: build and save.
    let mut build = w.job("build", &[]);
    w.checkout(&build);
    let run = build.action(
        "build-push",
        &[
            ("platforms", "linux/amd64"),
            ("save-tags", "main"),
            (
                "labels",
                "org.opencontainers.image.source=https://github.com/acme/app",
            ),
        ],
    );
    assert!(run.ok(), "{}", run.log());
    assert!(run.log().contains("Authenticated by OIDC"), "{}", run.log());
    assert_eq!(w.issuer.last_requested_audience().as_deref(), Some(AUD));
    let id = run.outputs["build-id"].clone();
    assert_eq!(id.len(), 16, "{:?}", run.outputs);
    assert_eq!(run.outputs["project-id"], w.f.project);
    assert!(
        run.outputs["digest"].starts_with("sha256:"),
        "{:?}",
        run.outputs
    );
    assert!(
        run.outputs["imageid"].starts_with("sha256:"),
        "{:?}",
        run.outputs
    );
    assert_ne!(run.outputs["imageid"], run.outputs["digest"]);
    let metadata: Value = serde_json::from_str(&run.outputs["metadata"]).unwrap();
    assert_eq!(metadata["depot.build"]["buildID"], id.as_str());
    assert_eq!(
        metadata["containerimage.config.digest"],
        run.outputs["imageid"].as_str()
    );
    assert_eq!(w.f.show(&id)["state"], "saved");

    // Job 2, a test job: the setup action exchanges the identity and exports the token
    // (masked); the pull action then pulls into Docker with it.
    let daemon = PodmanService::start(&w.f.dir.path().join("podman"), &w.f.server.host());
    let host = daemon.docker_host();
    let mut test = w.job("test", &[("DOCKER_HOST", host.as_str())]);
    let run = test.action("setup", &[("oidc", "true")]);
    assert!(run.ok(), "{}", run.log());
    let token = test
        .env("DEPOT_TOKEN")
        .expect("DEPOT_TOKEN exported")
        .to_owned();
    let log = run.log();
    assert!(log.contains(&format!("::add-mask::{token}")), "{log}");
    assert_eq!(
        log.matches(&token).count(),
        1,
        "the token appears only in the mask command"
    );
    let run = test.action("pull", &[("build-id", &id), ("tags", "app:test")]);
    assert!(run.ok(), "{}", run.log());
    assert!(
        run.outputs["images"].lines().any(|l| l == "app:test"),
        "{:?}",
        run.outputs
    );

    // Job 3, the release: promote to another registry; `depot` exchanges by itself.
    let dest = Distribution::start(&w.f.dir.path().join("dest"), None);
    let mut release = w.job("release", &[("DEPOT_INSECURE_REGISTRIES", &dest.host())]);
    let out = release.run(&format!("depot push -t {}/acme/app:v1 {id}", dest.host()));
    assert!(out.status.success(), "{}", text(&out));
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/acme/app:v1", dest.host()),
    ]);
    assert_eq!(depot_testkit::sha256(raw.as_bytes()), run_digest(&w, &id));
}

/// The digest of the build's image, as the registry shows it.
fn run_digest(w: &World, id: &str) -> String {
    w.f.show(id)["images"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_pull_request_job_may_pull_but_never_build() {
    let w = World::new();
    let (id, _) = {
        let mut main = w.job("main", &[]);
        w.checkout(&main);
        let run = main.action("build-push", &[("platforms", "linux/amd64")]);
        assert!(run.ok(), "{}", run.log());
        (run.outputs["build-id"].clone(), ())
    };
    w.issuer
        .set_actions_claims(json!({"event_name": "pull_request",
        "ref": "refs/pull/7/merge", "sub": "repo:acme/app:pull_request",
        "head_ref": "feature", "base_ref": "main"}));
    let mut pr = w.job("pr", &[]);
    w.checkout(&pr);
    let run = pr.action("build-push", &[("platforms", "linux/amd64")]);
    assert!(!run.ok());
    let log = run.log();
    assert!(
        log.contains("Authenticated by OIDC") && log.contains("pull access"),
        "{log}"
    );
    assert!(log.contains("builds are created with"), "{log}");
    // It may pull the build main saved.
    let out = pr.run(&format!(
        "depot pull --output oci:{}/pulled {id}",
        pr.work.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    // Without id-token permission, nothing applies, and the error says which ways exist.
    let mut plain = w.job("plain", &[("ACTIONS_ID_TOKEN_REQUEST_URL", "")]);
    let out = plain.run("depot list builds");
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("id-token: write") && msg.contains("DEPOT_TOKEN"),
        "{msg}"
    );
}

#[test]
fn the_bake_action_saves_every_target_in_one_build() {
    let w = World::new();
    let mut job = w.job("bake", &[]);
    w.checkout(&job);
    std::fs::create_dir_all(job.work.join("ci")).unwrap();
    std::fs::write(
        job.work.join("ci/docker-bake.hcl"),
        r#"
group "default" { targets = ["api", "web"] }
target "api" {
  context = ".."
  dockerfile = "Containerfile"
  platforms = ["linux/amd64"]
}
target "web" {
  inherits = ["api"]
  args = { MSG = "web" }
}
"#,
    )
    .unwrap();
    let run = job.action(
        "bake",
        &[
            ("files", "docker-bake.hcl"),
            ("workdir", "ci"),
            ("save-tags", "main"),
        ],
    );
    assert!(run.ok(), "{}", run.log());
    let id = &run.outputs["build-id"];
    assert_eq!(run.outputs["project-id"], w.f.project);
    let metadata: Value = serde_json::from_str(&run.outputs["metadata"]).unwrap();
    assert_eq!(metadata["depot.build"]["buildID"], id.as_str());
    for target in ["api", "web"] {
        assert!(
            metadata[target]["containerimage.digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:"),
            "{metadata}"
        );
        assert!(
            metadata[target]["containerimage.config.digest"].is_string(),
            "{metadata}"
        );
    }
    let shown = w.f.show(id);
    assert_eq!(shown["state"], "saved");
    assert_eq!(shown["images"].as_array().unwrap().len(), 2, "{shown}");
}
