//! The `backend` option: io_uring where the kernel lets the process have it, epoll
//! otherwise. The refusal a container runtime makes (a seccomp profile that answers
//! `io_uring_setup` with EPERM) is made here for real, on the example server, with a
//! seccomp filter installed just before it runs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::*;
use corral::{Backend, Config, Engine, Response};

/// Makes `cmd` run with `io_uring_setup` refused (EPERM), as Docker's default profile does.
#[cfg(target_arch = "x86_64")]
fn without_io_uring(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    // SAFETY: between fork and exec only async-signal-safe calls (two prctls) run, on a
    // filter that lives on this stack frame until the second returns.
    unsafe {
        cmd.pre_exec(|| {
            let nr = libc::SYS_io_uring_setup as u32;
            let prog = [
                // Load the syscall number (`seccomp_data.nr`, offset 0).
                libc::sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 },
                libc::sock_filter { code: BPF_JMP_JEQ_K, jt: 0, jf: 1, k: nr },
                libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32 },
                libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
            ];
            let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn stats_text(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    get(&mut s, "/stats");
    read_response(&mut BufReader::new(s)).expect("stats").text()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn auto_falls_back_to_epoll_and_says_why_when_io_uring_is_refused() {
    let mut cmd = Command::new(example());
    cmd.args(["--backend", "auto", "--seconds", "60"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Reaped(without_io_uring(&mut cmd).spawn().expect("start the example server"));
    let addr = listening(&mut child);
    let mut err = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains("backend auto: io_uring is not available (io_uring_setup was refused")
            && line.contains("EPERM")
            && line.contains("seccomp")
            && line.trim_end().ends_with("running on epoll"),
        "the log line says what happened and why: {line:?}"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    get(&mut s, "/");
    assert_eq!(read_response(&mut BufReader::new(s)).expect("served on epoll").status, 200);
    let stats = stats_text(addr);
    assert!(stats.contains("\ncorral_io_uring 0\n"), "{stats}");
    assert!(stats.contains("\ncorral_io_uring_fallback 1\n"), "{stats}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn io_uring_asked_for_and_refused_is_an_error_that_says_what_to_do() {
    let mut cmd = Command::new(example());
    cmd.args(["--backend", "io_uring", "--seconds", "60"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = Reaped(without_io_uring(&mut cmd).spawn().expect("start the example server"));
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("backend io_uring cannot run here: io_uring_setup was refused"), "{err}");
    assert!(err.contains("set backend = \"auto\" to fall back to epoll"), "{err}");
}

#[test]
fn the_stats_say_which_backend_runs() {
    let probe = Engine::serve(
        Config::builder().backend(Backend::Auto).io_workers(1).build().unwrap(),
        corral::handler_fn(|_req, res| res.respond(Response::new(200).body("ok"))),
    )
    .unwrap();
    let st = probe.stats();
    if st.backend != "io_uring" {
        eprintln!("skipped: io_uring is not available here ({:?})", st.backend_note);
        return;
    }
    assert_eq!(st.backend_note, None);
    let metric = |st: &corral::Stats, name: &str| corral::metrics::find(name).unwrap().total(st);
    assert_eq!(metric(&st, "io_uring"), 1.0);
    assert_eq!(metric(&st, "io_uring_fallback"), 0.0);
    probe.shutdown(DEADLINE).unwrap();
    for model in [corral::Model::Single, corral::Model::Pool, corral::Model::ReusePort, corral::Model::Stealing] {
        let cfg = Config::builder().model(model).backend(Backend::IoUring).build().unwrap();
        let e = Engine::serve(cfg, corral::handler_fn(|_req, res| res.respond(Response::new(200).body("ok")))).unwrap();
        assert_eq!(e.stats().backend, "io_uring", "{model:?}");
        let mut s = connect(e.local_addr());
        let mut r = BufReader::new(s.try_clone().unwrap());
        for _ in 0..3 {
            get(&mut s, "/");
            assert_eq!(read_response(&mut r).unwrap().text(), "ok", "{model:?}");
        }
        e.shutdown(DEADLINE).unwrap();
    }
    // A thread per connection has no worker to own a ring: refused when asked for.
    let e = Config::builder().model(corral::Model::ThreadPerConnection).backend(Backend::IoUring).build();
    assert!(e.unwrap_err().message().starts_with("backend has no effect in the thread-per-connection model"));
}
