//! Runs the whole conformance suite against the real registry binary, with token authentication
//! on (the suite answers the Bearer challenges with the admin token) and off: every check must
//! pass both ways.

fn run_suite(server: &depot_testkit::Server, credentials: Option<(String, String)>) {
    let options = depot_conformance::Options {
        url: server.url(),
        credentials,
        namespace: None,
        filter: None,
        // Each early-answer check on 50 fresh connections: a reset race shows up in that many.
        fresh_connections: 50,
    };
    let outcomes = depot_conformance::run(&options, |o| {
        println!("{}", depot_conformance::format_outcome(o))
    })
    .unwrap();
    assert!(outcomes.len() >= 86, "only {} checks ran", outcomes.len());
    let failed = depot_conformance::failures(&outcomes);
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}

#[test]
fn every_conformance_check_passes_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = depot_testkit::Server::start_authed(dir.path());
    run_suite(&server, Some(("x-token".into(), server.admin_token())));
}

#[test]
fn every_conformance_check_passes_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = depot_testkit::Server::start(dir.path());
    run_suite(&server, None);
}
