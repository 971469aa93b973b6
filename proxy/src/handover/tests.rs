use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use super::fdpass::Channel;
use super::upgrade::parse_manifest;
use super::*;

fn pair() -> (Channel, Channel) {
    let (a, b) = socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)
        .expect("socketpair");
    let t = Duration::from_secs(2);
    (Channel::new(a, t).unwrap(), Channel::new(b, t).unwrap())
}

#[test]
fn sd_listen_fds_is_only_for_the_named_process() {
    assert_eq!(listen_fds(None, Some("2"), 7), Ok(None));
    assert_eq!(listen_fds(Some("8"), Some("2"), 7), Ok(None));
    assert_eq!(listen_fds(Some("7"), Some("2"), 7), Ok(Some(2)));
    assert!(listen_fds(Some("7"), None, 7)
        .unwrap_err()
        .contains("LISTEN_FDS"));
    assert!(listen_fds(Some("7"), Some("0"), 7)
        .unwrap_err()
        .contains("no socket"));
    assert!(listen_fds(Some("x"), Some("1"), 7)
        .unwrap_err()
        .contains("LISTEN_PID"));
}

#[test]
fn a_message_carries_listening_sockets_that_still_accept() {
    let (old, new) = pair();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd: OwnedFd = listener.into();
    old.send_with_fds("listeners 1\nproxy.listen x\n", &[fd.as_fd()])
        .unwrap();
    drop(fd);
    let (text, fds) = new.recv().unwrap();
    assert_eq!(parse_manifest(&text), Ok((1, 1)));
    assert_eq!(fds.len(), 1);

    // The received socket is the same listening socket: it accepts on the same address.
    let mut got = Listeners::inherited(Origin::Upgrade { pid: 1 }, fds).unwrap();
    let taken = got.claim("proxy.listen", &addr.to_string()).unwrap();
    got.finish().unwrap();
    taken.set_nonblocking(false).unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"ping").unwrap();
    let (mut conn, _) = taken.accept().unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // A duplicate is kept to hand on.
    assert_eq!(got.claimed().len(), 1);
    assert_eq!(got.claimed()[0].key, "proxy.listen");
}

#[test]
fn inherited_sockets_must_match_the_configuration_both_ways() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut got = Listeners::inherited(Origin::Systemd, vec![a.into(), b.into()]).unwrap();

    // Order does not matter: matched by local address.
    got.claim("admin.listen", &b_addr.to_string()).unwrap();
    let other = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = got
        .claim("proxy.listen", &other.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("proxy.listen")
            && err.contains(&other.to_string())
            && err.contains("systemd")
            && err.contains(&a_addr.to_string()),
        "{err}"
    );
    let err = got.finish().unwrap_err().to_string();
    assert!(
        err.contains(&a_addr.to_string()) && err.contains(&format!("admin.listen {b_addr}")),
        "{err}"
    );
}

#[test]
fn only_listening_tcp_sockets_are_taken() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = Listeners::inherited(Origin::Systemd, vec![a.into()]).unwrap_err();
    assert!(err.contains("not a TCP socket"), "{err}");

    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let err = Listeners::inherited(Origin::Systemd, vec![bound.into()]).unwrap_err();
    assert!(err.contains("not a listening TCP socket"), "{err}");
}

#[test]
fn binding_here_names_the_key_of_a_busy_address() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut l = Listeners::bind_here();
    let err = l.claim("admin.listen", &addr).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("admin.listen: cannot listen on {addr}")),
        "{err}"
    );
    let free = l.claim("proxy.listen", "127.0.0.1:0").unwrap();
    assert!(free.local_addr().is_ok());
    l.finish().unwrap();
}

#[test]
fn the_ipv4_and_ipv6_wildcards_of_one_port_bind_side_by_side() {
    // A port free on both families: the IPv6 wildcard is bound first (it would take IPv4 too
    // with the system's dual-stack default), then the IPv4 one.
    let port = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut l = Listeners::bind_here();
    let v6 = l.claim("proxy.listen", &format!("[::]:{port}")).unwrap();
    let v4 = l.claim("proxy.listen", &format!("0.0.0.0:{port}")).unwrap();
    assert!(socket2::SockRef::from(&v6).only_v6().unwrap());
    assert_eq!(v4.local_addr().unwrap().port(), port);
    l.finish().unwrap();
}

#[test]
fn a_refusal_or_garbage_is_not_a_manifest() {
    assert!(parse_manifest("refused this canaryd is stopping")
        .unwrap_err()
        .contains("stopping"));
    assert!(parse_manifest("HTTP/1.1 200 OK").is_err());
    assert_eq!(parse_manifest("listeners 42\n"), Ok((42, 0)));
}
