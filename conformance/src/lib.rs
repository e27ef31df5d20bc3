//! An OCI distribution-spec v1.1.1 conformance suite, runnable against any registry URL.
//!
//! Each [`Check`] names the spec section it tests and whether the spec requires the behaviour
//! (`must`) or only recommends or allows it (`should`: SHOULD/MAY, or what this project requires
//! beyond the spec). Checks run in their own repositories under a per-run namespace, so a run
//! never depends on what an earlier one left behind.
//!
//! Layout: [`client`] sends requests (and answers auth challenges); `checks/` holds the checks,
//! one file per area of the spec (pushing and pulling blobs and manifests, tags, referrers,
//! deletes, names and errors) and the helpers they share.

mod checks;
pub mod client;

use client::Client;

pub use checks::all as checks;

/// How strongly the spec asks for a behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MUST in the spec.
    Must,
    /// SHOULD or MAY in the spec, or a requirement of this project beyond the spec.
    Should,
}

/// One conformance check.
pub struct Check {
    pub id: &'static str,
    /// The spec section (and requirement) the check tests.
    pub section: &'static str,
    pub level: Level,
    pub run: fn(&mut Ctx) -> Result<(), String>,
}

/// What a check works with.
pub struct Ctx {
    pub client: Client,
    /// Repository name prefix for this run, e.g. `conformance/k3j9x2`.
    pub namespace: String,
    counter: u32,
}

impl Ctx {
    /// A fresh repository for one check.
    pub fn repo(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{}/{}{}", self.namespace, hint, self.counter)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: &'static str,
    pub section: &'static str,
    pub level: Level,
    pub result: Result<(), String>,
}

/// Options for a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub credentials: Option<(String, String)>,
    /// Repository namespace; a random one under `conformance/` by default.
    pub namespace: Option<String>,
    /// Only run checks whose id contains this.
    pub filter: Option<String>,
}

/// Runs every selected check in order, calling `report` after each.
pub fn run(options: &Options, mut report: impl FnMut(&Outcome)) -> anyhow::Result<Vec<Outcome>> {
    let namespace = options.namespace.clone().unwrap_or_else(|| {
        let id: u64 = rand::random();
        format!("conformance/run{:x}", id & 0xff_ffff_ffff)
    });
    let mut ctx = Ctx {
        client: Client::new(&options.url, options.credentials.clone())?,
        namespace,
        counter: 0,
    };
    let mut outcomes = Vec::new();
    for check in checks() {
        if options
            .filter
            .as_deref()
            .is_some_and(|f| !check.id.contains(f))
        {
            continue;
        }
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.run)(&mut ctx)))
                .unwrap_or_else(|_| Err("check panicked".to_owned()));
        let outcome = Outcome {
            id: check.id,
            section: check.section,
            level: check.level,
            result,
        };
        report(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The ids of the failed checks.
pub fn failures(outcomes: &[Outcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.id)
        .collect()
}

/// One report line per check.
pub fn format_outcome(o: &Outcome) -> String {
    let level = match o.level {
        Level::Must => "must",
        Level::Should => "should",
    };
    match &o.result {
        Ok(()) => format!("PASS [{level}] {} ({})", o.id, o.section),
        Err(e) => format!("FAIL [{level}] {} ({}): {e}", o.id, o.section),
    }
}
