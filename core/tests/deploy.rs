//! The operators' examples in `examples/deploy/`, run as written where this machine
//! allows: the systemd socket and service units through `systemd-socket-activate`
//! (readiness and drain on a test notify socket), the HAProxy config in front of two
//! example servers (client addresses through PROXY v2, health checks through the
//! header, a stopped server taken out without a failed request), and the Kubernetes
//! manifest's arguments, probe and stop sequence against the example server.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key=` in a unit file (the first one).
fn unit_value(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
        .to_string()
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

fn said(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("a notification before the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A PROXY v2 header for a TCP4 client.
fn proxy_v2(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

#[test]
fn the_systemd_units_activate_the_server_which_says_ready_and_drains_on_stop() {
    let socket = deploy("systemd/corral.socket");
    let service = deploy("systemd/corral.service");
    assert_eq!(unit_value(&service, "Type"), "notify");
    assert_eq!(unit_value(&service, "KillSignal"), "SIGTERM");
    let stop: u64 = unit_value(&service, "TimeoutStopSec").parse().unwrap();
    assert!(stop > 5, "TimeoutStopSec leaves the server its 5 s drain");
    let name = unit_value(&socket, "FileDescriptorName");
    assert!(unit_value(&socket, "ListenStream").starts_with("127.0.0.1:"));
    // ExecStart, with the example server in place of the installed binary.
    let exec = unit_value(&service, "ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/http_server"));
    let args: Vec<&str> = words.collect();

    let dir = tempdir::Dir::new();
    let notify_path = dir.path.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let port = free_port();
    let mut child = Reaped(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("--fdname={name}"))
            .arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
            .arg(example())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("systemd-socket-activate is needed for this test (Debian package systemd)"),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until("the activated socket listens", || TcpStream::connect(addr).is_ok());
    // The first connection starts the server (systemd-socket-activate execs it then).
    let mut s = connect(addr);
    s.write_all(&proxy_v2([203, 0, 113, 5], 1234)).unwrap();
    get(&mut s, "/peer");
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap())).expect("an answer");
    assert_eq!(resp.text().trim(), "203.0.113.5:1234", "the client the balancer named");
    assert_eq!(said(&notify), "READY=1");
    drop(s);
    sigterm(&child);
    assert_eq!(said(&notify), "STOPPING=1");
    assert!(child.wait().unwrap().success(), "exit 0 after the drain");
}

fn backend() -> (Reaped, SocketAddr) {
    let mut c = Reaped(
        Command::new(example())
            .args(["--addr", "127.0.0.1:0", "--proxy-protocol", "v2", "--workers", "1", "--cpu", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = listening(&mut c);
    (c, addr)
}

#[test]
fn the_haproxy_config_passes_clients_through_and_takes_a_stopped_server_out() {
    let (mut one, a1) = backend();
    let (two, a2) = backend();
    let front = free_port();
    let cfg = deploy("haproxy/haproxy.cfg")
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:8081", &a1.to_string())
        .replace("127.0.0.1:8082", &a2.to_string());
    let dir = tempdir::Dir::new();
    let _h = Haproxy::start(&cfg, &dir.path);
    let addr: SocketAddr = ([127, 0, 0, 1], front).into();
    wait_until("haproxy listens", || TcpStream::connect(addr).is_ok());
    let ask = || {
        let mut s = connect(addr);
        let me = s.local_addr().unwrap();
        get(&mut s, "/peer");
        let body = read_response(&mut BufReader::new(s)).map(|r| r.text());
        (me, body)
    };
    for _ in 0..6 {
        let (me, body) = ask();
        assert_eq!(body.as_deref().map(str::trim), Some(me.to_string().as_str()), "the client, not haproxy");
    }
    // One server stops (drains, exits); every request still gets its answer.
    sigterm(&one);
    assert!(one.wait().unwrap().success());
    for _ in 0..20 {
        let (me, body) = ask();
        assert_eq!(body.as_deref().map(str::trim), Some(me.to_string().as_str()), "answered by the other server");
    }
    let mut two = two;
    sigterm(&two);
    assert!(two.wait().unwrap().success());
}

#[test]
fn the_kubernetes_manifest_runs_the_server_probe_and_stop_as_written() {
    let m = deploy("kubernetes/corral.yaml");
    let grab = |key: &str| -> String {
        m.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key}: in the manifest"))
            .trim()
            .to_string()
    };
    let list = |text: &str| -> Vec<String> {
        text.trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|w| w.trim().trim_matches('"').to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let args = list(&grab("args"));
    let grace: u64 = grab("terminationGracePeriodSeconds").parse().unwrap();
    let pre_stop = list(&grab("command"));
    assert_eq!(pre_stop[0], "sleep");
    let wait: u64 = pre_stop[1].parse().unwrap();
    assert!(wait + 5 < grace, "preStop's wait and the 5 s drain fit in the grace period");
    let probe = grab("path");
    // The manifest's arguments, bound to a free loopback port instead of 0.0.0.0:8080.
    let at = args.iter().position(|a| a == "0.0.0.0:8080").expect("the address argument");
    let mut args = args.clone();
    args[at] = "127.0.0.1:0".into();
    let mut c =
        Reaped(Command::new(example()).args(&args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let addr = listening(&mut c);
    assert_eq!(get_once(addr, &probe).status, 200, "the readiness probe passes");
    sigterm(&c);
    assert!(c.wait().unwrap().success(), "SIGTERM drains and exits 0");
}
