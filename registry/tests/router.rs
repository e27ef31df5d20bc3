//! The HTTP surface in process: the application `server::app` builds from the embedded default,
//! driven request by request with `tower::ServiceExt::oneshot` (no socket, no process), and the
//! exact answer to every kind of refusal (status, challenge, JSON envelope) checked against its
//! reviewed snapshot in `tests/snapshots/`: a change to what clients are told shows up in review.

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use depot_registry::config::ServeConfig;
use depot_registry::server;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ZEROS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The registry on a fresh data directory; `auth`: token authentication on (the default).
async fn app(auth: bool) -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::embedded(dir.path());
    config.auth.no_auth = !auth;
    config.gc_interval_secs = 0;
    let state = server::open(&config).await.unwrap();
    (dir, server::app(state))
}

/// One request; the answer as a snapshot-friendly value: status, the headers a client acts
/// on, and the body (JSON, or text).
async fn answer(app: &Router, method: Method, uri: &str, content_type: &str, body: &str) -> Value {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "registry.test");
    if !content_type.is_empty() {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kept: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "content-type" | "www-authenticate" | "retry-after" | "range" | "location"
            )
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    json!({ "status": status, "headers": kept, "body": body })
}

async fn get(app: &Router, uri: &str) -> Value {
    answer(app, Method::GET, uri, "", "").await
}

#[tokio::test]
async fn distribution_api_refusals() {
    let (_dir, app) = app(false).await;
    insta::assert_json_snapshot!(
        "manifest_unknown",
        get(&app, "/v2/team/app/manifests/latest").await
    );
    insta::assert_json_snapshot!(
        "blob_unknown",
        get(&app, &format!("/v2/team/app/blobs/{ZEROS}")).await
    );
    insta::assert_json_snapshot!(
        "digest_invalid",
        get(&app, "/v2/team/app/referrers/sha256:xyz").await
    );
    // A malformed reference names nothing: reads answer 404, not 400.
    insta::assert_json_snapshot!(
        "blob_malformed_digest",
        get(&app, "/v2/team/app/blobs/sha256:xyz").await
    );
    insta::assert_json_snapshot!(
        "manifest_malformed_reference",
        get(&app, "/v2/team/app/manifests/.INVALID_MANIFEST_NAME").await
    );
    insta::assert_json_snapshot!("name_invalid", get(&app, "/v2/Team/App/tags/list").await);
    insta::assert_json_snapshot!(
        "upload_unknown",
        get(&app, "/v2/team/app/blobs/uploads/nonsense").await
    );
    insta::assert_json_snapshot!(
        "manifest_invalid",
        answer(
            &app,
            Method::PUT,
            "/v2/team/app/manifests/v1",
            OCI_MANIFEST,
            "{"
        )
        .await
    );
    let orphan = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": ZEROS, "size": 2 },
        "layers": [],
    });
    insta::assert_json_snapshot!(
        "manifest_blob_unknown",
        answer(
            &app,
            Method::PUT,
            "/v2/team/app/manifests/v1",
            OCI_MANIFEST,
            &orphan.to_string()
        )
        .await
    );
    insta::assert_json_snapshot!("chunk_out_of_order", chunk_out_of_order(&app).await);
    insta::assert_json_snapshot!(
        "method_not_allowed",
        answer(&app, Method::PATCH, "/v2/", "", "").await
    );
    insta::assert_json_snapshot!("path_unknown", get(&app, "/nowhere").await);
    insta::assert_json_snapshot!(
        "metrics_method",
        answer(&app, Method::POST, "/metrics", "", "").await
    );
}

/// Opens an upload, then sends a chunk that does not start where it stands.
async fn chunk_out_of_order(app: &Router) -> Value {
    let opened = answer(app, Method::POST, "/v2/team/app/blobs/uploads/", "", "").await;
    assert_eq!(opened["status"], 202, "{opened}");
    let location = opened["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "location")
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    let request = Request::builder()
        .method(Method::PATCH)
        .uri(&location)
        .header(header::HOST, "registry.test")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_RANGE, "10-19")
        .body(Body::from(vec![0u8; 10]))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let range = response
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    json!({ "status": status, "range": range, "body": body })
}

#[tokio::test]
async fn refusals_with_authentication_on() {
    let (_dir, app) = app(true).await;
    insta::assert_json_snapshot!("v2_without_credentials", get(&app, "/v2/").await);
    insta::assert_json_snapshot!(
        "pull_without_credentials",
        get(&app, "/v2/team/app/manifests/latest").await
    );
    insta::assert_json_snapshot!(
        "api_without_credentials",
        get(&app, "/api/v1/projects").await
    );
    insta::assert_json_snapshot!(
        "api_not_json",
        answer(
            &app,
            Method::POST,
            "/api/v1/projects",
            "text/plain",
            "name=x"
        )
        .await
    );
    insta::assert_json_snapshot!(
        "api_method",
        answer(&app, Method::PUT, "/api/v1/projects", "", "").await
    );
    insta::assert_json_snapshot!(
        "token_without_credentials",
        get(&app, "/token?service=depot-registry").await
    );
}
