//! The CLI finds a CI job's identity by itself when it has no token, for every provider, and
//! exchanges it with the real registry trusting a local OIDC issuer: GitLab's `id_tokens:`
//! variable, CircleCI's and Buildkite's own CLIs (stand-ins on PATH that print what the real
//! ones would: a token signed by the issuer, for the audience they were asked for), GitHub's
//! request URL; an explicit token wins; with none of them, the error lists the ways.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use depot_testkit::cli::Fixture;
use depot_testkit::oidc::{Issuer, REQUEST_TOKEN};
use depot_testkit::tools::{fails, ok};
use serde_json::json;

const AUD: &str = "https://registry.depot.test";

fn world() -> (Fixture, Issuer) {
    let issuer = Issuer::start();
    let f = Fixture::with_issuer(&issuer, AUD);
    for body in [
        json!({"provider": "github", "owner": "acme", "repository": "app", "access": "build"}),
        json!({"provider": "gitlab", "namespace": "acme", "project": "app", "access": "pull"}),
        json!({"provider": "circleci", "organization_id": "org-5d1c", "project_id": "proj-7f3e", "access": "build"}),
        json!({"provider": "buildkite", "organization": "acme", "pipeline": "app", "access": "pull"}),
    ] {
        f.trust(body);
    }
    (f, issuer)
}

/// A stand-in for a provider's CLI: prints `token` when asked for `expect` in its arguments.
fn program(dir: &Path, name: &str, expect: &str, token: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \"$*\" in *'{expect}'*) echo '{token}' ;; *) echo \"unexpected: $*\" >&2; exit 1 ;; esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn each_provider_s_identity_is_found_and_exchanged() {
    let (f, issuer) = world();
    let list = |envs: &[(&str, &str)]| {
        let mut c = f.depot();
        c.env_remove("DEPOT_TOKEN")
            .envs(envs.iter().copied())
            .args(["list", "builds"]);
        c
    };
    // GitLab: the `id_tokens:` variable.
    let gitlab = issuer.gitlab(AUD, json!({}));
    let (_, err) = ok(&mut list(&[("DEPOT_OIDC_TOKEN", &gitlab)]));
    assert!(
        err.contains("GitLab") && err.contains("pull access"),
        "{err}"
    );
    // CircleCI: its CLI asked for the registry's audience.
    let bin = f.dir.path().join("bin");
    let circle = issuer.circleci("org-5d1c", AUD, json!({}));
    program(&bin, "circleci", &format!("\"aud\":\"{AUD}\""), &circle);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let (_, err) = ok(&mut list(&[("CIRCLECI", "true"), ("PATH", &path)]));
    assert!(
        err.contains("CircleCI") && err.contains("build access"),
        "{err}"
    );
    std::fs::remove_file(bin.join("circleci")).unwrap();
    // Buildkite: `buildkite-agent oidc request-token --audience`.
    let kite = issuer.buildkite(AUD, json!({}));
    program(
        &bin,
        "buildkite-agent",
        &format!("oidc request-token --audience {AUD}"),
        &kite,
    );
    let (_, err) = ok(&mut list(&[("BUILDKITE", "true"), ("PATH", &path)]));
    assert!(
        err.contains("Buildkite") && err.contains("pull access"),
        "{err}"
    );
    // GitHub: the request URL, asked for the audience; `depot oidc-token` prints the credential.
    let url = issuer.actions_request_url();
    let gh = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ];
    let (token, _) = ok(f
        .depot()
        .env_remove("DEPOT_TOKEN")
        .envs(gh)
        .arg("oidc-token"));
    assert_eq!(issuer.last_requested_audience().as_deref(), Some(AUD));
    let creds = f.client(token.trim());
    let (status, _) = creds.call(
        reqwest::Method::GET,
        &format!("/projects/{}/builds", f.project),
        None::<&()>,
    );
    assert_eq!(status, 200);
    // A wrong request token is GitHub's refusal, said as such.
    let err = fails(
        f.depot()
            .env_remove("DEPOT_TOKEN")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong")
            .args(["list", "builds"]),
    );
    assert!(err.contains("id-token: write"), "{err}");
    // An explicit token wins over the job's identity (no exchange is attempted).
    let (_, err) = ok(f.depot().envs(gh).args(["list", "builds"]));
    assert!(!err.contains("Authenticated by OIDC"), "{err}");
    // No token and no identity: the error lists the ways.
    let err = fails(f.depot().env_remove("DEPOT_TOKEN").args(["list", "builds"]));
    assert!(
        err.contains("--token")
            && err.contains("DEPOT_TOKEN")
            && err.contains("depot login")
            && err.contains("id-token: write"),
        "{err}"
    );
    let err = fails(f.depot().env_remove("DEPOT_TOKEN").arg("oidc-token"));
    assert!(err.contains("not a CI job"), "{err}");
}

#[test]
fn trust_policies_through_the_cli() {
    let (f, _issuer) = world();
    let (id, err) = ok(f.depot().args([
        "trust-policy",
        "add",
        "github",
        "--owner",
        "acme",
        "--repository",
        "web",
        "--ref",
        "refs/heads/main",
        "--ref",
        "refs/tags/v*",
        "--environment",
        "production",
        "--access",
        "build",
    ]));
    let id = id.trim().to_owned();
    assert!(id.starts_with("tp"), "{id}");
    assert!(
        err.contains("acme/web refs=refs/heads/main,refs/tags/v* environments=production"),
        "{err}"
    );
    let (listed, _) = ok(f.depot().args(["trust-policy", "list", "--output", "json"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    assert_eq!(listed[4]["id"], id.as_str());
    assert_eq!(
        listed[4]["refs"],
        json!(["refs/heads/main", "refs/tags/v*"])
    );
    let (_, err) = ok(f.depot().args([
        "trust-policy",
        "add",
        "gitlab",
        "--namespace",
        "acme",
        "--project-path",
        "app",
        "--protected-only",
        "--access",
        "pull",
    ]));
    assert!(err.contains("acme/app protected-only"), "{err}");
    ok(f.depot().args(["trust-policy", "rm", &id]));
    let err = fails(f.depot().args(["trust-policy", "rm", &id]));
    assert!(err.contains(&id), "{err}");
    let err = fails(f.depot().args([
        "trust-policy",
        "add",
        "github",
        "--owner",
        "acme",
        "--repository",
        "a/b",
        "--access",
        "pull",
    ]));
    assert!(err.contains("without the owner"), "{err}");
}
