//! Starts the registries under test on loopback and reads their resource use from `/proc`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A registry process under test.
pub struct Registry {
    pub name: &'static str,
    pub url: String,
    child: Child,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        // Any answer will do: with token auth on, `/v2/` says 401.
        if reqwest::blocking::get(format!("{url}/v2/")).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url} did not come up")
}

impl Registry {
    /// Our registry, embedded default, from the binary at `bin` (a release build), without
    /// authentication: distribution runs without it too, so both are measured alike.
    pub fn depot(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        Self::start_depot(bin, data, &["--no-auth"])
    }

    /// Our registry with token authentication on (its default), for the cost of auth.
    pub fn depot_with_auth(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        Self::start_depot(bin, data, &[])
    }

    fn start_depot(bin: &Path, data: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .env("DEPOT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let r = Registry {
            name: "depot",
            url,
            child,
        };
        wait_ready(&r.url)?;
        Ok(r)
    }

    /// CNCF distribution 2.8 (`docker-registry`), filesystem driver.
    pub fn distribution(data: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = data.join("config.yml");
        std::fs::create_dir_all(data)?;
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n",
                data.join("root").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (bash .ci/setup installs it)")?;
        let url = format!("http://127.0.0.1:{port}");
        let r = Registry {
            name: "distribution",
            url,
            child,
        };
        wait_ready(&r.url)?;
        Ok(r)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the peak resident set size the kernel tracks (`VmHWM`).
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")?;
        Ok(())
    }

    /// Peak resident set size since the last reset, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// User + system CPU time consumed so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').context("stat format")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / clock_ticks())
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
