//! Starting a server process that binds its own port and says which in its log: the process
//! keeps the listener it bound, so no test ever races another for a port. Its output is kept
//! (and drained, so it never blocks on a full pipe).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A port free on 127.0.0.1 a moment ago, for the servers that must be told their port before
/// they start (PostgreSQL, Garage's peers, nginx): each start that finds it taken is tried
/// again on another. Every other server binds port 0 and reports it ([`start_reporting`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A started process and the address it reported.
pub struct Reported {
    pub child: Child,
    /// What followed the marker in the log line (up to whitespace or a quote).
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Reported {
    /// The port of the reported `host:port`.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the reported address {:?}", self.addr))
    }
}

/// Starts `cmd` with both outputs piped and waits (up to 30 s) for a line containing `marker`;
/// the address is what follows it. `what` names the program in failures. `echo_stderr` passes
/// the process's standard error on to the test's (a server that logs to stdout, whose stderr
/// says only what went badly wrong).
pub fn start_reporting(
    cmd: &mut Command,
    marker: &'static str,
    what: &str,
    echo_stderr: bool,
) -> Reported {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what} (bash .ci/setup installs it): {e}"));
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    follow(stdout, marker, tx.clone(), logs.clone(), what, false);
    follow(stderr, marker, tx, logs.clone(), what, echo_stderr);
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "{what} did not say where it listens: {:?}",
                logs.lock().unwrap()
            )
        });
    Reported { child, addr, logs }
}

fn follow(
    stream: impl Read + Send + 'static,
    marker: &'static str,
    found: mpsc::Sender<String>,
    logs: Arc<Mutex<Vec<String>>>,
    what: &str,
    echo: bool,
) {
    let name = what.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker).nth(1) {
                let addr = rest
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or("");
                let _ = found.send(addr.to_owned());
            }
            if echo || std::env::var_os("DEPOT_TEST_SHOW_LOGS").is_some() {
                eprintln!("[{name}] {line}");
            }
            logs.lock().unwrap().push(line);
        }
    });
}
