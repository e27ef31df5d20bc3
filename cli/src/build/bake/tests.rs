//! Bake files of every form, evaluated as buildx would.

use super::*;

fn eval_hcl(text: &str, wanted: &[&str], env: &[(&str, &str)]) -> Result<Vec<Target>> {
    let mut defs = Definitions::default();
    read_hcl(&mut defs, text, Path::new("/w"))?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
    evaluate(&defs, &wanted, &|k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

const FILE: &str = r#"
variable "TAG" { default = "dev" }
variable "REGISTRY" { default = "ghcr.io/acme" }
group "default" { targets = ["web", "api"] }
group "all" { targets = ["default", "tools"] }
target "_common" {
  args = { VERSION = TAG }
  labels = { "org.opencontainers.image.version" = TAG }
}
target "web" {
  inherits = ["_common"]
  context = "web"
  dockerfile = "Containerfile"
  tags = ["${REGISTRY}/web:${TAG}", notequal(TAG, "dev") ? "${REGISTRY}/web:latest" : ""]
  platforms = ["linux/amd64", "linux/arm64"]
}
target "api" {
  inherits = ["_common"]
  context = "api"
  target = "final"
  tags = ["${REGISTRY}/api:${lower(TAG)}"]
}
target "tools" {
  name = "tools-${tool}"
  matrix = { tool = ["lint", "fmt"] }
  args = { TOOL = tool }
  no-cache = true
}
"#;

#[test]
fn hcl_targets_with_variables_groups_and_inherits() {
    let t = eval_hcl(FILE, &[], &[]).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["web", "api"]);
    let web = &t[0];
    assert_eq!(web.context, Path::new("/w/web"));
    assert_eq!(
        web.dockerfile.as_deref(),
        Some(Path::new("/w/web/Containerfile"))
    );
    assert_eq!(web.tags, ["ghcr.io/acme/web:dev"]);
    assert_eq!(web.platforms.len(), 2);
    assert_eq!(web.args, [("VERSION".to_owned(), "dev".to_owned())]);
    assert_eq!(t[1].stage.as_deref(), Some("final"));
    assert!(t[1].platforms.is_empty());
}

#[test]
fn the_environment_overrides_variables() {
    let t = eval_hcl(FILE, &["api"], &[("TAG", "V2")]).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].tags, ["ghcr.io/acme/api:v2"]);
    assert_eq!(t[0].args, [("VERSION".to_owned(), "V2".to_owned())]);
}

#[test]
fn matrix_targets_expand_and_groups_nest() {
    let t = eval_hcl(FILE, &["all"], &[]).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["web", "api", "tools-lint", "tools-fmt"]);
    assert_eq!(t[3].args, [("TOOL".to_owned(), "fmt".to_owned())]);
    assert!(t[3].no_cache);
}

#[test]
fn unknown_names_and_cycles_are_errors() {
    let e = eval_hcl(FILE, &["nope"], &[]).unwrap_err().to_string();
    assert!(
        e.contains("nope") && e.contains("web") && e.contains("tools-fmt"),
        "{e}"
    );
    let t = eval_hcl(FILE, &["tools-fmt"], &[]).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, "tools-fmt");
    let e = eval_hcl(r#"group "a" { targets = ["a"] }"#, &["a"], &[]).unwrap_err();
    assert!(e.to_string().contains("itself"));
    let e = eval_hcl(r#"target "a" { inherits = ["a"] }"#, &[], &[]).unwrap_err();
    assert!(e.to_string().contains("itself"));
    let e = eval_hcl(r#"target "a b" {}"#, &[], &[]).unwrap_err();
    assert!(e.to_string().contains("target name"), "{e}");
    assert!(eval_hcl("target {", &[], &[]).is_err());
}

#[test]
fn json_form_templates_strings() {
    let mut defs = Definitions::default();
    read_json(
        &mut defs,
        r#"{"variable": {"TAG": {"default": "1.0"}},
                "target": {"app": {"context": "src", "tags": ["app:${TAG}"], "platforms": ["linux/arm64"]}}}"#,
        Path::new("/w"),
    )
    .unwrap();
    let t = evaluate(&defs, &[], &|_| None).unwrap();
    assert_eq!(t[0].tags, ["app:1.0"]);
    assert_eq!(t[0].context, Path::new("/w/src"));
}

#[test]
fn compose_services_with_build_sections() {
    let mut defs = Definitions::default();
    read_compose(
        &mut defs,
        r#"
services:
  web:
    image: acme/web:1
    build:
      context: ./web
      dockerfile: Containerfile
      args: ["A=1", "B=2"]
      platforms: [linux/amd64]
  api:
    build: api
  db:
    image: postgres:15
"#,
        Path::new("/proj"),
    )
    .unwrap();
    let t = evaluate(&defs, &[], &|_| None).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["web", "api"]);
    assert_eq!(t[0].context, Path::new("/proj/./web"));
    assert_eq!(t[0].tags, ["acme/web:1"]);
    assert_eq!(t[0].args.len(), 2);
    assert_eq!(t[1].context, Path::new("/proj/api"));
}

#[test]
fn later_files_override_earlier_attributes() {
    let mut defs = Definitions::default();
    let first = "target \"a\" {\n context = \"x\"\n tags = [\"a:1\"]\n}";
    read_hcl(&mut defs, first, Path::new("/w")).unwrap();
    read_hcl(
        &mut defs,
        r#"target "a" { tags = ["a:2"] }"#,
        Path::new("/w"),
    )
    .unwrap();
    let t = evaluate(&defs, &[], &|_| None).unwrap();
    assert_eq!(t[0].tags, ["a:2"]);
    assert_eq!(t[0].context, Path::new("/w/x"));
}
