//! The world the `depot` CLI is tested in: a real depot registry with auth on, a project and its
//! token, builds saved by skopeo with their push tokens (one platform, two platforms, a bake
//! build), real distribution registries as destinations, and the CLI run with its own HOME and
//! Docker config so nothing of the machine's leaks in.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use depot_api_types as api;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::ApiClient;
use crate::oci::{random_bytes, sha256};
use crate::registry::{workspace_bin, Server};
use crate::tools::{build_layout, skopeo};

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

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Fixture {
    /// Starts the registry, makes a project `app` and its token, and builds the OCI layout.
    pub fn new() -> Fixture {
        Fixture::with_flags(&[])
    }

    /// [`Fixture::new`] with more registry flags (an OIDC issuer to trust, ...).
    pub fn with_flags(extra: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = vec!["--test-clock"];
        flags.extend_from_slice(extra);
        let server = Server::start_with(&dir.path().join("data"), &flags);
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
        let admin = ApiClient::new(&f.server.url(), &f.admin);
        f.project = admin.create_project("app").id;
        f.token = admin
            .create_token(&f.project, "ci")
            .token
            .expect("a new token's secret");
        f
    }

    /// [`Fixture::new`] with a registry trusting `issuer` for every CI provider, requiring
    /// `audience` of their tokens.
    pub fn with_issuer(issuer: &crate::oidc::Issuer, audience: &str) -> Fixture {
        let mut flags = issuer.registry_flags();
        flags.extend(["--oidc-audience".to_owned(), audience.to_owned()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Fixture::with_flags(&flags)
    }

    /// Creates a trust policy of the project (a `TrustPolicySpec` as JSON) with its token.
    pub fn trust(&self, policy: Value) -> String {
        let (status, v) = self.client(&self.token).call(
            Method::POST,
            &format!("/projects/{}/trust-policies", self.project),
            Some(&policy),
        );
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// The control plane as `token`.
    pub fn client(&self, token: &str) -> ApiClient {
        ApiClient::new(&self.server.url(), token)
    }

    /// `path` is the whole `/api/v1/...` path, as the tests spell it; the call must succeed.
    pub fn api(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let path = path.strip_prefix("/api/v1").expect("an /api/v1 path");
        let body = (!body.is_null()).then_some(&body);
        self.client(token).ok(method, path, body)
    }

    /// Creates a build from `spec` (a [`api::CreateBuild`] as JSON); returns its id and push
    /// token.
    pub fn build(&self, spec: Value) -> (String, String) {
        let spec: api::CreateBuild = serde_json::from_value(spec).expect("a build spec");
        let b = self.client(&self.token).create_build(&self.project, &spec);
        (b.id, b.push_token.expect("a push token"))
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

    /// What buildah (`depot build`'s builder) needs here: storage of its own (vfs), chroot
    /// isolation, plain HTTP to `insecure` registries, and a Docker config it can read.
    pub fn builder_env(&self, insecure: &[String]) -> Vec<(String, String)> {
        let store = self.dir.path().join("containers");
        std::fs::create_dir_all(&store).unwrap();
        let storage = store.join("storage.conf");
        std::fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                store.display()
            ),
        )
        .unwrap();
        let registries = store.join("registries.conf");
        let mut conf = String::from("unqualified-search-registries = []\n");
        for host in insecure {
            conf.push_str(&format!(
                "[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ));
        }
        std::fs::write(&registries, conf).unwrap();
        // buildah reads $DOCKER_CONFIG/config.json for credentials and fails if it is missing.
        std::fs::create_dir_all(self.docker_config()).unwrap();
        let config = self.docker_config().join("config.json");
        if !config.exists() {
            std::fs::write(config, "{}").unwrap();
        }
        let path = |p: PathBuf| p.display().to_string();
        vec![
            ("CONTAINERS_STORAGE_CONF".into(), path(storage)),
            ("CONTAINERS_REGISTRIES_CONF".into(), path(registries)),
            ("BUILDAH_ISOLATION".into(), "chroot".into()),
            ("DEPOT_INSECURE_REGISTRIES".into(), insecure.join(",")),
            ("DOCKER_CONFIG".into(), path(self.docker_config())),
        ]
    }

    /// The CLI, pointed at this registry and project, with the project token, and a HOME,
    /// config/cache dirs and Docker config of its own.
    pub fn depot(&self) -> Command {
        let mut c = Command::new(workspace_bin("depot"));
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
