//! The example server under a service manager, as a real child process: socket
//! activation (`LISTEN_FDS`, with the listener at fd 3 and `LISTEN_PID` set by the shell
//! that execs it, as `systemd-socket-activate` does), readiness on a notify socket, an fd
//! named both by activation and `--fd` taken once, and SIGTERM draining to exit 0.

mod common;

use std::io::{BufReader, Read};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use common::*;

/// Starts the example with `listener` as fd 3, socket-activated, and `NOTIFY_SOCKET`
/// pointing at a datagram socket this test reads.
fn activated(listener: &TcpListener, extra: &[&str]) -> (Reaped, UnixDatagram, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let notify_path = dir.path.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" "$@""#)
        .arg(example())
        .args(extra)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only dup2/fcntl run between fork and exec (async-signal-safe): they put
    // the listener at fd 3 without close-on-exec, where socket activation passes it.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if ok == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (Reaped(cmd.spawn().expect("start the example server")), notify, dir)
}

fn said(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("a notification before the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn terminate_and_wait(child: &mut Child) -> (std::process::ExitStatus, String) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (status, out)
}

#[test]
fn a_socket_activated_server_says_ready_serves_and_drains_on_sigterm() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut child, notify, _dir) = activated(&listener, &[]);
    assert_eq!(said(&notify), "READY=1");
    let mut s = connect(addr);
    get(&mut s, "/peer");
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
    assert_eq!(resp.text().trim(), s.local_addr().unwrap().to_string(), "the client's address as the engine saw it");
    drop(s);
    let (status, out) = terminate_and_wait(&mut child);
    assert_eq!(said(&notify), "STOPPING=1");
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    assert!(out.contains("ShutdownReport") && out.contains("clean: true"), "{out}");
    // The socket was the service manager's (here: ours); it still listens.
    assert!(std::net::TcpStream::connect(addr).is_ok());
}

#[test]
fn an_fd_named_by_activation_and_by_fd_is_taken_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut child, notify, _dir) = activated(&listener, &["--fd", "3"]);
    assert_eq!(said(&notify), "READY=1");
    assert_eq!(get_once(addr, "/").status, 200);
    let (status, out) = terminate_and_wait(&mut child);
    assert!(status.success(), "one owner, closed once: {status:?} {out}");
}

#[test]
fn sigint_stops_a_plain_server_too() {
    let mut child = Command::new(example())
        .args(["--addr", "127.0.0.1:0"])
        .stdin(Stdio::null()) // stdin closing is no longer the signal to stop
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening(&mut child);
    assert_eq!(get_once(addr, "/").status, 200, "still serving with stdin closed");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_successor_takes_the_listeners_and_the_predecessor_drains_and_exits() {
    let dir = tempdir::Dir::new();
    let offer = dir.path.join("offer.sock");
    let notify_path = dir.path.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let start = |args: &[&std::ffi::OsStr]| {
        let mut child = Command::new(example())
            .args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = listening(&mut child);
        (Reaped(child), addr)
    };
    let (mut old, addr) =
        start(&["--addr".as_ref(), "127.0.0.1:0".as_ref(), "--offer-listeners".as_ref(), offer.as_os_str()]);
    assert_eq!(said(&notify), "READY=1");
    assert_eq!(get_once(addr, "/").status, 200);
    let (mut new, new_addr) = start(&["--listeners-from".as_ref(), offer.as_os_str()]);
    assert_eq!(new_addr, addr, "the successor serves the same socket");
    assert!(old.wait().unwrap().success(), "the predecessor drains and exits 0 once the successor serves");
    // What the service manager heard, in order: the predecessor reloading, the successor
    // ready as the new main process, the predecessor stopping.
    let reloading = said(&notify);
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    assert!(reloading["RELOADING=1\nMONOTONIC_USEC=".len()..].parse::<u64>().is_ok(), "{reloading}");
    assert_eq!(said(&notify), format!("READY=1\nMAINPID={}", new.id()));
    assert_eq!(said(&notify), "STOPPING=1");
    assert_eq!(get_once(addr, "/").status, 200, "served by the successor");
    let (status, _) = terminate_and_wait(&mut new);
    assert!(status.success());
}
