//! An OCI distribution-spec conformance suite, runnable against any registry URL: v1.1.1 and
//! what the spec's main branch (the coming version) adds or tightens.
//!
//! Each [`Check`] names the spec section it tests, the version that asks for it ([`Spec`]), and
//! how strongly ([`Level`]: MUST, SHOULD, MAY; a requirement of this project beyond the spec
//! counts as SHOULD and says so in its section). Checks run in their own repositories under a
//! per-run namespace, so a run never depends on what an earlier one left behind.
//!
//! Layout: [`client`] sends requests (and answers auth challenges); [`raw`] sends a request the
//! least forgiving way (the whole body before reading a byte) on a fresh connection, for the
//! checks that an early answer is delivered; `checks/` holds the checks, one file per area of
//! the spec (pushing and pulling blobs and manifests, tags, referrers, deletes, names and
//! errors, early answers, content variety) and the helpers they share.

mod checks;
pub mod client;
pub mod raw;

use client::Client;

pub use checks::all as checks;

/// How strongly the spec asks for a behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MUST in the spec.
    Must,
    /// SHOULD in the spec, or a requirement of this project beyond the spec.
    Should,
    /// MAY in the spec: optional, and checked as specified when offered.
    May,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "must",
            Level::Should => "should",
            Level::May => "may",
        }
    }
}

/// Which version of the distribution spec asks for the behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// v1.1.1, the current release (and the image spec it refers to).
    V1_1,
    /// The spec's main branch, the coming version: new or tightened since v1.1.1.
    Main,
}

impl Spec {
    pub fn as_str(self) -> &'static str {
        match self {
            Spec::V1_1 => "v1.1.1",
            Spec::Main => "main",
        }
    }
}

/// One conformance check.
pub struct Check {
    pub id: &'static str,
    /// The spec section (and requirement) the check tests.
    pub section: &'static str,
    pub spec: Spec,
    pub level: Level,
    pub run: fn(&mut Ctx) -> Result<(), String>,
}

/// What a check works with.
pub struct Ctx {
    pub client: Client,
    /// Repository name prefix for this run, e.g. `conformance/k3j9x2`.
    pub namespace: String,
    /// How many fresh connections each early-answer check uses (see [`Options`]).
    pub fresh_connections: usize,
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
    pub spec: Spec,
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
    /// How many times each early-answer check (a request whose body the registry may answer
    /// before reading it) is repeated, each time on a new connection: a server that closes
    /// with the body unread loses some of its answers to connection resets, and a few hundred
    /// tries show it. At least 1.
    pub fresh_connections: usize,
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
        fresh_connections: options.fresh_connections.max(1),
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
            spec: check.spec,
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
    let tag = format!("[{} {}]", o.level.as_str(), o.spec.as_str());
    match &o.result {
        Ok(()) => format!("PASS {tag} {} ({})", o.id, o.section),
        Err(e) => format!("FAIL {tag} {} ({}): {e}", o.id, o.section),
    }
}
