//! The OpenAPI document of `/api/v1`, generated from the handlers' annotations and the wire
//! contract's types (`depot-api-types`), so it cannot drift from what the server does. Served at
//! `GET /api/v1/openapi.json` without credentials.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use depot_api_types as api;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{builds, images, projects, trust};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "depot registry control plane",
        version = "1",
        description = "Projects, project tokens, builds saved under their build ID, pull tokens, and trust policies for keyless CI. Authenticate with `Authorization: Bearer <secret>` (the admin token, a project token, a build's push/pull token, or the credential a CI job's OIDC token was exchanged for at `POST /oidc/token`, which itself takes no credential). Errors use the OCI envelope {\"errors\":[{\"code\",\"message\"}]}. Times are RFC 3339 UTC."
    ),
    servers((url = "/api/v1")),
    paths(
        projects::create, projects::list, projects::show, projects::update, projects::delete,
        projects::create_token, projects::list_tokens, projects::revoke_token,
        projects::pull_token,
        builds::create, builds::list, builds::show, builds::delete, builds::finalize,
        builds::fail, builds::extend, builds::pull_token,
        images::list, images::remove,
        trust::create, trust::list, trust::delete, trust::exchange, trust::config,
    ),
    components(schemas(
        api::ErrorBody, api::ErrorEntry, api::Project, api::ProjectList, api::CreateProject,
        api::ProjectDeleted, api::Image, api::ImageKind, api::ImagePage, api::ImageRemoved,
        api::UpdateProject, api::Token, api::TokenList, api::CreateToken, api::PullTokenRequest,
        api::PullToken, api::BuildState, api::Target, api::TargetRequest, api::CreateBuild,
        api::Build, api::BuildImage, api::PushedImage, api::BuildSummary, api::BuildPage,
        api::FailBuild, api::ExtendBuild, api::OidcProvider, api::TrustAccess,
        api::TrustPolicySpec, api::TrustPolicy, api::TrustPolicyList, api::OidcExchange,
        api::OidcCredential, api::OidcConfig, api::OidcIssuer,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// Every operation takes `Authorization: Bearer <secret>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON (built once).
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

pub(super) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::document;

    /// The generated document, as reviewed: a change to the contract (a type, a field, an
    /// operation) shows up here as a snapshot to accept, never silently.
    #[test]
    fn the_document_is_the_reviewed_contract() {
        insta::assert_snapshot!("openapi.json", document());
    }

    #[test]
    fn every_operation_is_documented_with_its_error() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut ids = std::collections::HashSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for (_, op) in item.as_object().unwrap() {
                assert!(op["responses"]["default"].is_object(), "{op}");
                assert!(ids.insert(op["operationId"].to_string()), "{op}");
            }
        }
        assert_eq!(ids.len(), 24);
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
