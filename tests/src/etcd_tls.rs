//! Certificates for the TLS tests of cluster mode, made with `openssl` (Debian's openssl,
//! a fail with a clear message without it): a CA, a server certificate for 127.0.0.1 and
//! `localhost` signed by it, a client certificate (mutual TLS), and a second, unrelated
//! CA (what an agent configured with the wrong CA trusts). ECDSA P-256, valid one day.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The files, all PEM, in one directory.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("this test needs `openssl` (Debian package openssl) to make certificates")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A self-signed CA `NAME.pem` with its key `NAME.key`.
fn ca(dir: &Path, name: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

/// `NAME.pem` and `NAME.key` signed by `ca`, with the extensions `ext`.
fn leaf(dir: &Path, ca: &str, name: &str, ext: &str) -> Result<()> {
    std::fs::write(dir.join(format!("{name}.ext")), ext)?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

impl EtcdTls {
    /// Makes the certificates in `dir` (created).
    pub fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        ca(dir, "ca")?;
        ca(dir, "other-ca")?;
        leaf(
            dir,
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        leaf(
            dir,
            "ca",
            "client",
            "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )?;
        let f = |n: &str| dir.join(n);
        Ok(Self {
            dir: dir.to_path_buf(),
            ca: f("ca.pem"),
            server_cert: f("server.pem"),
            server_key: f("server.key"),
            client_cert: f("client.pem"),
            client_key: f("client.key"),
            other_ca: f("other-ca.pem"),
        })
    }
}
