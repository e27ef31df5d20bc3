//! nginx from Debian as the load balancer in front of several replicas, configured as the
//! README's production section recommends: [`readme_site`] takes the README's `nginx` block
//! and points it at the test's replicas on a loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// `host:port` of each site, in the order they were given.
    pub hosts: Vec<String>,
}

/// The README's recommended nginx site (its one ```` ```nginx ```` block), listening on
/// `127.0.0.1:{port}` and balancing over `upstreams` (`host:port`): the README's own upstream
/// servers and TLS lines are replaced, every other line is kept as written.
pub fn readme_site(port: u16, upstreams: &[String]) -> String {
    let readme = crate::readme::text();
    let block = readme
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README.md has an ```nginx block");
    let mut out = String::new();
    let mut servers_written = false;
    for line in block.lines() {
        let t = line.trim_start();
        if t.starts_with("server ") && t.ends_with(';') {
            if !servers_written {
                for u in upstreams {
                    out.push_str(&format!("    server {u};\n"));
                }
                servers_written = true;
            }
        } else if t.starts_with("listen ") {
            out.push_str(&format!("    listen 127.0.0.1:{port};\n"));
        } else if !t.starts_with("ssl_") && !t.starts_with("server_name") {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        servers_written,
        "the README's nginx block names no upstream servers"
    );
    out
}

impl Nginx {
    /// Starts nginx under `dir` with one site per entry of `sites`, each made by the function
    /// from the port it is to listen on (see [`readme_site`]).
    pub fn start(dir: &Path, sites: &[&dyn Fn(u16) -> String]) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        for attempt in 0.. {
            let ports: Vec<u16> = sites.iter().map(|_| free_port()).collect();
            let body: String = sites
                .iter()
                .zip(&ports)
                .map(|(site, &port)| site(port))
                .collect();
            let d = dir.display();
            let conf = format!(
                "daemon off;\nuser root;\nworker_processes 2;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{body}}}\n"
            );
            let config = dir.join("nginx.conf");
            std::fs::write(&config, conf).unwrap();
            let mut child = Command::new("nginx")
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start nginx (bash .ci/setup installs it): {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if ports
                    .iter()
                    .all(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
                {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return Nginx {
                    child,
                    dir: dir.to_owned(),
                    hosts: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            assert!(attempt < 5, "nginx did not start: {log}");
        }
        unreachable!()
    }

    /// What nginx logged (warnings and errors: upstreams it gave up on, among others).
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too; SIGKILL would leave them running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
