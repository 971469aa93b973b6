//! A throwaway PKI per test, made with the `openssl` CLI: a CA, and leaf certificates for the
//! names a test serves (EC P-256 keys, signed by the CA, SANs set), plus a rustls client that
//! trusts the CA — for the tests that hold one connection open or look at the served
//! certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA in a directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=canaryd test CA",
            "-keyout",
            s(&ca_key),
            "-out",
            s(&ca),
        ]);
        Self {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        }
    }

    /// A certificate for `names` (the first is the CN; an IP address becomes an IP SAN),
    /// written to `<file>.pem`/`<file>.key`.
    pub fn issue(&self, file: &str, names: &[&str]) -> Leaf {
        let key = self.dir.join(format!("{file}.key"));
        let csr = self.dir.join(format!("{file}.csr"));
        let cert = self.dir.join(format!("{file}.pem"));
        let ext = self.dir.join(format!("{file}.ext"));
        let san = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        std::fs::write(&ext, format!("subjectAltName={san}\n")).unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={}", names[0]),
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.ca),
            "-CAkey",
            s(&self.ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&cert),
        ]);
        Leaf { cert, key }
    }

    /// A rustls client configuration trusting this CA only.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

/// `[proxy.tls]` for `listen` serving `leaves` (the first is the default).
pub fn section(listen: SocketAddr, leaves: &[&Leaf]) -> String {
    let certs = leaves
        .iter()
        .map(|l| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                l.cert.display(),
                l.key.display()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("[proxy.tls]\nlisten = [\"{listen}\"]\ncertificates = [{certs}]\n")
}

/// One TLS connection kept open across requests (HTTP/1.1 keep-alive).
pub struct TlsConn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl TlsConn {
    pub fn connect(cfg: Arc<rustls::ClientConfig>, addr: SocketAddr, sni: &str) -> Self {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        Self { tls }
    }

    /// The served certificate's DER.
    pub fn peer_cert(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().expect("a certificate")[0].to_vec()
    }

    /// `GET path` on this connection; the status and the body (Content-Length framed).
    pub fn get(&mut self, path: &str, host: &str) -> (u16, String) {
        write!(self.tls, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        self.tls.flush().unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = self.tls.read(&mut byte).expect("read response header");
            assert!(
                n == 1,
                "connection closed; got {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("Content-Length");
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body).expect("read body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// The DER of the first certificate in a PEM file.
pub fn der_of(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
