use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "canaryd-config-tls-{}-{}",
        std::process::id(),
        fastrand_like()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fastrand_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn every_mistake_is_named() {
    let d = dir();
    let cert = write(
        &d,
        "c.pem",
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    );
    let not_key = write(&d, "k.pem", "hello\n");
    let tls = TlsConfig {
        listen: vec!["0.0.0.0:443".into(), "nope".into(), "127.0.0.1:80".into()],
        certificates: vec![
            CertificateConfig {
                cert: cert.clone(),
                key: not_key,
            },
            CertificateConfig {
                cert: d.join("missing.pem"),
                key: write(
                    &d,
                    "ok.key",
                    "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n",
                ),
            },
        ],
        protocols: vec!["TLSv1.1".into(), "TLSv1.3".into()],
        http2: true,
    };
    let mut out = Vec::new();
    tls.validate(&["127.0.0.1:80".to_string()], &mut out);
    let keys: Vec<&str> = out.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "proxy.tls.listen[1]",
            "proxy.tls.listen[2]",
            "proxy.tls.certificates[0].key",
            "proxy.tls.certificates[1].cert",
            "proxy.tls.protocols[0]",
        ],
        "{out:?}"
    );
    assert!(out[3].message.contains("cannot read"), "{}", out[3].message);
    assert!(out[2].message.contains("PRIVATE KEY"), "{}", out[2].message);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn https_servers() {
    assert_eq!(
        server_target("https://gw.internal:8443"),
        (true, "gw.internal:8443")
    );
    assert_eq!(server_target("127.0.0.1:8080"), (false, "127.0.0.1:8080"));
    assert_eq!(
        server_target("http://127.0.0.1:8080"),
        (false, "127.0.0.1:8080")
    );
}
