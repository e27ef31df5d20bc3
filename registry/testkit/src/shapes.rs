//! Every shape a blob can be stored in, and a client that pushes each the way that makes it:
//! tiny, exactly one part, many parts, chunked with and without bytes in the closing PUT, the
//! empty blob, pushed twice, mounted from another repository. Destructive paths (collection,
//! reconcile, a build's expiry, a count policy, a deleted project) are tested against all of
//! them, asserting that whatever is still live pulls back intact.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::json;

use crate::oci::{random_bytes, sha256};

const MIB: usize = 1024 * 1024;

/// Blobs of every storage shape, for a store whose S3 part size is `part` bytes.
pub struct Shapes {
    pub config: Vec<u8>,
    pub tiny: Vec<u8>,
    pub tiny_staged: Vec<u8>,
    pub one_part: Vec<u8>,
    pub many_with_final: Vec<u8>,
    pub many_staged: Vec<u8>,
    pub empty: Vec<u8>,
    pub twice: Vec<u8>,
    part: usize,
}

impl Shapes {
    /// New random content; `part` must be at least 5 MiB (S3's smallest part).
    pub fn new(part: usize) -> Shapes {
        Shapes {
            config: br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
            tiny: random_bytes(100),
            tiny_staged: random_bytes(333),
            one_part: random_bytes(part),
            many_with_final: random_bytes(3 * part + 12_345),
            many_staged: random_bytes(2 * part + MIB + 7),
            empty: Vec::new(),
            twice: random_bytes(4096),
            part,
        }
    }

    /// Each blob with what it is; the config first.
    pub fn all(&self) -> Vec<(&'static str, &[u8])> {
        vec![
            ("config (monolithic)", &self.config),
            ("tiny blob (monolithic)", &self.tiny),
            ("tiny blob, chunked, empty closing PUT", &self.tiny_staged),
            ("exactly one part, chunked", &self.one_part),
            (
                "many parts, chunked, bytes in the closing PUT",
                &self.many_with_final,
            ),
            ("many parts, chunked, empty closing PUT", &self.many_staged),
            ("empty blob", &self.empty),
            ("pushed twice", &self.twice),
        ]
    }

    /// Pushes every blob into `repo`, each in its shape.
    pub fn push(&self, p: &Pusher, repo: &str) {
        let part = self.part;
        p.monolithic(repo, &self.config);
        p.monolithic(repo, &self.tiny);
        p.chunked(repo, &self.tiny_staged, &[333], 0);
        p.chunked(repo, &self.one_part, &[part], 0);
        p.chunked(
            repo,
            &self.many_with_final,
            &[2 * MIB, part - MIB, part],
            part - 2 * MIB + 12_345 + MIB,
        );
        p.chunked(
            repo,
            &self.many_staged,
            &[3 * MIB, part - MIB, part - 2 * MIB + 7 + MIB],
            0,
        );
        p.chunked(repo, &self.empty, &[], 0);
        p.monolithic(repo, &self.twice);
    }

    /// Into `repo`: some blobs mounted from `from`, the others pushed again (stored once,
    /// linked twice: the second upload's bytes are dropped, chunked and monolithic alike).
    /// Returns what `repo` now holds, the config first.
    pub fn share(&self, p: &Pusher, repo: &str, from: &str) -> Vec<&[u8]> {
        p.monolithic(repo, &self.config);
        p.mount(repo, from, &self.tiny_staged);
        p.mount(repo, from, &self.many_staged);
        p.chunked(repo, &self.twice, &[1000], 3096);
        p.chunked(repo, &self.tiny, &[100], 0);
        p.monolithic(repo, &self.one_part);
        vec![
            &self.config,
            &self.tiny_staged,
            &self.many_staged,
            &self.twice,
            &self.tiny,
            &self.one_part,
        ]
    }
}

/// Pushes and pulls blobs over `/v2/`, with no credentials or with a registry token's.
pub struct Pusher {
    pub http: Client,
    pub base: String,
    /// A secret (an admin or project token) traded at `/token` for each request's scopes.
    secret: Option<String>,
}

impl Pusher {
    /// A client of a registry without authentication.
    pub fn new(base: &str) -> Pusher {
        Pusher {
            http: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            base: base.to_owned(),
            secret: None,
        }
    }

    /// A client presenting `secret` (traded for an access token per request).
    pub fn with_secret(base: &str, secret: &str) -> Pusher {
        Pusher {
            secret: Some(secret.to_owned()),
            ..Pusher::new(base)
        }
    }

    /// Authorizes `req` for these scopes, when the pusher has a secret.
    fn authed(&self, req: RequestBuilder, scopes: &[String]) -> RequestBuilder {
        let Some(secret) = &self.secret else {
            return req;
        };
        let query: Vec<(&str, &str)> = std::iter::once(("service", "depot-registry"))
            .chain(scopes.iter().map(|s| ("scope", s.as_str())))
            .collect();
        let v: serde_json::Value = self
            .http
            .get(format!("{}/token", self.base))
            .query(&query)
            .basic_auth("x-token", Some(secret))
            .send()
            .unwrap()
            .json()
            .unwrap();
        req.bearer_auth(v["token"].as_str().expect("an access token"))
    }

    fn push_scope(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:push,pull")]
    }

    /// `POST ?digest=`: the whole blob in one request.
    pub fn monolithic(&self, repo: &str, blob: &[u8]) {
        let req = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={}",
                self.base,
                sha256(blob)
            ))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec());
        let resp = self.authed(req, &Self::push_scope(repo)).send().unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    /// `POST`, a `PATCH` per entry of `chunks` (lengths), then the closing `PUT` carrying
    /// `last` more bytes (0: an empty closing PUT).
    pub fn chunked(&self, repo: &str, blob: &[u8], chunks: &[usize], last: usize) {
        let scope = Self::push_scope(repo);
        let req = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base));
        let resp = self.authed(req, &scope).send().unwrap();
        assert_eq!(resp.status(), 202);
        let mut location = self.absolute(resp.headers()["location"].to_str().unwrap());
        let mut offset = 0;
        for &len in chunks {
            let req = self
                .http
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", offset + len - 1))
                .body(blob[offset..offset + len].to_vec());
            let resp = self.authed(req, &scope).send().unwrap();
            assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
            location = self.absolute(resp.headers()["location"].to_str().unwrap());
            offset += len;
        }
        assert_eq!(offset + last, blob.len());
        let sep = if location.contains('?') { '&' } else { '?' };
        let req = self
            .http
            .put(format!("{location}{sep}digest={}", sha256(blob)))
            .header("content-type", "application/octet-stream")
            .body(blob[offset..].to_vec());
        let resp = self.authed(req, &scope).send().unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    /// Mounts `blob` into `repo` from `from` (which must hold it: a 201, not an upload).
    pub fn mount(&self, repo: &str, from: &str, blob: &[u8]) {
        let req = self.http.post(format!(
            "{}/v2/{repo}/blobs/uploads/?mount={}&from={from}",
            self.base,
            sha256(blob)
        ));
        let mut scopes = Self::push_scope(repo);
        scopes.push(format!("repository:{from}:pull"));
        let resp = self.authed(req, &scopes).send().unwrap();
        assert_eq!(resp.status(), 201);
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// The manifest of an image whose layers are `blobs` (the first is its config).
    pub fn manifest_of(blobs: &[&[u8]]) -> Vec<u8> {
        let descriptor = |b: &[u8], media: &str| json!({ "mediaType": media, "digest": sha256(b), "size": b.len() });
        let layers: Vec<_> = blobs[1..]
            .iter()
            .map(|b| descriptor(b, crate::oci::OCI_LAYER))
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::OCI_MANIFEST,
            "config": descriptor(blobs[0], crate::oci::OCI_CONFIG),
            "layers": layers,
        }))
        .unwrap()
    }

    /// Tags an image in `repo` whose layers are `blobs` (the first is its config), with this
    /// pusher's credentials or, when given, `secret`'s (a build's push token).
    pub fn manifest(&self, repo: &str, tag: &str, blobs: &[&[u8]], secret: Option<&str>) {
        let req = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("content-type", crate::oci::OCI_MANIFEST)
            .body(Self::manifest_of(blobs));
        let scope = Self::push_scope(repo);
        let req = match secret {
            Some(s) => Pusher::with_secret(&self.base, s).authed(req, &scope),
            None => self.authed(req, &scope),
        };
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    /// The status of `GET` of a blob, and whether its bytes came back intact.
    pub fn fetch(&self, repo: &str, blob: &[u8]) -> (u16, bool) {
        let req = self
            .http
            .get(format!("{}/v2/{repo}/blobs/{}", self.base, sha256(blob)));
        let resp = self
            .authed(req, &[format!("repository:{repo}:pull")])
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().unwrap();
        (status, status == 200 && sha256(&body) == sha256(blob))
    }

    /// Asserts that `blob` pulls back from `repo`, intact.
    pub fn pulls_back(&self, repo: &str, blob: &[u8], what: &str) {
        let (status, intact) = self.fetch(repo, blob);
        assert_eq!(status, 200, "{what} in {repo} after maintenance");
        assert!(intact, "{what} in {repo} came back different");
    }
}
