//! The GitHub Actions in `cli/actions/` (setup, build-push, bake, pull), run here as the
//! Actions runner would run them ([`runner`]), against the real registry, buildah, podman's
//! Docker Engine API and a local OIDC issuer: the pull action's inputs and outputs
//! ([`pull`]), the installer's download, checksum and cache ([`install`]), and a workflow
//! that builds, saves, pulls and promotes with no stored secret ([`keyless`]).

mod install;
mod keyless;
mod pull;
mod runner;

use runner::action;

#[test]
fn every_action_declares_the_inputs_and_outputs_users_expect() {
    let names = |a: &serde_yaml::Value, key: &str| -> Vec<String> {
        a[key]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let pull = action("pull");
    assert_eq!(
        names(&pull, "inputs"),
        ["build-id", "project", "platform", "tags", "targets", "token", "registry", "version"]
    );
    assert_eq!(pull["inputs"]["build-id"]["required"], true);
    assert_eq!(names(&pull, "outputs"), ["images"]);
    let setup = action("setup");
    assert_eq!(
        names(&setup, "inputs"),
        ["version", "oidc", "registry", "project"]
    );
    assert_eq!(names(&setup, "outputs"), ["path", "version"]);
    let build = action("build-push");
    // docker/build-push-action's names, for what `depot build` does.
    for input in [
        "context",
        "file",
        "tags",
        "platforms",
        "build-args",
        "labels",
        "target",
        "no-cache",
        "push",
        "load",
        "save",
        "save-tags",
        "project",
        "registry",
    ] {
        assert!(
            build["inputs"][input].is_mapping(),
            "build-push has no input {input}"
        );
    }
    assert_eq!(build["inputs"]["save"]["default"], "true");
    assert_eq!(
        names(&build, "outputs"),
        ["build-id", "project-id", "digest", "imageid", "metadata"]
    );
    let bake = action("bake");
    for input in [
        "files",
        "targets",
        "save",
        "save-tags",
        "project",
        "registry",
    ] {
        assert!(
            bake["inputs"][input].is_mapping(),
            "bake has no input {input}"
        );
    }
    assert_eq!(
        names(&bake, "outputs"),
        ["build-id", "project-id", "metadata"]
    );
    for name in ["pull", "setup", "build-push", "bake"] {
        assert!(
            runner::action_dir(name).join("README.md").is_file(),
            "{name}/README.md"
        );
    }
}
