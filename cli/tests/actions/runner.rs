//! The GitHub Actions runner, as far as composite actions of `shell: bash` steps need it: each
//! step's `run` in bash with the step's `env` (its `${{ inputs.* }}` and
//! `${{ steps.*.outputs.* }}` resolved the way Actions resolves them), `GITHUB_ACTION_PATH`,
//! and fresh `GITHUB_OUTPUT`, `GITHUB_ENV` and `GITHUB_PATH` files per step, read as the runner
//! reads them: outputs for later expressions, environment and PATH entries for every later
//! step of the job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

pub fn action_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("actions")
        .join(name)
}

pub fn action(name: &str) -> Value {
    serde_yaml::from_slice(&std::fs::read(action_dir(name).join("action.yml")).unwrap()).unwrap()
}

/// `name=value` and `name<<DELIM` ... `DELIM` lines, as the runner reads `GITHUB_OUTPUT` and
/// `GITHUB_ENV`.
pub fn parse_assignments(text: &str) -> BTreeMap<String, String> {
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

/// Resolves `${{ inputs.x }}` and `${{ steps.id.outputs.y }}` (the only expressions the
/// actions may use; anything else fails the test).
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

pub struct Run {
    /// Each step's output, in order; the run stops at the first failing step.
    pub steps: Vec<(String, Output)>,
    /// The action's outputs.
    pub outputs: BTreeMap<String, String>,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|(_, o)| o.status.success())
    }

    /// Everything the steps printed.
    pub fn log(&self) -> String {
        self.steps
            .iter()
            .map(|(id, o)| format!("--- {id}\n{}", text(o)))
            .collect()
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One job: its environment, and what its steps added to it.
pub struct Job {
    pub work: PathBuf,
    env: BTreeMap<String, String>,
    /// `GITHUB_PATH` entries, newest first.
    path: Vec<String>,
    counter: usize,
}

impl Job {
    /// A job in `work` whose runner environment is `env` (plus what every runner sets).
    pub fn new(work: &Path, env: &[(&str, &str)]) -> Job {
        std::fs::create_dir_all(work.join("temp")).unwrap();
        let mut all: BTreeMap<String, String> = [
            (
                "RUNNER_TOOL_CACHE",
                work.join("tool-cache").display().to_string(),
            ),
            ("RUNNER_TEMP", work.join("temp").display().to_string()),
            ("RUNNER_ARCH", "X64".to_owned()),
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("CI", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Job {
            work: work.to_owned(),
            env: all,
            path: Vec::new(),
            counter: 0,
        }
    }

    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    fn step(
        &mut self,
        script: &str,
        extra: &BTreeMap<String, String>,
        action: Option<&str>,
    ) -> (Output, BTreeMap<String, String>) {
        self.counter += 1;
        let file = |kind: &str| {
            let p = self.work.join(format!("{kind}-{}", self.counter));
            std::fs::write(&p, "").unwrap();
            p
        };
        let (output, env_file, path_file) = (file("output"), file("env"), file("path"));
        let mut cmd = Command::new("bash");
        // What the runner runs for `shell: bash`.
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .env_clear()
            .envs(&self.env)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_ENV", &env_file)
            .env("GITHUB_PATH", &path_file)
            .current_dir(&self.work);
        if let Some(name) = action {
            cmd.env("GITHUB_ACTION_PATH", action_dir(name));
        }
        let mut path = self.path.clone();
        path.extend(self.env.get("PATH").cloned());
        cmd.env("PATH", path.join(":"));
        cmd.envs(extra);
        let out = cmd.output().unwrap();
        self.env.extend(parse_assignments(
            &std::fs::read_to_string(&env_file).unwrap(),
        ));
        for line in std::fs::read_to_string(&path_file).unwrap().lines().rev() {
            if !line.trim().is_empty() {
                self.path.insert(0, line.trim().to_owned());
            }
        }
        let outputs = parse_assignments(&std::fs::read_to_string(&output).unwrap());
        (out, outputs)
    }

    /// A plain `run:` step of the workflow.
    pub fn run(&mut self, script: &str) -> Output {
        self.step(script, &BTreeMap::new(), None).0
    }

    /// `uses: ./cli/actions/<name>` `with: given`.
    pub fn action(&mut self, name: &str, given: &[(&str, &str)]) -> Run {
        let action = action(name);
        // Inputs: declared defaults, then what the workflow gives; undeclared inputs are a mistake.
        let declared = action["inputs"].as_mapping().unwrap();
        let mut inputs = BTreeMap::new();
        for (input, spec) in declared {
            let default = spec["default"].as_str().unwrap_or_default();
            inputs.insert(input.as_str().unwrap().to_owned(), default.to_owned());
        }
        for (k, v) in given {
            assert!(inputs.contains_key(*k), "{name} has no input {k}");
            inputs.insert((*k).to_owned(), (*v).to_owned());
        }
        assert_eq!(action["runs"]["using"], "composite");
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut steps = Vec::new();
        for step in action["runs"]["steps"].as_sequence().unwrap() {
            assert_eq!(step["shell"], "bash");
            let script = step["run"].as_str().unwrap();
            assert!(
                !script.contains("${{"),
                "inputs reach scripts through env only"
            );
            let mut extra = BTreeMap::new();
            if let Some(vars) = step["env"].as_mapping() {
                for (k, v) in vars {
                    let v = resolve(v.as_str().unwrap(), &inputs, &step_outputs);
                    extra.insert(k.as_str().unwrap().to_owned(), v);
                }
            }
            let (out, outputs) = self.step(script, &extra, Some(name));
            let id = step["id"].as_str().unwrap_or_default().to_owned();
            let failed = !out.status.success();
            step_outputs.insert(id.clone(), outputs);
            steps.push((id, out));
            if failed {
                break;
            }
        }
        let mut outputs = BTreeMap::new();
        for (output, spec) in action["outputs"].as_mapping().unwrap() {
            let value = resolve(spec["value"].as_str().unwrap(), &inputs, &step_outputs);
            outputs.insert(output.as_str().unwrap().to_owned(), value);
        }
        Run { steps, outputs }
    }
}

/// A PATH with the depot binary on it (as a runner with the CLI installed has).
pub fn path_with_depot(work: &Path) -> String {
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("depot");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_depot"), link).unwrap();
    }
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// A PATH without depot (a stock runner).
pub const STOCK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
