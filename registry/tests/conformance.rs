//! Runs the whole conformance suite against the real registry binary: every check must pass.

mod common;

#[test]
fn every_conformance_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    let options = depot_conformance::Options {
        url: server.url(),
        credentials: None,
        namespace: None,
        filter: None,
    };
    let outcomes = depot_conformance::run(&options, |o| {
        println!("{}", depot_conformance::format_outcome(o))
    })
    .unwrap();
    assert!(outcomes.len() >= 60, "only {} checks ran", outcomes.len());
    let failed = depot_conformance::failures(&outcomes);
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}
