//! The traffic a handover is measured with, from the correspondent to a mobile node:
//!
//! - a sequenced UDP stream at a fixed rate (each datagram carries its sequence number;
//!   the sender keeps every send time, the receiver every kernel receive time from
//!   `SO_TIMESTAMPNS`, so a busy receiving thread does not show up as a gap);
//! - a paced TCP transfer (one segment a millisecond) whose reader records when data
//!   arrived, for the longest stall; retransmission timeouts are read from the
//!   namespaces' TCP counters (`TcpExt: TCPTimeouts`).
//!
//! All times are `CLOCK_REALTIME` nanoseconds ([`now_ns`]), the clock of the kernel's
//! receive timestamps.

use std::{
    io::{Read, Write},
    mem,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::analysis::{Arrival, Sent};
use crate::{
    lab::{in_netns, join},
    netns::Netns,
};

/// `CLOCK_REALTIME` in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `deadline` (ns, [`now_ns`]'s clock) with the timer slack lowered, so the
/// pacing holds to some 10 µs.
fn sleep_until(deadline: u64) {
    let now = now_ns();
    if deadline > now + 20_000 {
        thread::sleep(Duration::from_nanos(deadline - now - 10_000));
    }
    while now_ns() < deadline {
        std::hint::spin_loop();
    }
}

const PAYLOAD: usize = 64;

/// A running UDP stream; [`UdpStream::finish`] waits for it.
pub struct UdpStream {
    sender: JoinHandle<Result<Sent>>,
    receiver: JoinHandle<Result<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    pub start: u64,
}

/// Starts `rate` datagrams/s for `duration` from `from` to `dst` (an address of `to`).
pub fn udp_stream(
    from: &Netns,
    to: &Netns,
    dst: SocketAddr,
    rate: u32,
    duration: Duration,
) -> Result<UdpStream> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = mpsc::channel();
    let stop_rx = Arc::clone(&stop);
    let receiver = in_netns(to, move || {
        let sock = UdpSocket::bind(dst).with_context(|| format!("bind {dst}"))?;
        let fd = sock.as_raw_fd();
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        ready_tx.send(()).ok();
        let mut arrivals = Vec::with_capacity(rate as usize * (duration.as_secs() as usize + 2));
        let mut buf = [0u8; 2048];
        while !stop_rx.load(Ordering::Relaxed) {
            if let Some((n, at)) = recv_stamped(fd, &mut buf)?
                && n >= 8
            {
                let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                arrivals.push(Arrival { seq, at });
            }
        }
        arrivals.sort_by_key(|a| a.at);
        Ok(arrivals)
    });
    ready
        .recv_timeout(Duration::from_secs(5))
        .context("the UDP receiver did not start")?;
    let start = now_ns() + 10_000_000;
    let sender = in_netns(from, move || {
        let sock = UdpSocket::bind(if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        sock.connect(dst)?;
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0, 0, 0) };
        let period = 1_000_000_000 / rate as u64;
        let count = duration.as_nanos() as u64 / period;
        let mut sent = Sent {
            at: Vec::with_capacity(count as usize),
        };
        let mut buf = [0u8; PAYLOAD];
        for seq in 0..count {
            sleep_until(start + seq * period);
            buf[..8].copy_from_slice(&seq.to_be_bytes());
            sent.at.push(now_ns());
            // A send error (e.g. no route for a moment) is a lost datagram, not a failure.
            let _ = sock.send(&buf);
        }
        Ok(sent)
    });
    Ok(UdpStream {
        sender,
        receiver,
        stop,
        start,
    })
}

impl UdpStream {
    /// Waits for the sender, lets late datagrams arrive for `drain`, stops the receiver.
    pub fn finish(self, drain: Duration) -> Result<(Sent, Vec<Arrival>)> {
        let sent = join(self.sender).context("UDP sender")?;
        thread::sleep(drain);
        self.stop.store(true, Ordering::Relaxed);
        let arrivals = join(self.receiver).context("UDP receiver")?;
        Ok((sent, arrivals))
    }
}

fn setsockopt(fd: i32, level: i32, opt: i32, v: libc::c_int) -> Result<()> {
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc != 0 {
        bail!("setsockopt({opt}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram with its `SO_TIMESTAMPNS` receive time; `None` on the read timeout.
fn recv_stamped(fd: i32, buf: &mut [u8]) -> Result<Option<(usize, u64)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ok(None),
            std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e).context("recvmsg"),
        };
    }
    let mut at = now_ns();
    // SAFETY: walking the control messages recvmsg filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((n as usize, at)))
}

/// A running paced TCP transfer; [`TcpFlow::finish`] stops it.
pub struct TcpFlow {
    writer: JoinHandle<Result<u64>>,
    reader: JoinHandle<Result<(u64, Vec<u64>)>>,
    stop: Arc<AtomicBool>,
}

/// What the TCP transfer saw.
#[derive(Clone, Debug, Default)]
pub struct TcpOutcome {
    pub written: u64,
    pub read: u64,
    /// When reads returned data (ns).
    pub progress: Vec<u64>,
}

/// Starts a TCP connection from `from` to `dst` (a listener in `to`) on which `from`
/// writes one 1448-byte segment every millisecond until [`TcpFlow::finish`].
pub fn tcp_flow(from: &Netns, to: &Netns, dst: SocketAddr) -> Result<TcpFlow> {
    tcp_flow_paced(from, to, dst, Duration::from_millis(1))
}

/// [`tcp_flow`] with one segment every `period`.
pub fn tcp_flow_paced(
    from: &Netns,
    to: &Netns,
    dst: SocketAddr,
    period: Duration,
) -> Result<TcpFlow> {
    let period = period.as_nanos() as u64;
    let (ready_tx, ready) = mpsc::channel();
    let reader = in_netns(to, move || {
        let l = TcpListener::bind(dst).with_context(|| format!("listen on {dst}"))?;
        ready_tx.send(()).ok();
        let (mut s, _) = l.accept()?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut progress = Vec::with_capacity(100_000);
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok((total, progress));
            }
            total += n as u64;
            progress.push(now_ns());
        }
    });
    ready
        .recv_timeout(Duration::from_secs(5))
        .context("the TCP listener did not start")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_w = Arc::clone(&stop);
    let writer = in_netns(from, move || {
        let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(3))
            .with_context(|| format!("connect to {dst}"))?;
        s.set_nodelay(true)?;
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0, 0, 0) };
        let chunk = [0x5au8; 1448];
        let mut written = 0u64;
        let mut next = now_ns();
        while !stop_w.load(Ordering::Relaxed) {
            s.write_all(&chunk).context("TCP write")?;
            written += chunk.len() as u64;
            next += period;
            sleep_until(next);
        }
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(written)
    });
    Ok(TcpFlow {
        writer,
        reader,
        stop,
    })
}

impl TcpFlow {
    /// Stops writing, waits until the reader has everything.
    pub fn finish(self) -> Result<TcpOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        let written = join(self.writer).context("TCP writer")?;
        let (read, progress) = join(self.reader).context("TCP reader")?;
        if read != written {
            bail!("TCP transfer: {written} bytes written, {read} read");
        }
        Ok(TcpOutcome {
            written,
            read,
            progress,
        })
    }
}

/// TCP retransmission timeouts and retransmitted segments so far in `ns`
/// (`TcpExt: TCPTimeouts`, `Tcp: RetransSegs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    pub timeouts: u64,
    pub retrans_segs: u64,
}

impl TcpCounters {
    pub fn read(ns: &Netns) -> Result<Self> {
        let out = ns.exec("cat", &["/proc/net/netstat", "/proc/net/snmp"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(Self {
            timeouts: proc_net_field(&text, "TcpExt:", "TCPTimeouts")?,
            retrans_segs: proc_net_field(&text, "Tcp:", "RetransSegs")?,
        })
    }

    pub fn since(&self, before: &TcpCounters) -> TcpCounters {
        TcpCounters {
            timeouts: self.timeouts - before.timeouts,
            retrans_segs: self.retrans_segs - before.retrans_segs,
        }
    }
}

/// A field of /proc/net/netstat or /proc/net/snmp: a header line `PREFIX names...`
/// followed by a value line `PREFIX values...`.
fn proc_net_field(text: &str, prefix: &str, name: &str) -> Result<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if let Some(i) = names.split_whitespace().position(|n| n == name) {
            return values
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{prefix} {name}: bad value"));
        }
    }
    bail!("{prefix} {name} not found")
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_net_fields() {
        let t = "TcpExt: SyncookiesSent TCPTimeouts\nTcpExt: 0 7\nTcp: RtoAlgorithm RetransSegs\nTcp: 1 12\n";
        assert_eq!(
            super::proc_net_field(t, "TcpExt:", "TCPTimeouts").unwrap(),
            7
        );
        assert_eq!(super::proc_net_field(t, "Tcp:", "RetransSegs").unwrap(), 12);
        assert!(super::proc_net_field(t, "Tcp:", "Nope").is_err());
    }
}
