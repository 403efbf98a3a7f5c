//! A `vdmm-ctl daemon` run by a test or a benchmark: its configuration, state directory and
//! socket named after the namespace it runs in; killed (SIGKILL) when dropped, so a
//! failing test leaves no agent behind. The data plane it manages stays pinned, as it
//! would after a crash; the lab that owns the pin directory removes it.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// One agent process (or none, between a kill and a start).
pub struct AgentProcess {
    pub ctl: PathBuf,
    pub netns: String,
    pub pin_dir: PathBuf,
    /// Holds `config.toml`, `state/`, `agent.log`.
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl AgentProcess {
    /// Writes the configuration (`extra` is appended: more sections, e.g. `[interfaces]`)
    /// with a fresh state directory, without starting the agent.
    pub fn configure(ctl: &Path, netns: &str, pin_dir: &Path, extra: &str) -> Result<Self> {
        Self::configure_with(ctl, netns, pin_dir, "", extra)
    }

    /// [`Self::configure`] with `top` (top-level fields, e.g. `store = "etcd"`) written
    /// before the first section.
    pub fn configure_with(
        ctl: &Path,
        netns: &str,
        pin_dir: &Path,
        top: &str,
        extra: &str,
    ) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("vdmm-agent-{netns}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let socket = PathBuf::from("/run/vdmm").join(format!("{netns}.sock"));
        let config = dir.join("config.toml");
        let metrics = if extra.contains("[metrics]") {
            ""
        } else {
            "[metrics]\nenabled = false\n"
        };
        fs::write(
            &config,
            format!(
                "pin_dir = \"{}\"\nstate_dir = \"{}\"\nlog_level = \"info\"\n\
                 reconcile_interval_secs = 0\n{top}\n{metrics}{extra}\n[api]\nsocket = \"{}\"\n",
                pin_dir.display(),
                dir.join("state").display(),
                socket.display()
            ),
        )?;
        Ok(Self {
            ctl: ctl.to_path_buf(),
            netns: netns.to_string(),
            pin_dir: pin_dir.to_path_buf(),
            dir,
            socket,
            config,
            child: None,
        })
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The state file of the embedded store.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state").join("state.jsonl")
    }

    fn spawn(&self) -> Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))?;
        Command::new(&self.ctl)
            .args(["--netns", &self.netns, "daemon", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {} daemon", self.ctl.display()))
    }

    /// Starts the agent and waits (up to 60 s) until it answers on its socket.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the agent is already running");
        }
        let _ = fs::remove_file(&self.socket);
        let mut child = self.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the agent exited at start ({status}): {}", self.log_tail());
            }
            if self.request(r#"{"request":"status"}"#).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not answer within 60 s: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the agent expecting it to refuse to start; returns its exit status and log.
    pub fn start_expecting_failure(&self) -> Result<(std::process::ExitStatus, String)> {
        let before = fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        let mut child = self.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
                return Ok((status, log[before.len()..].to_string()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent was expected to refuse to start, but it kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, and waits for a clean stop.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait()?;
            if !status.success() {
                bail!("the agent stopped with {status}: {}", self.log_tail());
            }
        }
        Ok(())
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends one raw request line over the socket; returns the answer line.
    pub fn request(&self, line: &str) -> Result<serde_json::Value> {
        let s = UnixStream::connect(&self.socket)
            .with_context(|| format!("connect {}", self.socket.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(600)))?;
        (&s).write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        BufReader::new(&s).read_line(&mut answer)?;
        serde_json::from_str(&answer).with_context(|| format!("answer {answer:?}"))
    }

    /// `result` of a request that must succeed.
    pub fn ok(&self, line: &str) -> Result<serde_json::Value> {
        let v = self.request(line)?;
        if v["ok"] != true {
            bail!("the agent refused {line}: {}", v["error"]);
        }
        Ok(v["result"].clone())
    }

    /// Runs `vdmm-ctl --netns NS --pin-dir PIN --agent-socket SOCK args...`.
    pub fn ctl_raw(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.ctl)
            .args(["--netns", &self.netns, "--pin-dir"])
            .arg(&self.pin_dir)
            .arg("--agent-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .with_context(|| format!("spawn {}", self.ctl.display()))
    }

    /// [`AgentProcess::ctl_raw`] that must succeed; returns stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl_raw(args)?;
        if !out.status.success() {
            bail!(
                "vdmm-ctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
