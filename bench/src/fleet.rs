//! The source's fifth architecture as a lab target: N single-threaded corral processes,
//! each on its own loopback port, behind a real layer-4 balancer — HAProxy in `mode tcp`
//! with `send-proxy-v2` (the processes take the PROXY header, so each sees the client's
//! address), or nftables DNAT round-robin in the kernel (the client's address is kept).
//! It is a setup around the engine, not a `corral::Model`: the lab runs every scenario
//! against it like the models, counting HAProxy's memory and CPU as the server's.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral::Model;

use crate::server::{Observed, Server, ServerArgs, StopReport};

/// The balancer in front of the processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Haproxy,
    Dnat,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Haproxy, Kind::Dnat];

    /// The name the report gives the fleet.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Haproxy => "fleet-haproxy",
            Kind::Dnat => "fleet-dnat",
        }
    }

    /// What the report says about how the fleet was set up.
    pub fn describe(self, processes: usize) -> String {
        let front = match self {
            Kind::Haproxy => {
                "behind HAProxy mode tcp, balance roundrobin, send-proxy-v2, one thread per core (its CPU and \
                 memory counted as the server's)"
            }
            Kind::Dnat => {
                "behind nftables DNAT on an address of its own in 127.64.0.0/10 (nat output hook, numgen inc \
                 round-robin; the kernel's share is not counted apart from the load's)"
            }
        };
        format!(
            "{processes} single-threaded corral processes (model single, 1 worker), each on its own loopback \
             port (no network namespaces), {front}"
        )
    }

    /// Whether this machine can run the balancer; installed (Debian) when this process may.
    pub fn available(self) -> Result<(), String> {
        let (tool, package) = match self {
            Kind::Haproxy => ("haproxy", "haproxy"),
            Kind::Dnat => ("nft", "nftables"),
        };
        let have = || Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !have() {
            let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
            if root {
                let script = format!(
                    "apt-get install -y -qq {package} >/dev/null 2>&1 || \
                     (apt-get update -qq && apt-get install -y -qq {package} >/dev/null)"
                );
                let _ = Command::new("sh").args(["-c", &script]).status();
            }
            if !have() {
                return Err(format!(
                    "skipped: {tool} is not installed and cannot be installed here (needs root and apt-get)"
                ));
            }
        }
        if self == Kind::Dnat {
            // Rules need CAP_NET_ADMIN: try an empty table.
            let probe = format!("corral_lab_probe_{}", std::process::id());
            let made = Command::new("nft").args(["add", "table", "ip", &probe]).stderr(Stdio::null()).status();
            if !made.is_ok_and(|s| s.success()) {
                return Err("skipped: nft cannot add a table here (needs CAP_NET_ADMIN)".into());
            }
            let _ = Command::new("nft").args(["delete", "table", "ip", &probe]).status();
            remove_stale_tables();
        }
        Ok(())
    }
}

enum Front {
    Haproxy(Child),
    /// The nftables table holding the DNAT rule.
    Dnat(String),
}

pub struct Fleet {
    servers: Vec<Server>,
    front: Front,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Fleet {
    /// Starts `n` processes and the balancer in front, holding up to `max_conn`
    /// connections (HAProxy needs two descriptors for each).
    pub fn start(kind: Kind, n: usize, max_conn: usize) -> io::Result<Fleet> {
        let mut args = ServerArgs::new(Model::Single, 1);
        args.proxy_v2 = kind == Kind::Haproxy;
        let servers = (0..n).map(|_| Server::start(&args)).collect::<io::Result<Vec<_>>>()?;
        let port = crate::peer::free_port()?;
        let addr: SocketAddr = match kind {
            Kind::Haproxy => ([127, 0, 0, 1], port).into(),
            Kind::Dnat => (dnat_address(), port).into(),
        };
        let dir = std::env::temp_dir().join(format!("corral-fleet-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let front = match kind {
            Kind::Haproxy => Front::Haproxy(haproxy(&servers, port, max_conn, &dir)?),
            Kind::Dnat => Front::Dnat(dnat(&servers, addr)?),
        };
        Ok(Fleet { servers, front, addr, dir })
    }

    /// HAProxy's own CPU time (DNAT's is the kernel's, inside everyone's).
    pub fn balancer_cpu(&self) -> Duration {
        match &self.front {
            Front::Haproxy(c) => corral::os::cpu_time_of(c.id()).unwrap_or_default(),
            Front::Dnat(_) => Duration::ZERO,
        }
    }

    pub fn processes(&self) -> usize {
        self.servers.len()
    }

    /// Stops the processes (each drains) and the balancer; one report for all.
    pub fn stop(mut self) -> io::Result<StopReport> {
        let mut all = StopReport { clean: true, ..StopReport::default() };
        for s in std::mem::take(&mut self.servers) {
            let r = s.stop()?;
            all.requests_framed += r.requests_framed;
            all.replies += r.replies;
            all.requests_aborted += r.requests_aborted;
            all.handler_failures += r.handler_failures;
            all.replies_timed_out += r.replies_timed_out;
            all.connections_aborted += r.connections_aborted;
            all.clean &= r.clean;
        }
        Ok(all)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        match &mut self.front {
            Front::Haproxy(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Front::Dnat(table) => {
                let _ = Command::new("nft").args(["delete", "table", "ip", table]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Observed for Fleet {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn resident_bytes(&self) -> u64 {
        let own = match &self.front {
            Front::Haproxy(c) => corral::os::resident_bytes(c.id()).unwrap_or(0),
            Front::Dnat(_) => 0,
        };
        own + self.servers.iter().map(Server::resident_bytes).sum::<u64>()
    }
    fn cpu_time(&self) -> Duration {
        self.balancer_cpu() + self.servers.iter().map(Server::cpu_time).sum::<Duration>()
    }
    /// Every process's stats, one after another (each has one worker: per-worker
    /// metrics list one value per process, in order).
    fn prometheus(&self) -> io::Result<String> {
        let mut all = String::new();
        for s in &self.servers {
            all.push_str(&s.prometheus()?);
        }
        Ok(all)
    }
}

/// HAProxy in front of `servers` on 127.0.0.1:`port`, once it listens.
fn haproxy(servers: &[Server], port: u16, max_conn: usize, dir: &Path) -> io::Result<Child> {
    let mut cfg = format!(
        "global\n  maxconn {max_conn}\n  nbthread {}\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 120s\n  timeout server 120s\nfrontend lab\n  bind 127.0.0.1:{port}\n  \
         default_backend fleet\nbackend fleet\n  balance roundrobin\n",
        crate::cores()
    );
    for (i, s) in servers.iter().enumerate() {
        cfg.push_str(&format!("  server s{i} {} send-proxy-v2\n", s.addr));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg)?;
    let mut child =
        Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(io::Error::other(format!("haproxy exited ({status}): {}", err.trim())));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(io::Error::other("haproxy did not listen within 30 s"));
        }
        // Polling a process the lab started until it listens (startup, not a measurement).
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(child)
}

/// Deletes the DNAT tables of lab runs that ended without cleaning up (killed): their
/// names carry the pid, and that process is gone.
fn remove_stale_tables() {
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.strip_prefix("table ip corral_lab_") else { continue };
        let pid = name.split('_').next().unwrap_or("");
        let gone = pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if gone {
            let _ = Command::new("nft").args(["delete", "table", "ip", &format!("corral_lab_{name}")]).status();
        }
    }
}

/// The address a DNAT fleet answers on: one of its own in 127.64.0.0/10 for each of the
/// first 65,536 fleets this process starts (the second octet from the process id). On
/// 127.0.0.1 a new connection to the fleet's port could match a conntrack entry that an
/// earlier server on that port left in TIME_WAIT (kept 120 s); the kernel reopens such an
/// entry with its old binding, no DNAT, so the SYN reaches a port nobody listens on and
/// the connect is refused (seen once in five `make demo` runs, among `idle`'s 10,000
/// connects). No entry names an address that was never used.
fn dnat_address() -> std::net::Ipv4Addr {
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let [_, _, hi, lo] = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_be_bytes();
    std::net::Ipv4Addr::new(127, 64 + (std::process::id() % 64) as u8, hi, lo)
}

/// A DNAT rule for connections from this host to `vip`, round-robin over the servers,
/// in a table of the lab's own (deleted with the fleet).
fn dnat(servers: &[Server], vip: SocketAddr) -> io::Result<String> {
    let (ip, port) = (vip.ip(), vip.port());
    let table = format!("corral_lab_{}_{port}", std::process::id());
    let map: Vec<String> =
        servers.iter().enumerate().map(|(i, s)| format!("{i} : 127.0.0.1 . {}", s.addr.port())).collect();
    let rules = format!(
        "table ip {table} {{\n  chain out {{\n    type nat hook output priority -100; policy accept;\n    \
         ip daddr {ip} tcp dport {port} dnat to numgen inc mod {} map {{ {} }}\n  }}\n}}\n",
        servers.len(),
        map.join(", ")
    );
    let mut nft = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    io::Write::write_all(nft.stdin.as_mut().expect("piped"), rules.as_bytes())?;
    drop(nft.stdin.take());
    let out = nft.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nft refused the DNAT rule: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(table)
}
