//! The connection to etcd: built from [`EtcdSettings`] (TLS, authentication, timeouts),
//! with every request bounded by the request deadline and its outcome reported to
//! [`Health`]. Writes go through [`Etcd::ensure_writable`]: while etcd is unreachable they
//! are refused with a clear error after one short probe, never left to hang.

use std::{future::Future, sync::Arc, time::Duration};

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, KeyValue, TlsOptions, Txn,
    TxnResponse,
};

use super::{
    config::EtcdSettings,
    error::{ClusterError, Result},
    health::Health,
    keys::KeyLayout,
};

/// One node's handle on the cluster store; cheap to clone (the channel is shared).
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    layout: KeyLayout,
    health: Arc<Health>,
    timeout: Duration,
    settings: Arc<EtcdSettings>,
}

/// How long a write waits for the probe that tells whether etcd is back.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The first pause before a request that did not reach a member is sent again; it
/// doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_millis(200);
/// The shortest wait for one attempt of a write before it is sent again.
const MIN_WRITE_ATTEMPT: Duration = Duration::from_millis(250);

impl Etcd {
    /// Validates the settings, reads the TLS and password files, and opens the channel.
    /// Without authentication no request is made: a node starts (and forwards) while etcd
    /// is down, and catches up when it comes.
    pub async fn connect(settings: &EtcdSettings) -> Result<Self> {
        settings.validate()?;
        let options = connect_options(settings)?;
        let client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(|e| explained(settings, ClusterError::etcd("connect", e)))?;
        Ok(Self {
            client,
            layout: settings.layout()?,
            health: Arc::new(Health::default()),
            timeout: settings.request_timeout(),
            settings: Arc::new(settings.clone()),
        })
    }

    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    /// The raw client, for watches and lease streams (which outlive one request).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs one request under the deadline and reports its outcome. A request that did
    /// not reach a member or was refused before it was processed (gRPC UNAVAILABLE:
    /// connection refused, member gone, `etcdserver: no leader` during an election) is
    /// sent again after a short pause (10 ms doubling to 200 ms) for as long as the
    /// deadline allows: the channel's balancer keeps a killed member's endpoint in its
    /// set (its reconnect reports it ready and fails the request at once), so sending
    /// again reaches a live member, and the survivors answer again once they have a
    /// leader. When the deadline passes, the last such error is the answer.
    ///
    /// `f` makes the request on a clone of the client; its future owns what it needs.
    pub async fn request<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.request_within(what, self.timeout, None, f).await
    }

    /// [`Self::request`] for a write (a transaction, put or delete), which is also sent
    /// again when one attempt got no answer within a quarter of the deadline (at least
    /// 250 ms): a write a follower forwarded to a leader that was just killed is lost
    /// with it, and its member answers only when its own timeout (seconds) passes. Every
    /// write here may be sent twice: transactions compare revisions (a second apply
    /// fails its compare), puts and deletes set the same state again.
    async fn write<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let attempt = (self.timeout / 4).max(MIN_WRITE_ATTEMPT);
        self.request_within(what, self.timeout, Some(attempt), f)
            .await
    }

    async fn request_within<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        attempt: Option<Duration>,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        let mut unanswered = 0;
        let run = async {
            let mut pause = RETRY_FIRST;
            loop {
                let sent = f(self.client.clone());
                let answer = match attempt {
                    Some(a) => match tokio::time::timeout(a, sent).await {
                        Ok(r) => r,
                        Err(_) => {
                            unanswered += 1;
                            continue;
                        }
                    },
                    None => sent.await,
                };
                match answer {
                    Err(e) if not_delivered(&e) => {
                        last = Some(e);
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                    r => return r,
                }
            }
        };
        let outcome = tokio::time::timeout(deadline, run).await;
        let r = match outcome {
            Ok(r) => r.map_err(|e| explained(&self.settings, ClusterError::etcd(what, e))),
            Err(_) => Err(match last {
                Some(e) => explained(&self.settings, ClusterError::etcd(what, e)),
                None => ClusterError::Etcd {
                    what: what.to_string(),
                    detail: format!(
                        "no answer within {} ms (sent {} times)",
                        deadline.as_millis(),
                        unanswered + 1
                    ),
                },
            }),
        };
        if unanswered > 0 {
            tracing::info!(
                what,
                unanswered,
                "etcd: a write got no answer and was sent again"
            );
        }
        self.health.track(r)
    }

    /// Every record under `prefix` and the revision they were read at.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let mut resp = self
            .request("read", |mut c| {
                let prefix = prefix.to_string();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs(), revision))
    }

    /// Only the keys under `prefix` (no values), e.g. the used addresses of a pool.
    pub async fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        let resp = self
            .request("read keys", |mut c| {
                let prefix = prefix.to_string();
                let options = GetOptions::new().with_prefix().with_keys_only();
                async move { c.get(prefix, Some(options)).await }
            })
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }

    /// One record's value, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let resp = self
            .request("read", |mut c| {
                let key = key.to_string();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Fails fast with [`ClusterError::Unreachable`] while etcd is known to be down,
    /// unless a short probe finds it back.
    pub async fn ensure_writable(&self) -> Result<()> {
        if self.health.is_reachable() {
            return Ok(());
        }
        let root = self.layout.root();
        let probe = |mut c: Client| {
            let root = root.clone();
            let options = GetOptions::new().with_keys_only().with_limit(1);
            async move { c.get(root, Some(options)).await }
        };
        let _ = self
            .request_within("probe", PROBE_TIMEOUT, None, probe)
            .await;
        self.health.check_writable()
    }

    /// Writes one record (refused while etcd is unreachable); returns the revision.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        self.ensure_writable().await?;
        let resp = self
            .write("write", |mut c| {
                let (key, value) = (key.to_string(), value.clone());
                async move { c.put(key, value, None).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Deletes one record (refused while etcd is unreachable); true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.ensure_writable().await?;
        let resp = self
            .write("delete", |mut c| {
                let key = key.to_string();
                async move { c.delete(key, None).await }
            })
            .await?;
        Ok(resp.deleted() > 0)
    }

    /// Runs a transaction (refused while etcd is unreachable).
    pub async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.ensure_writable().await?;
        self.write(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }
}

/// What an etcd error most likely means for these settings (TLS, user), in words; None
/// when the error says it itself.
fn hint(s: &EtcdSettings, detail: &str) -> Option<String> {
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string())
    };
    let user = s.username.as_deref().unwrap_or("(none)");
    if detail.contains("UnknownIssuer") || detail.contains("invalid peer certificate") {
        return Some(format!(
            "the members' certificate is not signed by the CA of ca_file {} (or does not \
             name the endpoint; see server_name)",
            path(&s.ca_file)
        ));
    }
    if detail.contains("authentication failed") {
        return Some(format!(
            "etcd refused user `{user}`: check username and the password in password_file {}",
            path(&s.password_file)
        ));
    }
    if detail.contains("permission denied") {
        return Some(format!(
            "user `{user}` may not use the keys under prefix {} (grant its role readwrite \
             on that prefix)",
            s.prefix
        ));
    }
    if s.uses_tls()
        && s.cert_file.is_none()
        && (detail.contains("broken pipe") || detail.contains("transport error"))
    {
        return Some(
            "the members closed the TLS connection: they may require a client certificate \
             (cert_file and key_file)"
                .into(),
        );
    }
    if !s.uses_tls()
        && detail.contains("transport error")
        && s.endpoints.iter().any(|e| e.starts_with("https"))
    {
        return Some("https:// endpoints need ca_file".into());
    }
    None
}

/// `e` with [`hint`]'s explanation prepended to its detail.
fn explained(s: &EtcdSettings, e: ClusterError) -> ClusterError {
    match e {
        ClusterError::Etcd { what, detail } => match hint(s, &detail) {
            Some(h) => ClusterError::Etcd {
                what,
                detail: format!("{h}: {detail}"),
            },
            None => ClusterError::Etcd { what, detail },
        },
        e => e,
    }
}

/// True when the request never reached a member or was refused before it was processed
/// (gRPC status 14, UNAVAILABLE, which is also etcd's `no leader`), so sending it again
/// cannot apply it twice.
fn not_delivered(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() as i32 == 14)
}

/// The client options of the settings: deadlines, HTTP/2 keep-alive (so a dead member
/// is noticed within about two seconds, also by idle watches), TLS and the user.
fn connect_options(s: &EtcdSettings) -> Result<ConnectOptions> {
    let mut o = ConnectOptions::new()
        .with_timeout(s.request_timeout())
        .with_connect_timeout(s.request_timeout().min(Duration::from_secs(1)))
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if s.uses_tls() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &s.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read("ca_file", ca)?));
        }
        if let (Some(cert), Some(key)) = (&s.cert_file, &s.key_file) {
            tls = tls.identity(Identity::from_pem(
                read("cert_file", cert)?,
                read("key_file", key)?,
            ));
        }
        if let Some(name) = &s.server_name {
            tls = tls.domain_name(name.clone());
        }
        o = o.with_tls(tls);
    }
    if let (Some(user), Some(file)) = (&s.username, &s.password_file) {
        let text = String::from_utf8(read("password_file", file)?).map_err(|_| {
            ClusterError::SettingFile {
                field: "password_file",
                path: file.display().to_string(),
                detail: "not UTF-8 text".into(),
            }
        })?;
        let password = text.lines().next().unwrap_or("").to_string();
        if password.is_empty() {
            return Err(ClusterError::SettingFile {
                field: "password_file",
                path: file.display().to_string(),
                detail: "the first line (the password) is empty".into(),
            });
        }
        o = o.with_user(user.clone(), password);
    }
    Ok(o)
}

fn read(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ClusterError::SettingFile {
        field,
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}
