//! Executing a round's moves: each one is a vAP handover ([`crate::handover::mover`]) to the
//! AP host of the move's target. A move the handover refuses or fails is not made (the
//! mover rolls it back); the caller commits only the moves made and counts the others.

use std::time::Duration;

use serde::Serialize;

use crate::{
    alb::decide::Move,
    handover::{
        ClientMac,
        mover::{MoveError, Mover},
    },
};

/// A move that was made.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    #[serde(flatten)]
    pub decided: Move,
    /// From the start of the handover to the anchor's switch-over (none when the client
    /// was on the target already).
    pub switch_over_ms: Option<f64>,
}

/// A move that was not made.
#[derive(Clone, Debug, Serialize)]
pub struct Failed {
    #[serde(flatten)]
    pub decided: Move,
    pub error: String,
}

/// What became of a round's moves.
#[derive(Debug, Default, Serialize)]
pub struct Executed {
    pub done: Vec<Done>,
    /// Moves not made, with why.
    pub failed: Vec<Failed>,
}

impl Executed {
    /// The moves made, as the state commits them.
    pub fn made(&self) -> Vec<Move> {
        self.done.iter().map(|d| d.decided.clone()).collect()
    }
}

/// A client's name as its MAC address (`02:00:00:00:00:01`): the key of its vAP.
pub fn client_mac(id: &str) -> Result<ClientMac, String> {
    let bytes: Vec<u8> = id
        .split(':')
        .map(|b| {
            if b.len() == 2 {
                u8::from_str_radix(b, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .filter(|v: &Vec<u8>| v.len() == 6)
        .ok_or_else(|| {
            format!(
                "client `{id}` is not a MAC address (aa:bb:cc:dd:ee:ff), so it has no vAP to move"
            )
        })?;
    let mut m = [0; 6];
    m.copy_from_slice(&bytes);
    Ok(ClientMac(m))
}

/// Moves each client with a vAP handover (source forwarding for `grace`), one after the
/// other. A client already on its target counts as moved. `guard` is taken for each
/// client before its move and held until it ends (the per-client lock that keeps a
/// `vdmm-ctl vap move` of the same client out); a client whose guard is refused is not
/// moved.
pub fn execute<G>(
    moves: Vec<Move>,
    mover: &Mover,
    grace: Duration,
    mut guard: impl FnMut(ClientMac) -> Result<G, String>,
) -> Executed {
    let mut out = Executed::default();
    for m in moves {
        let result = client_mac(&m.client).and_then(|mac| {
            let _held = guard(mac)?;
            match mover.move_client(mac, &m.to, grace) {
                Ok(r) => Ok(Some(r.switch_over.as_secs_f64() * 1e3)),
                Err(MoveError::AlreadyThere { .. }) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        });
        match result {
            Ok(switch_over_ms) => out.done.push(Done {
                decided: m,
                switch_over_ms,
            }),
            Err(error) => out.failed.push(Failed { decided: m, error }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        alb::decide::MoveReason,
        handover::{
            VapMode, VapRecord,
            fakes::{FakeAnchor, FakeClock, FakeHost, Journal, Op},
            nodes::ApHost,
        },
    };

    const C: ClientMac = ClientMac([0x02, 0, 0, 0, 0, 0x01]);

    fn mv(client: &str, to: &str) -> Move {
        Move {
            client: client.into(),
            from: "ap1".into(),
            to: to.into(),
            reason: MoveReason::Balance,
            rssi_from: Some(-50.0),
            rssi_to: -55.0,
        }
    }

    #[test]
    fn moves_are_handovers_and_failures_are_kept_apart() {
        assert_eq!(client_mac("02:00:00:00:00:01").unwrap(), C);
        assert!(
            client_mac("c1")
                .unwrap_err()
                .contains("is not a MAC address")
        );
        assert!(client_mac("02:00:00:00:00").is_err() && client_mac("02:00:00:00:00:0g").is_err());

        let journal = Journal::default();
        let hosts = [
            Arc::new(FakeHost::new("ap1", "192.0.2.11", &journal)),
            Arc::new(FakeHost::new("ap2", "192.0.2.12", &journal)),
            Arc::new(FakeHost::new("ap3", "192.0.2.13", &journal)),
        ];
        let vap = VapRecord {
            client: C,
            vap_mac: [0x02, 0x76, 0, 0, 0, 0x10],
            ipv4: Some("10.20.0.10".parse().unwrap()),
            ipv6: None,
            anchor: "192.0.2.1".parse().unwrap(),
        };
        hosts[0]
            .vaps
            .lock()
            .unwrap()
            .insert(C, (vap.clone(), VapMode::Serve));
        let anchor = Arc::new(FakeAnchor::new("gw1", "192.0.2.1", &journal));
        for h in vap.homes() {
            anchor
                .bindings
                .lock()
                .unwrap()
                .insert(h, "192.0.2.11".parse().unwrap());
        }
        let mover = Mover::new(
            hosts
                .iter()
                .map(|h| Arc::clone(h) as Arc<dyn ApHost>)
                .collect(),
            vec![anchor as _],
            Arc::new(FakeClock::default()) as _,
        );
        // ap3 fails to install: that move is rolled back and reported; the others go.
        *hosts[2].fail.lock().unwrap() = Some(Op::Install);
        let mut locks = 0;
        let out = execute(
            vec![
                mv("c1", "ap2"),
                mv("02:00:00:00:00:01", "ap3"),
                mv("02:00:00:00:00:01", "ap2"),
                mv("02:00:00:00:00:01", "ap2"),
                mv("02:00:00:00:00:09", "ap2"),
                mv("02:00:00:00:00:01", "ap1"),
            ],
            &mover,
            Duration::from_millis(10),
            // The last move's client is locked by someone else.
            |_| {
                locks += 1;
                if locks == 5 {
                    Err("locked".to_string())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(out.done.len(), 2, "{out:?}");
        assert!(out.done[0].switch_over_ms.is_some() && out.done[1].switch_over_ms.is_none());
        assert_eq!(out.made().len(), 2);
        assert_eq!(hosts[1].mode(C), Some(VapMode::Serve));
        assert_eq!(hosts[0].mode(C), None);
        let why: Vec<&str> = out.failed.iter().map(|f| f.error.as_str()).collect();
        assert_eq!(why.len(), 4, "{why:?}");
        assert_eq!(why[3], "locked");
        assert_eq!(
            hosts[1].mode(C),
            Some(VapMode::Serve),
            "a locked client stays"
        );
        assert!(why[0].contains("is not a MAC address"));
        assert!(why[1].contains("failed in"), "{}", why[1]);
        assert!(
            why[2].contains("no AP host serves client 02:00:00:00:00:09"),
            "{}",
            why[2]
        );
    }
}
