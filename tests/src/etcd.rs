//! Real etcd for the cluster tests and benchmark: members from Debian's `etcd-server`,
//! started on loopback with ports nobody else holds and a data directory of their own
//! (on /dev/shm when it exists: etcd fsyncs every write, and a disk would measure the
//! disk). Members can be killed (SIGKILL) and restarted with their data to test faults;
//! dropping the [`EtcdCluster`] kills every member and removes the directories, also
//! when a test panics.

use std::{
    fs,
    io::{Read, Write},
    net::{IpAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::etcd_tls::EtcdTls;

/// One member: its ports, its directory, its process while it runs.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Where `/health` is served over plain HTTP (the client port without TLS).
    health_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members on 127.0.0.1.
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    root: PathBuf,
    /// More addresses the members listen on for clients (besides 127.0.0.1), e.g. the
    /// root-namespace end of veths that agents in namespaces reach etcd through.
    extra_listen: Vec<IpAddr>,
    /// Clients over TLS with client certificates (`https://` endpoints).
    tls: Option<EtcdTls>,
    /// The user `etcdctl` runs as once authentication is enabled (`user:password`).
    admin: Option<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Fails with a clear message when Debian's etcd-server is not installed.
pub fn require_etcd() -> Result<()> {
    match Command::new("etcd").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!(
            "this test needs the `etcd` binary (Debian package etcd-server); `cargo xtask setup` installs it"
        ),
    }
}

/// A loopback port that was free a moment ago (bound, read, released).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdCluster {
    /// Starts `n` members named `<tag>0..` and waits until every one reports healthy.
    pub fn start(tag: &str, n: usize) -> Result<Self> {
        Self::start_listening(tag, n, &[])
    }

    /// [`Self::start`], the members also listening for clients on `extra` (addresses that
    /// exist in this namespace); see [`Self::endpoints_at`].
    pub fn start_listening(tag: &str, n: usize, extra: &[IpAddr]) -> Result<Self> {
        Self::start_with(tag, n, extra, None)
    }

    /// [`Self::start`] with clients over TLS: the members present `tls`'s server
    /// certificate and require a client certificate signed by its CA.
    pub fn start_tls(tag: &str, n: usize, tls: EtcdTls) -> Result<Self> {
        Self::start_with(tag, n, &[], Some(tls))
    }

    fn start_with(tag: &str, n: usize, extra: &[IpAddr], tls: Option<EtcdTls>) -> Result<Self> {
        require_etcd()?;
        let base = if PathBuf::from("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let token = format!(
            "vdmmt-etcd-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let root = base.join(&token);
        fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        let mut members = Vec::new();
        for i in 0..n {
            let client_port = free_port()?;
            members.push(Member {
                name: format!("{tag}{i}"),
                client_port,
                peer_port: free_port()?,
                health_port: if tls.is_some() {
                    free_port()?
                } else {
                    client_port
                },
                dir: root.join(format!("{tag}{i}")),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members,
            initial_cluster,
            token,
            root,
            extra_listen: extra.to_vec(),
            tls,
            admin: None,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_healthy(i, Duration::from_secs(20))?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let m = &self.members[i];
        fs::create_dir_all(&m.dir)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.with_extension("log"))?;
        let scheme = self.scheme();
        let client = format!("{scheme}://127.0.0.1:{}", m.client_port);
        let listen = std::iter::once(client.clone())
            .chain(
                self.extra_listen
                    .iter()
                    .map(|a| format!("{scheme}://{a}:{}", m.client_port)),
            )
            .collect::<Vec<_>>()
            .join(",");
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new("etcd");
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth")
                .arg(format!(
                    "--listen-metrics-urls=http://127.0.0.1:{}",
                    m.health_port
                ));
        }
        let child = cmd
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.dir)
            .args([
                "--listen-client-urls",
                &listen,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Fast elections so a killed leader is replaced within a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start etcd")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Waits until member `i` answers `/health` with `"health":"true"` (it has a leader).
    pub fn wait_healthy(&mut self, i: usize, within: Duration) -> Result<()> {
        let start = Instant::now();
        let port = self.members[i].health_port;
        loop {
            if let Some(child) = self.members[i].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                let log = fs::read_to_string(self.members[i].dir.with_extension("log"))
                    .unwrap_or_default();
                bail!(
                    "etcd member {} exited ({status}); its log ends:\n{}",
                    self.members[i].name,
                    tail(&log, 15)
                );
            }
            if http_health(port).unwrap_or(false) {
                return Ok(());
            }
            if start.elapsed() > within {
                bail!(
                    "etcd member {} not healthy within {within:?}",
                    self.members[i].name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Client URLs of every member (running or not), e.g. `http://127.0.0.1:40123`
    /// (`https://` with TLS).
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client_port))
            .collect()
    }

    /// From now on `etcdctl` authenticates as `user` (once `auth enable`d).
    pub fn set_admin(&mut self, user: &str, password: &str) {
        self.admin = Some(format!("{user}:{password}"));
    }

    /// Client URLs of every member at `addr` (one of the `extra` addresses).
    pub fn endpoints_at(&self, addr: IpAddr) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{addr}:{}", m.client_port))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills member `i` with SIGKILL (no goodbye to its peers or clients).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut c) = self.members[i].child.take() {
            c.kill().context("kill etcd")?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts member `i` again on its data (after [`Self::kill`]); does not wait.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.members[i].child.is_none() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Runs `etcdctl` against every member with `args` and returns its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints().join(",")));
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        if let Some(a) = &self.admin {
            cmd.arg(format!("--user={a}"));
        }
        let out = cmd
            .args(args)
            .output()
            .context("run etcdctl (Debian package etcd-client)")?;
        if !out.status.success() {
            bail!(
                "etcdctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// GET /health on a client port; true when etcd says it is healthy.
fn http_health(port: u16) -> Result<bool> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse()?,
        Duration::from_millis(200),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body.contains("\"health\":\"true\""))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
