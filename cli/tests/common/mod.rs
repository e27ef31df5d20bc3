//! The world the `depot` CLI is tested in: a real depot registry with auth on, a project and its
//! token, builds saved by skopeo with their push tokens (one platform, two platforms, a bake
//! build), real distribution registries as destinations, and the CLI run with its own HOME and
//! Docker config so nothing of the machine's leaks in.

#![allow(dead_code)]

#[path = "../../../registry/tests/common/mod.rs"]
pub mod registry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use registry::tools::{build_layout, skopeo};
use registry::Server;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

pub use registry::{random_bytes, sha256};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub admin: String,
    pub project: String,
    /// A project token: what CI jobs use.
    pub token: String,
    /// `amd64`, `arm64`, `multi` → digests of the images `build_layout` made.
    pub digests: Value,
    pub layout: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_authed(&dir.path().join("data"));
        let admin = server.admin_token();
        let digests = build_layout(dir.path());
        let layout = dir.path().join("layout").to_str().unwrap().to_owned();
        let mut f = Fixture {
            dir,
            server,
            admin,
            project: String::new(),
            token: String::new(),
            digests,
            layout,
        };
        let admin = f.admin.clone();
        let p = f.api(
            Method::POST,
            "/api/v1/projects",
            &admin,
            json!({ "name": "app" }),
        );
        f.project = p["id"].as_str().unwrap().to_owned();
        let t = f.api(
            Method::POST,
            &format!("/api/v1/projects/{}/tokens", f.project),
            &admin,
            json!({ "name": "ci" }),
        );
        f.token = t["token"].as_str().unwrap().to_owned();
        f
    }

    /// `path` is the whole `/api/v1/...` path, as the tests spell it.
    pub fn api(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let path = path.strip_prefix("/api/v1").expect("an /api/v1 path");
        registry::api(
            &Client::new(),
            &self.server.url(),
            method,
            path,
            token,
            body,
        )
    }

    /// Creates a build; returns its id and push token.
    pub fn build(&self, spec: Value) -> (String, String) {
        let b = self.api(
            Method::POST,
            &format!("/api/v1/projects/{}/builds", self.project),
            &self.token,
            spec,
        );
        (
            b["id"].as_str().unwrap().to_owned(),
            b["push_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Pushes layout image `tag` to `<project>:<reference>` with `push_token`.
    pub fn push(&self, tag: &str, reference: &str, push_token: &str) {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("x-token:{push_token}"),
            &format!("oci:{}:{tag}", self.layout),
            &format!(
                "docker://{}/{}:{reference}",
                self.server.host(),
                self.project
            ),
        ]);
    }

    pub fn show(&self, build: &str) -> Value {
        self.api(
            Method::GET,
            &format!("/api/v1/builds/{build}"),
            &self.token,
            Value::Null,
        )
    }

    /// A saved single-platform (amd64) build, with save tag `save`.
    pub fn single(&self, save: &str) -> String {
        let (id, push) = self.build(json!({ "save_tags": [save] }));
        self.push("amd64", &id, &push);
        assert_eq!(self.show(&id)["state"], "saved");
        id
    }

    /// A saved two-platform build (linux/amd64 + linux/arm64): its id and index digest.
    pub fn multi(&self) -> (String, String) {
        let (id, push) = self.build(json!({ "platforms": ["linux/amd64", "linux/arm64"] }));
        self.push("amd64", &format!("{id}-linux-amd64"), &push);
        self.push("arm64", &format!("{id}-linux-arm64"), &push);
        let shown = self.show(&id);
        assert_eq!(shown["state"], "saved", "{shown}");
        let digest = shown["images"][0]["digest"].as_str().unwrap().to_owned();
        (id, digest)
    }

    /// A saved bake build with targets `api` (amd64 image) and `web` (arm64 image).
    pub fn bake(&self) -> String {
        let (id, push) = self.build(json!({ "targets": ["api", "web"] }));
        self.push("amd64", &format!("{id}-api"), &push);
        self.push("arm64", &format!("{id}-web"), &push);
        assert_eq!(self.show(&id)["state"], "saved");
        id
    }

    /// A saved single-platform build whose layers are `sizes` bytes of random data, pushed
    /// over HTTP directly (faster than compressing that much with umoci). Returns the build
    /// id, the manifest digest and the total size of its blobs.
    pub fn random_image(&self, sizes: &[usize]) -> (String, String, u64) {
        let (id, push) = self.build(json!({}));
        let http = Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let base = self.server.url();
        let repo = &self.project;
        let token: Value = http
            .get(format!("{base}/token"))
            .query(&[
                ("service", "depot-registry"),
                ("scope", &format!("repository:{repo}:pull,push")),
            ])
            .basic_auth("x-token", Some(&push))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let bearer = token["token"].as_str().unwrap().to_owned();
        let upload = |bytes: Vec<u8>| -> (String, u64) {
            let digest = sha256(&bytes);
            let size = bytes.len() as u64;
            let resp = http
                .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
                .bearer_auth(&bearer)
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap());
            (digest, size)
        };
        let mut layers = Vec::new();
        let mut total = 0;
        for &n in sizes {
            let (d, s) = upload(random_bytes(n));
            total += s;
            layers.push(json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s }));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>() },
        }))
        .unwrap();
        let (cd, cs) = upload(config);
        total += cs;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
            "layers": layers,
        }))
        .unwrap();
        let digest = sha256(&manifest);
        let resp = http
            .put(format!("{base}/v2/{repo}/manifests/{id}"))
            .bearer_auth(&bearer)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap());
        assert_eq!(self.show(&id)["state"], "saved");
        (id, digest, total)
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    /// The CLI, pointed at this registry and project, with the project token, and a HOME,
    /// config/cache dirs and Docker config of its own.
    pub fn depot(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_depot"));
        let home = self.home();
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DEPOT_REGISTRY", self.server.url())
            .env("DEPOT_PROJECT_ID", &self.project)
            .env("DEPOT_TOKEN", &self.token);
        c
    }
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
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (run .ci/setup): {e}"))
}

/// A free port on 127.0.0.1 (for servers that cannot report the one they bound).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CNCF distribution registry (`docker-registry`), optionally behind htpasswd Basic auth.
pub struct Distribution {
    child: Option<Child>,
    pub port: u16,
    pub root: PathBuf,
    config: PathBuf,
}

impl Distribution {
    /// `basic`: user and password for htpasswd auth.
    pub fn start(dir: &Path, basic: Option<(&str, &str)>) -> Distribution {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let root = dir.join("storage");
        let mut auth = String::new();
        if let Some((user, pass)) = basic {
            let htpasswd = dir.join("htpasswd");
            let hash = bcrypt::hash(pass, 4).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = dir.join("config.yml");
        // A fixed http secret: upload sessions stay valid across a restart.
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: depot-test-secret\n{auth}",
                root.display()
            ),
        )
        .unwrap();
        let mut d = Distribution {
            child: None,
            port,
            root,
            config,
        };
        d.restart();
        d
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same port and storage; waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (run .ci/setup)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.kill();
    }
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

/// An HTTP proxy in front of `upstream` that answers the first request matching each rule with
/// that rule's status (and `Retry-After: 1`) instead of forwarding it: how a test gets the 429s
/// and 5xx a real registry gives under load. Everything else is forwarded, with `Location`
/// headers rewritten to point back at the proxy.
pub struct FaultProxy {
    pub host: String,
    _runtime: tokio::runtime::Runtime,
}

/// (method, path substring, status to answer once).
pub type Fault = (&'static str, &'static str, u16);

impl FaultProxy {
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::response::Response;
        use std::sync::{Arc, Mutex};

        #[derive(Clone)]
        struct Proxy {
            upstream: String,
            me: String,
            faults: Arc<Mutex<Vec<Fault>>>,
            http: reqwest::Client,
        }

        async fn handle(State(p): State<Proxy>, req: Request) -> Response {
            let method = req.method().to_string();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let fault = {
                let mut faults = p.faults.lock().unwrap();
                let i = faults
                    .iter()
                    .position(|(m, s, _)| *m == method && path.contains(s));
                i.map(|i| faults.remove(i).2)
            };
            if let Some(status) = fault {
                return Response::builder()
                    .status(status)
                    .header("retry-after", "1")
                    .body(Body::from(
                        "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}",
                    ))
                    .unwrap();
            }
            let mut out = p
                .http
                .request(req.method().clone(), format!("http://{}{path}", p.upstream));
            for (k, v) in req.headers() {
                if k != "host" {
                    out = out.header(k, v);
                }
            }
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = out.body(body).send().await.unwrap();
            let mut answer = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k == "location" {
                    let l = v.to_str().unwrap().replace(&p.upstream, &p.me);
                    answer = answer.header(k, l);
                } else if k != "transfer-encoding" && k != "content-length" {
                    answer = answer.header(k, v);
                }
            }
            answer
                .body(Body::from(resp.bytes().await.unwrap()))
                .unwrap()
        }

        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Proxy {
            upstream: upstream.to_owned(),
            me: host.clone(),
            faults: Arc::new(Mutex::new(faults)),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await });
        FaultProxy {
            host,
            _runtime: runtime,
        }
    }
}
