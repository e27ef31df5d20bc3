//! Real client tools for integration tests: running commands (a missing tool fails the test
//! with a hint to run `.ci/setup`), skopeo, and OCI layouts built offline with umoci.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::oci::{random_bytes, sha256};

/// Runs a command that must succeed; returns its standard output.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    succeeded(cmd, out)
}

/// The standard output of a command that must have succeeded (else both outputs, in the panic).
fn succeeded(cmd: &Command, out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd` with `input` on its standard input (secrets stay off the command line); it must
/// succeed; returns its standard output.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> String {
    let out = with_stdin(cmd, input);
    succeeded(cmd, out)
}

/// Runs a command that must succeed; returns stdout and stderr.
pub fn ok(cmd: &mut Command) -> (String, String) {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs a command that must fail; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Runs `cmd` with `input` on standard input (secrets stay off the command line).
pub fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (run .ci/setup to install it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a command, whatever its outcome (a missing tool fails the test with a hint).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (run .ci/setup to install it): {e}"))
}

pub fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args))
}

/// The raw manifest at `docker://host/reference` (plain HTTP), with `creds` if given.
pub fn remote_manifest(host: &str, reference: &str, creds: Option<&str>) -> Vec<u8> {
    let mut args = vec!["inspect", "--tls-verify=false", "--raw"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    let r = format!("docker://{host}/{reference}");
    args.push(&r);
    skopeo(&args).into_bytes()
}

/// Builds an OCI layout at `dir` with tags `amd64`, `arm64` (each a real filesystem layer) and
/// `multi` (an image index over both). Returns the digests by tag.
pub fn build_layout(dir: &Path) -> Value {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:amd64")]));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{l}:amd64")])
        .arg(&bundle));
    std::fs::write(bundle.join("rootfs/hello.txt"), random_bytes(50_000)).unwrap();
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

/// `podman system service`: a Docker Engine API on a unix socket (vfs storage, its own state
/// under `dir`), treating `registry` as a plain-HTTP registry. Stopped on drop.
pub struct PodmanService {
    child: std::process::Child,
    pub socket: std::path::PathBuf,
}

impl PodmanService {
    pub fn start(dir: &Path, registry: &str) -> PodmanService {
        std::fs::create_dir_all(dir).unwrap();
        let storage = dir.join("storage.conf");
        std::fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let registries = dir.join("registries.conf");
        std::fs::write(
            &registries,
            format!("unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"),
        )
        .unwrap();
        let socket = dir.join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_STORAGE_CONF", &storage)
            .env("CONTAINERS_REGISTRIES_CONF", &registries)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start podman system service (run .ci/setup to install podman)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "podman service did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PodmanService { child, socket }
    }

    /// The `DOCKER_HOST` value for this service.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `depot-gc` (the workspace's build) with `flags` (where the registry's data is), then `args`;
/// it must succeed. What it printed, standard output and error together.
pub fn depot_gc(flags: &[String], args: &[&str]) -> String {
    let out = Command::new(crate::registry::workspace_bin("depot-gc"))
        .args(flags)
        .args(args)
        .output()
        .expect("run depot-gc (cargo build --workspace builds it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "depot-gc {args:?}: {text}");
    text
}
