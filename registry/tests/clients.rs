//! Real clients against the real binary: skopeo (OCI and Docker schema2, single image and a
//! multi-arch index with `--all`), podman pull/push, and the oras Python SDK (an artifact with a
//! subject). Images are built offline with umoci; every round trip is checked by digest.
//!
//! The tools come from `.ci/setup` (Debian's skopeo, umoci, podman; oras from PyPI). A missing
//! tool fails the test rather than skipping it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{sha256, Server};
use serde_json::{json, Value};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (run .ci/setup to install it): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args))
}

fn raw_manifest(host: &str, reference: &str) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/{reference}"),
    ])
    .into_bytes()
}

/// Builds an OCI layout at `dir` with tags `amd64`, `arm64` (each a real filesystem layer) and
/// `multi` (an image index over both). Returns the digests by tag.
fn build_layout(dir: &Path) -> Value {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:amd64")]));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{l}:amd64")])
        .arg(&bundle));
    std::fs::write(
        bundle.join("rootfs/hello.txt"),
        common::random_bytes(50_000),
    )
    .unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/os-release"), "ID=depot-test\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &format!("{l}:amd64")])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:amd64"),
        "--architecture",
        "arm64",
        "--tag",
        "arm64",
    ]));

    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let find = |tag: &str, index: &Value| -> Value {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let mut children = Vec::new();
    for (tag, arch) in [("amd64", "amd64"), ("arm64", "arm64")] {
        let mut d = find(tag, &index);
        d.as_object_mut().unwrap().remove("annotations");
        d["platform"] = json!({ "architecture": arch, "os": "linux" });
        children.push(d);
    }
    let multi = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
    }))
    .unwrap();
    let multi_digest = sha256(&multi);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(multi_digest.trim_start_matches("sha256:")),
        &multi,
    )
    .unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": multi_digest, "size": multi.len(),
        "annotations": { "org.opencontainers.image.ref.name": "multi" },
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    json!({
        "amd64": find("amd64", &index)["digest"],
        "arm64": find("arm64", &index)["digest"],
        "multi": multi_digest,
    })
}

#[test]
fn skopeo_podman_and_oras_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let host = server.host();
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
        json!(sha256(&raw_manifest(&host, "clients/app:oci"))),
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
    let raw = raw_manifest(&host, "clients/app:docker");
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
        json!(sha256(&raw_manifest(&host, "clients/multi:latest"))),
        digests["multi"]
    );
    for arch in ["amd64", "arm64"] {
        let child = digests[arch].as_str().unwrap();
        assert_eq!(
            sha256(&raw_manifest(&host, &format!("clients/multi@{child}"))),
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
        sha256(&raw_manifest(&host, "clients/podman:v1")),
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
    let subject_size = raw_manifest(&host, "clients/app:oci").len().to_string();
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
}
