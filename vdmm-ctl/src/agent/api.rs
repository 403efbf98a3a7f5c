//! The agent's control API: JSON lines over a Unix socket.
//!
//! A client writes one [`Request`] per line and reads one [`Response`] per line; a
//! connection may carry any number of them. The socket is created with owner-only
//! permissions by default (`api.socket_mode`, 0600) and, behind that, every request that
//! changes anything is refused unless the peer's credentials (`SO_PEERCRED`) say it runs
//! as root or as the agent's own user: with a looser mode or a group, others may read the
//! state but not change it.
//!
//! [`Request`] is one enum with a `request` tag, so features that land later add their
//! own variants (and [`Request::changes_state`] says whether the variant needs the
//! privileged check). [`Client`] is the blocking client `vdmm-ctl` uses.

use std::{
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    state::{Op, addr_text},
    vap_state::VapCreate,
};
use crate::{
    error::{Error, Result},
    vap::Mac,
};

/// A request to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Checks the ops as one batch and applies all of them or none. `pin_dir`, when
    /// given, must be the agent's (so a client aimed at another data plane is refused).
    Apply {
        ops: Vec<Op>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_dir: Option<PathBuf>,
    },
    /// The desired state as JSON.
    State,
    /// The agent's status: pin directory, store, revision, table sizes, last reconcile.
    Status,
    /// Compares everything with the desired state now and repairs what differs.
    Reconcile,
    /// Creates a vAP (the op `vap_create` alone) and answers with it as the maps hold it
    /// (`vdmm-ctl vap show --json`), under `vap`.
    VapCreate {
        vap: VapCreate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_dir: Option<PathBuf>,
    },
    /// Deletes the vAP of `client` and answers with the record it had, under `vap`.
    VapDelete {
        client: Mac,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_dir: Option<PathBuf>,
    },
    /// The vAPs as the maps hold them (`vdmm-ctl vap list --json`).
    VapList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_dir: Option<PathBuf>,
    },
    /// One vAP with its counters (`vdmm-ctl vap show --json`).
    VapShow {
        client: Mac,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_dir: Option<PathBuf>,
    },
    /// Resolves the node's neighbour entry for the next hop toward `addr`, waiting up to
    /// `timeout_ms` (default 2000) until it is usable ([`crate::neigh::resolve`]); answers
    /// `{next_hop, dev, state, elapsed_ms}`. A handover prepares the paths to its target
    /// with it. The desired state does not change.
    NeighResolve {
        #[serde(with = "addr_text")]
        addr: IpAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

impl Request {
    /// True for requests only root (or the agent's own user) may make.
    pub fn changes_state(&self) -> bool {
        match self {
            Request::Apply { .. }
            | Request::Reconcile
            | Request::VapCreate { .. }
            | Request::VapDelete { .. }
            | Request::NeighResolve { .. } => true,
            Request::State
            | Request::Status
            | Request::VapList { .. }
            | Request::VapShow { .. } => false,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Apply { .. } => "apply",
            Request::State => "state",
            Request::Status => "status",
            Request::Reconcile => "reconcile",
            Request::VapCreate { .. } => "vap_create",
            Request::VapDelete { .. } => "vap_delete",
            Request::VapList { .. } => "vap_list",
            Request::VapShow { .. } => "vap_show",
            Request::NeighResolve { .. } => "neigh_resolve",
        }
    }
}

/// The answer to one request: `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            error: None,
            result,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            result: serde_json::Value::Null,
        }
    }

    /// The result, or the agent's error as [`Error::Agent`].
    pub fn into_result(self) -> Result<serde_json::Value> {
        if self.ok {
            Ok(self.result)
        } else {
            Err(Error::Agent(
                self.error.unwrap_or_else(|| "unknown error".into()),
            ))
        }
    }
}

/// `{"request":"apply",...}` as a plain struct: serde reads the ops straight from the
/// text (the internally tagged [`Request`] would first buffer all of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyLine {
    #[allow(dead_code)]
    request: ApplyTag,
    ops: Vec<Op>,
    #[serde(default)]
    pin_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ApplyTag {
    Apply,
}

/// Parses one request line. Apply requests (which may carry a million ops) take a fast
/// path; anything else, and any error, goes through [`Request`] itself, so errors read
/// the same either way.
pub fn parse_request(line: &str) -> std::result::Result<Request, serde_json::Error> {
    if let Ok(a) = serde_json::from_str::<ApplyLine>(line) {
        return Ok(Request::Apply {
            ops: a.ops,
            pin_dir: a.pin_dir,
        });
    }
    serde_json::from_str(line)
}

/// The answer to a line that is not a request.
pub fn bad_request(e: &serde_json::Error) -> Response {
    Response::error(format!("invalid request: {e}"))
}

/// True when a peer with user id `uid` may make `req` of an agent running as `own_uid`.
pub fn allowed(req: &Request, uid: u32, own_uid: u32) -> bool {
    !req.changes_state() || uid == 0 || uid == own_uid
}

/// A blocking client of an agent's socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: PathBuf,
}

/// How long the client waits for an answer (a batch of a million bindings takes seconds).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    /// Connects to the agent at `path`. `Ok(None)` when no agent listens there (no socket
    /// file, or nobody accepting): the caller then works on the maps directly. Any other
    /// failure (e.g. permission denied) is an error, never a silent bypass of the agent.
    pub fn connect(path: &Path) -> Result<Option<Self>> {
        match UnixStream::connect(path) {
            Ok(s) => {
                s.set_read_timeout(Some(CLIENT_TIMEOUT))
                    .and_then(|_| s.set_write_timeout(Some(CLIENT_TIMEOUT)))
                    .map_err(|e| Error::io("cannot set the socket timeouts", e))?;
                let writer = s
                    .try_clone()
                    .map_err(|e| Error::io("cannot clone the socket", e))?;
                Ok(Some(Self {
                    reader: BufReader::new(s),
                    writer,
                    path: path.to_path_buf(),
                }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(
                format!("cannot connect to the agent at {}", path.display()),
                e,
            )),
        }
    }

    /// Sends one request and returns the agent's answer.
    pub fn call(&mut self, req: &Request) -> Result<Response> {
        let mut line = serde_json::to_string(req)
            .map_err(|e| Error::Conflict(format!("cannot encode the request: {e}")))?;
        line.push('\n');
        self.call_raw(&line)
    }

    /// Sends one already encoded request line (ending in a newline).
    pub fn call_raw(&mut self, line: &str) -> Result<Response> {
        let lost = |e| Error::io(format!("the agent at {} went away", self.path.display()), e);
        self.writer.write_all(line.as_bytes()).map_err(lost)?;
        let mut answer = String::new();
        let n = self.reader.read_line(&mut answer).map_err(|e| {
            Error::io(
                format!("no answer from the agent at {}", self.path.display()),
                e,
            )
        })?;
        if n == 0 {
            return Err(Error::Agent(format!(
                "the agent at {} closed the connection without answering",
                self.path.display()
            )));
        }
        serde_json::from_str(&answer)
            .map_err(|e| Error::Agent(format!("cannot read the agent's answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_json_lines_with_a_tag() {
        let r: Request = serde_json::from_str(
            r#"{"request":"apply","ops":[{"op":"peer_add","addr":"192.0.2.1"}]}"#,
        )
        .unwrap();
        assert!(r.changes_state());
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"request":"explode"}"#).is_err());
        let r = parse_request(
            r#"{"request":"vap_create","vap":{"client":"00:16:3e:00:00:01","ipv4":"10.1.0.5","breakout":true}}"#,
        )
        .unwrap();
        assert_eq!(r.name(), "vap_create");
        let e = parse_request(
            r#"{"request":"vap_create","vap":{"client":"00:16:3e:00:00:01","ipv4":"10.1.0.300"}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid address `10.1.0.300`"),
            "{e}"
        );
        assert!(parse_request(r#"{"request":"vap_show","client":"00:16:3e:00:00"}"#).is_err());
        let r = parse_request(r#"{"request":"neigh_resolve","addr":"192.0.2.12"}"#).unwrap();
        assert_eq!(
            r,
            Request::NeighResolve {
                addr: "192.0.2.12".parse().unwrap(),
                timeout_ms: None
            }
        );
        assert!(r.changes_state(), "it sends packets: root only");
        assert!(parse_request(r#"{"request":"neigh_resolve","addr":"192.0.2.300"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(
                r#"{"request":"apply","ops":[{"op":"peer_add","addr":"300.1.2.3"}]}"#
            )
            .unwrap_err()
            .to_string()
            .contains("invalid address `300.1.2.3`")
        );
    }

    #[test]
    fn the_apply_fast_path_reads_what_the_enum_reads() {
        for line in [
            r#"{"request":"apply","ops":[{"op":"peer_add","addr":"192.0.2.1"}]}"#,
            r#"{"ops":[],"request":"apply","pin_dir":"/run/vdmm/x"}"#,
            r#"{"request":"status"}"#,
        ] {
            assert_eq!(
                parse_request(line).unwrap(),
                serde_json::from_str::<Request>(line).unwrap(),
                "{line}"
            );
        }
        for line in [
            r#"{"request":"apply","ops":[{"op":"peer_add","addr":"300.1.2.3"}]}"#,
            r#"{"request":"apply","ops":[],"extra":1}"#,
            r#"{"request":"nope"}"#,
        ] {
            assert_eq!(
                parse_request(line).unwrap_err().to_string(),
                serde_json::from_str::<Request>(line)
                    .unwrap_err()
                    .to_string(),
                "{line}"
            );
        }
    }

    #[test]
    fn only_root_or_the_agent_user_changes_state() {
        let apply = Request::Apply {
            ops: vec![],
            pin_dir: None,
        };
        assert!(allowed(&apply, 0, 0));
        assert!(!allowed(&apply, 65534, 0));
        assert!(allowed(&apply, 1000, 1000));
        assert!(allowed(&Request::Status, 65534, 0));
        assert!(!allowed(&Request::Reconcile, 65534, 0));
        let client: Mac = "00:16:3e:00:00:01".parse().unwrap();
        assert!(!allowed(
            &Request::VapDelete {
                client,
                pin_dir: None
            },
            65534,
            0
        ));
        assert!(allowed(
            &Request::VapShow {
                client,
                pin_dir: None
            },
            65534,
            0
        ));
    }

    #[test]
    fn responses_carry_a_result_or_an_error() {
        let r = Response::ok(serde_json::json!({"revision": 3}));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"ok":true,"result":{"revision":3}}"#
        );
        let e = Response::error("no binding for 10.0.0.0/8");
        assert_eq!(
            e.clone().into_result().unwrap_err().to_string(),
            "no binding for 10.0.0.0/8"
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"ok":false,"error":"no binding for 10.0.0.0/8"}"#
        );
    }
}
