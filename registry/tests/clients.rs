//! Real clients against the real binary: skopeo (OCI and Docker schema2, single image and a
//! multi-arch index with `--all`), podman pull/push, the oras Python SDK (an artifact with a
//! subject), docker (through podman's Docker API) and crane. Images are built offline with
//! umoci; every round trip is checked by digest.
//!
//! Token authentication is on, as in production: the clients log in with the admin token and
//! go through the registry's `/token` flow unchanged. `docker` is driven through podman's
//! Docker Engine API (`podman system service`), as CI has no Docker engine.
//!
//! The tools come from `.ci/setup` (Debian's skopeo, umoci, podman; oras from PyPI). A missing
//! tool fails the test rather than skipping it.

use std::process::Command;

use base64::Engine;
use depot_testkit::tools::{
    build_layout, remote_manifest, run, run_with_stdin, skopeo, PodmanService,
};
use depot_testkit::{sha256, Server};
use serde_json::{json, Value};

#[test]
fn skopeo_podman_and_oras_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(&dir.path().join("data"));
    let host = server.host();
    // Log in once, as a user would; skopeo and podman read REGISTRY_AUTH_FILE, oras its env.
    // (This binary holds this one test, so setting the environment races with nothing.)
    let authfile = dir.path().join("auth.json");
    std::env::set_var("REGISTRY_AUTH_FILE", &authfile);
    std::env::set_var("ORAS_USERNAME", "x-token");
    std::env::set_var("ORAS_PASSWORD", server.admin_token());
    run_with_stdin(
        Command::new("skopeo").args([
            "login",
            "--tls-verify=false",
            "-u",
            "x-token",
            "--password-stdin",
            &host,
        ]),
        &server.admin_token(),
    );
    let digests = build_layout(dir.path());
    let layout = dir.path().join("layout");
    let l = layout.to_str().unwrap();

    // skopeo, OCI format: pushed digest equals the layout's, and it comes back intact.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{l}:amd64"),
        &format!("docker://{host}/clients/app:oci"),
    ]);
    assert_eq!(
        json!(sha256(&remote_manifest(&host, "clients/app:oci", None))),
        digests["amd64"]
    );
    let back = dir.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/clients/app:oci"),
        &format!("oci:{}:x", back.display()),
    ]);
    let back_index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(back_index["manifests"][0]["digest"], digests["amd64"]);
    for blob in std::fs::read_dir(back.join("blobs/sha256")).unwrap() {
        let path = blob.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            sha256(&std::fs::read(&path).unwrap()),
            format!("sha256:{name}"),
            "blob pulled back corrupt"
        );
    }

    // skopeo, Docker schema2: converted on the way in, stored and served exactly.
    let out = dir.path().join("schema2.digest");
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--digestfile",
        out.to_str().unwrap(),
        &format!("oci:{l}:amd64"),
        &format!("docker://{host}/clients/app:docker"),
    ]);
    let raw = remote_manifest(&host, "clients/app:docker", None);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(sha256(&raw), std::fs::read_to_string(&out).unwrap().trim());
    let as_dir = dir.path().join("docker-dir");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/clients/app:docker"),
        &format!("dir:{}", as_dir.display()),
    ]);
    assert_eq!(
        sha256(&std::fs::read(as_dir.join("manifest.json")).unwrap()),
        sha256(&raw)
    );

    // skopeo --all: the multi-arch index and both children.
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{l}:multi"),
        &format!("docker://{host}/clients/multi:latest"),
    ]);
    assert_eq!(
        json!(sha256(&remote_manifest(
            &host,
            "clients/multi:latest",
            None
        ))),
        digests["multi"]
    );
    for arch in ["amd64", "arm64"] {
        let child = digests[arch].as_str().unwrap();
        assert_eq!(
            sha256(&remote_manifest(
                &host,
                &format!("clients/multi@{child}"),
                None
            )),
            child
        );
    }

    // podman: pull what skopeo pushed, push it elsewhere, compare the digest podman reports.
    let root = dir.path().join("podman");
    let podman = |args: &[&str]| {
        run(Command::new("podman")
            .arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args))
    };
    podman(&[
        "pull",
        "--tls-verify=false",
        &format!("{host}/clients/app:oci"),
    ]);
    let podman_digest = root.join("pushed.digest");
    podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        podman_digest.to_str().unwrap(),
        &format!("{host}/clients/app:oci"),
        &format!("docker://{host}/clients/podman:v1"),
    ]);
    let pushed = std::fs::read_to_string(&podman_digest).unwrap();
    assert_eq!(
        sha256(&remote_manifest(&host, "clients/podman:v1", None)),
        pushed.trim()
    );
    podman(&["rmi", "-a", "-f"]);
    podman(&[
        "pull",
        "--tls-verify=false",
        &format!("{host}/clients/podman:v1"),
    ]);

    // oras (Python SDK): an artifact whose subject is the image above, listed as its referrer.
    let subject = digests["amd64"].as_str().unwrap();
    let subject_size = remote_manifest(&host, "clients/app:oci", None)
        .len()
        .to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/oras_artifact.py"
    );
    let summary =
        run(Command::new("python3").args([script, &host, "clients/app", subject, &subject_size]));
    let summary: Value = serde_json::from_str(summary.trim()).unwrap();
    assert!(summary["referrers"]
        .as_array()
        .unwrap()
        .contains(&summary["artifact"]));

    // docker, through a Docker-compatible daemon (podman's Docker Engine API): the credentials
    // in docker's config reach the daemon as X-Registry-Auth, and the daemon does the token flow.
    let service = PodmanService::start(&dir.path().join("docker-daemon"), &host);
    let docker_config = dir.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("x-token:{}", server.admin_token()));
    std::fs::write(
        docker_config.join("config.json"),
        json!({ "auths": { host.clone(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    let docker = |args: &[&str]| {
        run(Command::new("docker")
            .env("DOCKER_HOST", service.docker_host())
            .env("DOCKER_CONFIG", &docker_config)
            .args(args))
    };
    docker(&["pull", &format!("{host}/clients/app:oci")]);
    let repo_digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &format!("{host}/clients/app:oci"),
    ]);
    assert!(
        repo_digests.contains(digests["amd64"].as_str().unwrap()),
        "{repo_digests}"
    );
    docker(&[
        "tag",
        &format!("{host}/clients/app:oci"),
        &format!("{host}/clients/docker:v1"),
    ]);
    let pushed = docker(&["push", &format!("{host}/clients/docker:v1")]);
    let stored = sha256(&remote_manifest(&host, "clients/docker:v1", None));
    assert!(
        pushed.contains(&stored),
        "docker push said {pushed}, registry holds {stored}"
    );

    // crane (go-containerregistry): its own login, then copy, digest and list.
    let crane_config = dir.path().join("crane-config");
    let crane = |args: &[&str]| {
        run(Command::new("crane")
            .env("DOCKER_CONFIG", &crane_config)
            .args(args))
    };
    crane(&[
        "auth",
        "login",
        &host,
        "-u",
        "x-token",
        "-p",
        &server.admin_token(),
    ]);
    crane(&[
        "copy",
        "--insecure",
        &format!("{host}/clients/multi:latest"),
        &format!("{host}/clients/crane:v1"),
    ]);
    let copied = crane(&["digest", "--insecure", &format!("{host}/clients/crane:v1")]);
    assert_eq!(json!(copied.trim()), digests["multi"]);
    let tags = crane(&["ls", "--insecure", &format!("{host}/clients/crane")]);
    assert_eq!(tags.trim(), "v1");
}
