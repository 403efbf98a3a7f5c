//! `vdmm-ctl metrics serve|dump`: the Prometheus metrics of [`crate::metrics`], served
//! over HTTP (a small blocking server, one request at a time: a scrape target needs no
//! more) or printed once.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use crate::{
    cli::MetricsCommand,
    error::{Error, Result},
    metrics,
    pin::PinDir,
};

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9478";

/// How many bytes of a request are read (request line and headers).
const MAX_REQUEST: u64 = 16 * 1024;

/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(pins: &PinDir, c: MetricsCommand) -> Result<String> {
    match c {
        MetricsCommand::Dump => metrics::render(pins),
        MetricsCommand::Serve { listen } => {
            let listener = bind(listen)?;
            let addr = listener.local_addr().unwrap_or(listen);
            println!(
                "serving http://{addr}/metrics (maps of {})",
                pins.path().display()
            );
            serve(&listener, pins)?;
            Ok(String::new())
        }
    }
}

fn bind(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen).map_err(|e| Error::io(format!("cannot listen on {listen}"), e))
}

/// Answers requests on `listener` until accepting fails; a client's error only ends
/// its connection.
pub fn serve(listener: &TcpListener, pins: &PinDir) -> Result<()> {
    serve_with(listener, &|| metrics::render(pins))
}

/// [`serve`] with another source of the metrics text (the agent adds its own metrics to
/// the data plane's).
pub fn serve_with(listener: &TcpListener, render: &dyn Fn() -> Result<String>) -> Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .map_err(|e| Error::io("cannot accept a connection".to_string(), e))?;
        if let Err(e) = handle(stream, render) {
            tracing::debug!("metrics client: {e}");
        }
    }
}

/// Reads one request and answers it: `GET /metrics` with the metrics (503 with the error
/// when the maps cannot be read, e.g. the data plane is not loaded), `GET /` with a
/// pointer to them, anything else with 404 or 405. The connection is closed after it.
fn handle(stream: TcpStream, render: &dyn Fn() -> Result<String>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    // A request is a few hundred bytes; a client that sends more is cut off here.
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers (the answer does not depend on them).
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let (status, content_type, body) = respond(&request_line, render);
    let head_only = request_line.starts_with("HEAD ");
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

/// Status line, content type and body for a request line.
fn respond(
    request_line: &str,
    render: &dyn Fn() -> Result<String>,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    match target.split('?').next().unwrap_or("") {
        "/metrics" => match render() {
            Ok(body) => ("200 OK", metrics::CONTENT_TYPE, body),
            Err(e) => ("503 Service Unavailable", TEXT, format!("{e}\n")),
        },
        "/" => (
            "200 OK",
            TEXT,
            "vdmm metrics exporter: the metrics are at /metrics\n".into(),
        ),
        _ => ("404 Not Found", TEXT, "not found; try /metrics\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn listens_on_loopback_by_default() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let listen = |args: &[&str]| {
            let c = Cli::try_parse_from(["vdmm-ctl", "metrics"].iter().chain(args))?;
            match c.command {
                Command::Metrics(MetricsCommand::Serve { listen }) => Ok::<_, clap::Error>(listen),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            listen(&["serve"]).unwrap(),
            "127.0.0.1:9478".parse().unwrap()
        );
        assert_eq!(
            listen(&["serve", "--listen", "[::1]:9100"]).unwrap(),
            "[::1]:9100".parse().unwrap()
        );
        assert!(listen(&["serve", "--listen", "localhost"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["vdmm-ctl", "metrics", "dump"])
                .unwrap()
                .command,
            Command::Metrics(MetricsCommand::Dump)
        ));
    }

    #[test]
    fn serves_status_codes_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A pin directory with nothing in it: /metrics answers 503 with the error.
        let pins = PinDir::new("/nonexistent/vdmm-metrics-test");
        std::thread::spawn(move || serve(&listener, &pins));
        let r = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(
            r.contains("is not loaded") || r.contains("nonexistent"),
            "{r}"
        );
        let r = get(addr, "GET / HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("/metrics\n"), "{r}");
        let r = get(addr, "GET /other HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        // A client that says nothing and leaves does not stop the server.
        drop(TcpStream::connect(addr).unwrap());
        let r = get(addr, "HEAD / HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "{r}");
    }
}
