//! The pull action: a bake build into the daemon with tags, inputs from the job's
//! environment, and clear failures.

use std::process::Command;

use depot_testkit::cli::Fixture;
use depot_testkit::tools::PodmanService;

use crate::runner::{path_with_depot, text, Job};

#[test]
fn pulls_a_bake_build_into_the_daemon_with_tags() {
    let f = Fixture::new();
    let id = f.bake();
    let daemon = PodmanService::start(&f.dir.path().join("podman"), &f.server.host());
    let work = f.dir.path().join("runner");
    let path = path_with_depot(&work);
    let home = f.home();
    let host = daemon.docker_host();
    let registry = f.server.url();
    let mut job = Job::new(
        &work,
        &[
            ("PATH", path.as_str()),
            ("HOME", home.to_str().unwrap()),
            ("DOCKER_HOST", host.as_str()),
        ],
    );
    let run = job.action(
        "pull",
        &[
            ("build-id", &id),
            ("project", &f.project),
            ("tags", "api=app-api:ci\nweb=app-web:ci"),
            ("targets", "api, web"),
            ("token", &f.token),
            ("registry", &registry),
        ],
    );
    assert!(run.ok(), "{}", run.log());
    assert_eq!(run.steps.len(), 2);
    assert!(text(&run.steps[0].1).contains("on PATH"));
    // The token is masked in the log.
    assert!(text(&run.steps[1].1).contains(&format!("::add-mask::{}", f.token)));
    let images: Vec<&str> = run.outputs["images"].lines().collect();
    assert!(
        images.contains(&"app-api:ci") && images.contains(&"app-web:ci"),
        "{images:?}"
    );
    for name in ["app-api:ci", "app-web:ci"] {
        let out = Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(["image", "inspect", "--format", "{{.Architecture}}", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
    }

    // One target, comma-separated inputs, the registry and token from the job's environment.
    let mut job = Job::new(
        &work,
        &[
            ("PATH", path.as_str()),
            ("HOME", home.to_str().unwrap()),
            ("DOCKER_HOST", host.as_str()),
            ("DEPOT_REGISTRY", registry.as_str()),
            ("DEPOT_TOKEN", f.token.as_str()),
            ("DEPOT_PROJECT_ID", f.project.as_str()),
        ],
    );
    let run = job.action(
        "pull",
        &[
            ("build-id", &id),
            ("targets", "web"),
            ("tags", "web=only-web:1"),
        ],
    );
    assert!(run.ok(), "{}", run.log());
    assert!(
        run.outputs["images"].lines().any(|l| l == "only-web:1"),
        "{:?}",
        run.outputs
    );
    assert!(!run.outputs["images"].contains("api"), "{:?}", run.outputs);
}

#[test]
fn a_missing_build_id_or_a_bad_one_fails_the_step_clearly() {
    let f = Fixture::new();
    let work = f.dir.path().join("runner");
    let path = path_with_depot(&work);
    let registry = f.server.url();
    let home = f.home();
    let mut job = Job::new(
        &work,
        &[
            ("PATH", path.as_str()),
            ("HOME", home.to_str().unwrap()),
            ("DEPOT_REGISTRY", registry.as_str()),
            ("DEPOT_TOKEN", f.token.as_str()),
            ("DEPOT_PROJECT_ID", f.project.as_str()),
        ],
    );
    let run = job.action("pull", &[]);
    let (step, out) = run.steps.last().unwrap();
    assert_eq!(step, "pull");
    assert!(!out.status.success());
    assert!(text(out).contains("::error::the build-id input is required"));

    let run = job.action("pull", &[("build-id", "nosuchbuild")]);
    let (_, out) = run.steps.last().unwrap();
    assert!(!out.status.success());
    assert!(text(out).contains("nosuchbuild"), "{}", text(out));
    assert_eq!(run.outputs["images"], "");
}
