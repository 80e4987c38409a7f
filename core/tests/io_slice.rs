//! I/O workers ask the scheduler for a short slice (EEVDF custom slice), so a waking
//! worker preempts heavy work instead of waiting out its slice.

use std::time::Duration;

use corral::{handler_fn, Config, Engine, Response};

/// `se.slice` (ns) of every thread of this process named `name`, where the kernel
/// shows it (Linux 6.6 and later).
fn slices(name: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let sched = std::fs::read_to_string(t.path().join("sched")).unwrap_or_default();
        if let Some(v) = sched.lines().find(|l| l.starts_with("se.slice")).and_then(|l| l.split(':').nth(1)) {
            out.push(v.trim().parse().unwrap());
        }
    }
    out
}

fn custom_slices_supported() -> bool {
    let (major, minor) = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| {
            let mut it = r.split(['.', '-']);
            Some((it.next()?.parse::<u32>().ok()?, it.next()?.parse::<u32>().ok()?))
        })
        .unwrap_or((0, 0));
    (major, minor) >= (6, 12)
}

#[test]
fn io_workers_run_with_the_configured_slice() {
    let cfg = Config::builder().io_workers(2).io_slice(Duration::from_micros(250)).build().unwrap();
    let e = Engine::serve(cfg, handler_fn(|_r, res| res.respond(Response::new(200)))).unwrap();
    // The workers set their slice first thing; wait until both threads show it.
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while custom_slices_supported() && start.elapsed() < Duration::from_secs(30) {
        seen = [slices("corral-io-0"), slices("corral-io-1")].concat();
        if seen.len() == 2 && seen.iter().all(|&s| s == 250_000) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if custom_slices_supported() {
        assert_eq!(seen, vec![250_000, 250_000], "both I/O workers run with a 250 us slice");
    }
    e.shutdown(Duration::from_secs(30)).unwrap();
}

#[test]
fn out_of_range_slices_are_refused_and_zero_keeps_the_kernel_default() {
    for bad in [Duration::from_micros(50), Duration::from_millis(200)] {
        let err = Config::builder().io_slice(bad).build().unwrap_err();
        assert!(err.to_string().contains("io_slice"), "{err}");
    }
    assert_eq!(Config::builder().io_slice(Duration::ZERO).build().unwrap().io_slice(), Duration::ZERO);
    assert_eq!(Config::default().io_slice(), Duration::from_micros(100));
}
