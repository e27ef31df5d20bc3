//! The GitHub pull-action (`cli/actions/pull/action.yml`), run here as the Actions runner would
//! run it: each step's `run` in bash with the step's `env` (its `${{ inputs.* }}` and
//! `${{ steps.*.outputs.* }}` resolved the way Actions resolves them), `GITHUB_ACTION_PATH`,
//! and a fresh `GITHUB_OUTPUT` file per step, parsed as Actions parses it; against the real
//! registry and podman's Docker Engine API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use depot_testkit::cli::Fixture;
use depot_testkit::tools::PodmanService;
use serde_yaml::Value;

fn action_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("actions/pull")
}

fn action() -> Value {
    serde_yaml::from_slice(&std::fs::read(action_dir().join("action.yml")).unwrap()).unwrap()
}

/// `name=value` and `name<<DELIM` ... `DELIM` lines, as the runner reads `GITHUB_OUTPUT`.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        }
    }
    out
}

/// Resolves `${{ inputs.x }}` and `${{ steps.id.outputs.y }}` (the only expressions the action
/// may use; anything else fails the test).
fn resolve(
    expr: &str,
    inputs: &BTreeMap<String, String>,
    steps: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let Some(inner) = expr
        .trim()
        .strip_prefix("${{")
        .and_then(|e| e.strip_suffix("}}"))
    else {
        assert!(!expr.contains("${{"), "unsupported expression in {expr:?}");
        return expr.to_owned();
    };
    let path: Vec<&str> = inner.trim().split('.').collect();
    match path.as_slice() {
        ["inputs", name] => inputs.get(*name).cloned().unwrap_or_default(),
        ["steps", id, "outputs", name] => steps
            .get(*id)
            .and_then(|o| o.get(*name))
            .cloned()
            .unwrap_or_default(),
        _ => panic!("unsupported expression {expr:?}"),
    }
}

struct Run {
    /// Each step's output, in order; the run stops at the first failing step.
    steps: Vec<(String, Output)>,
    /// The action's outputs.
    outputs: BTreeMap<String, String>,
}

/// Runs the action with `given` inputs and the job environment `env`.
fn run_action(given: &[(&str, &str)], env: &[(&str, &str)], work: &Path) -> Run {
    let action = action();
    // Inputs: declared defaults, then what the workflow gives; undeclared inputs are a mistake.
    let declared = action["inputs"].as_mapping().unwrap();
    let mut inputs = BTreeMap::new();
    for (name, spec) in declared {
        let default = spec["default"].as_str().unwrap_or_default();
        inputs.insert(name.as_str().unwrap().to_owned(), default.to_owned());
    }
    for (k, v) in given {
        assert!(inputs.contains_key(*k), "the action has no input {k}");
        inputs.insert((*k).to_owned(), (*v).to_owned());
    }
    assert_eq!(action["runs"]["using"], "composite");
    let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, step) in action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(step["shell"], "bash");
        let script = step["run"].as_str().unwrap();
        assert!(
            !script.contains("${{"),
            "inputs reach scripts through env only"
        );
        let output_file = work.join(format!("output-{i}"));
        std::fs::write(&output_file, "").unwrap();
        let mut cmd = Command::new("bash");
        // What the runner runs for `shell: bash`.
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .env_clear()
            .envs(env.iter().copied())
            .env("GITHUB_ACTION_PATH", action_dir())
            .env("GITHUB_OUTPUT", &output_file)
            .env("RUNNER_TOOL_CACHE", work.join("tool-cache"))
            .current_dir(work);
        if let Some(vars) = step["env"].as_mapping() {
            for (k, v) in vars {
                let v = resolve(v.as_str().unwrap(), &inputs, &step_outputs);
                cmd.env(k.as_str().unwrap(), v);
            }
        }
        let out = cmd.output().unwrap();
        let id = step["id"].as_str().unwrap_or_default().to_owned();
        let failed = !out.status.success();
        step_outputs.insert(
            id.clone(),
            parse_outputs(&std::fs::read_to_string(&output_file).unwrap()),
        );
        steps.push((id, out));
        if failed {
            break;
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, spec) in action["outputs"].as_mapping().unwrap() {
        let value = resolve(spec["value"].as_str().unwrap(), &inputs, &step_outputs);
        outputs.insert(name.as_str().unwrap().to_owned(), value);
    }
    Run { steps, outputs }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A PATH with the depot binary on it (as a runner with the CLI installed has).
fn path_with_depot(work: &Path) -> String {
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("depot");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_depot"), link).unwrap();
    }
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

#[test]
fn declares_the_inputs_and_outputs_users_expect() {
    let action = action();
    let inputs = action["inputs"].as_mapping().unwrap();
    let names: Vec<&str> = inputs.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["build-id", "project", "platform", "tags", "targets", "token", "registry"]
    );
    assert_eq!(action["inputs"]["build-id"]["required"], true);
    assert!(action["outputs"]["images"].is_mapping());
    assert!(action_dir().join("README.md").is_file());
}

#[test]
fn pulls_a_bake_build_into_the_daemon_with_tags() {
    let f = Fixture::new();
    let id = f.bake();
    let daemon = PodmanService::start(&f.dir.path().join("podman"), &f.server.host());
    let work = f.dir.path().join("runner");
    std::fs::create_dir_all(&work).unwrap();
    let path = path_with_depot(&work);
    let home = f.home();
    let host = daemon.docker_host();
    let registry = f.server.url();
    let env = [
        ("PATH", path.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("DOCKER_HOST", host.as_str()),
    ];
    let run = run_action(
        &[
            ("build-id", &id),
            ("project", &f.project),
            ("tags", "api=app-api:ci\nweb=app-web:ci"),
            ("targets", "api, web"),
            ("token", &f.token),
            ("registry", &registry),
        ],
        &env,
        &work,
    );
    for (step, out) in &run.steps {
        assert!(out.status.success(), "step {step}: {}", text(out));
    }
    assert_eq!(run.steps.len(), 2);
    assert!(text(&run.steps[0].1).contains("on PATH"));
    // The token is masked in the log.
    assert!(text(&run.steps[1].1).contains(&format!("::add-mask::{}", f.token)));
    let images: Vec<&str> = run.outputs["images"].lines().collect();
    assert!(
        images.contains(&"app-api:ci") && images.contains(&"app-web:ci"),
        "{images:?}"
    );
    for name in ["app-api:ci", "app-web:ci"] {
        let out = Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(["image", "inspect", "--format", "{{.Architecture}}", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
    }

    // One target, comma-separated inputs, the registry and token from the job's environment.
    let env = [
        ("PATH", path.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("DOCKER_HOST", host.as_str()),
        ("DEPOT_REGISTRY", registry.as_str()),
        ("DEPOT_TOKEN", f.token.as_str()),
        ("DEPOT_PROJECT_ID", f.project.as_str()),
    ];
    let run = run_action(
        &[
            ("build-id", &id),
            ("targets", "web"),
            ("tags", "web=only-web:1"),
        ],
        &env,
        &work,
    );
    let (_, out) = run.steps.last().unwrap();
    assert!(out.status.success(), "{}", text(out));
    assert!(
        run.outputs["images"].lines().any(|l| l == "only-web:1"),
        "{:?}",
        run.outputs
    );
    assert!(!run.outputs["images"].contains("api"), "{:?}", run.outputs);
}

#[test]
fn a_missing_build_id_or_a_bad_one_fails_the_step_clearly() {
    let f = Fixture::new();
    let work = f.dir.path().join("runner");
    std::fs::create_dir_all(&work).unwrap();
    let path = path_with_depot(&work);
    let registry = f.server.url();
    let home = f.home();
    let env = [
        ("PATH", path.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("DEPOT_REGISTRY", registry.as_str()),
        ("DEPOT_TOKEN", f.token.as_str()),
        ("DEPOT_PROJECT_ID", f.project.as_str()),
    ];
    let run = run_action(&[], &env, &work);
    let (step, out) = run.steps.last().unwrap();
    assert_eq!(step, "pull");
    assert!(!out.status.success());
    assert!(text(out).contains("::error::the build-id input is required"));

    let run = run_action(&[("build-id", "nosuchbuild")], &env, &work);
    let (_, out) = run.steps.last().unwrap();
    assert!(!out.status.success());
    assert!(text(out).contains("nosuchbuild"), "{}", text(out));
    assert_eq!(run.outputs["images"], "");
}

#[test]
fn installs_the_cli_from_its_own_checkout_when_none_is_on_path() {
    // No depot on PATH: the action builds it from the repository it lives in, into the tool
    // cache, once; the build shares this workspace's target directory to stay quick.
    let work = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let cargo_bin = Path::new(&cargo).parent().unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", cargo_bin.display());
    let home = std::env::var("HOME").unwrap();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| target.display().to_string());
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let env = [
        ("PATH", path.as_str()),
        ("HOME", home.as_str()),
        ("CARGO_TARGET_DIR", target.as_str()),
        ("RUSTUP_HOME", rustup.as_str()),
        ("CARGO_HOME", cargo_home.as_str()),
    ];
    let run = run_action(&[("build-id", "x")], &env, work.path());
    let (step, out) = &run.steps[0];
    assert_eq!(step, "cli");
    assert!(out.status.success(), "{}", text(out));
    assert!(
        text(out).contains("Installing the depot CLI"),
        "{}",
        text(out)
    );
    // The second job finds it in the tool cache.
    let run = run_action(&[("build-id", "x")], &env, work.path());
    let out = &run.steps[0].1;
    assert!(text(out).contains("cached at"), "{}", text(out));
    let installed = work.path().join("tool-cache/depot-cli");
    let version = Command::new(
        std::fs::read_dir(&installed)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("bin/depot"),
    )
    .arg("--version")
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("depot "));
}
