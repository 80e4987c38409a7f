//! A server's memory while it takes uploads: its process and every descendant (Granian
//! serves from a child process), read from `/proc`. At the start each process's peak
//! (`VmHWM`) is reset to its current size (`clear_refs` 5), so afterwards `VmHWM` minus
//! the start's `VmRSS` is each process's growth, whenever it peaked; a sampler beside it
//! (every 10 ms) covers kernels or permissions where the reset is refused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: u64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// `pid` and its descendants (by the parent field of `/proc/*/stat`).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            // The name may hold spaces and parentheses: fields resume after the last ')'.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
            if let Some(pp) = after.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) {
                parent.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| status_bytes(p, "VmRSS")).sum()
}

/// What the watch saw, in bytes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rss {
    /// Resident size of the process tree at the start.
    pub start: u64,
    /// Its peak over the run (`start + growth`).
    pub peak: u64,
    pub growth: u64,
    /// How the peak was read: `VmHWM` (reset at the start) or `sampled` (every 10 ms).
    pub how: &'static str,
    pub processes: usize,
}

/// Watches a process tree from [`Watch::start`] to [`Watch::finish`].
pub struct Watch {
    pids: Vec<u32>,
    start: Vec<u64>,
    reset: bool,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    pub fn start(pid: u32) -> Result<Watch, String> {
        let pids = tree(pid);
        let start: Vec<u64> = pids.iter().map(|&p| status_bytes(p, "VmRSS").unwrap_or(0)).collect();
        if start.first() == Some(&0) {
            return Err(format!("cannot read /proc/{pid}/status: is process {pid} running (and this Linux)?"));
        }
        let reset = pids.iter().all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok());
        let peak = Arc::new(AtomicU64::new(start.iter().sum()));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (pids, peak, stop) = (pids.clone(), Arc::clone(&peak), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(total_rss(&pids), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Ok(Watch { pids, start, reset, peak, stop, sampler: Some(sampler) })
    }

    pub fn finish(mut self) -> Rss {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        let start: u64 = self.start.iter().sum();
        let sampled = self.peak.load(Ordering::Relaxed).saturating_sub(start);
        let hwm = self.reset.then(|| {
            self.pids
                .iter()
                .zip(&self.start)
                .map(|(&p, &s)| status_bytes(p, "VmHWM").unwrap_or(s).saturating_sub(s))
                .sum::<u64>()
        });
        let (growth, how) = match hwm {
            Some(h) => (h.max(sampled), "VmHWM"),
            None => (sampled, "sampled"),
        };
        Rss { start, peak: start + growth, growth, how, processes: self.pids.len() }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_this_process_grow() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        let w = Watch::start(me).unwrap();
        let mut big = vec![1u8; 64 << 20];
        // Touch every page so it is resident.
        for i in (0..big.len()).step_by(4096) {
            big[i] = i as u8;
        }
        std::hint::black_box(&big);
        drop(big);
        let r = w.finish();
        assert!(r.growth >= 60 << 20, "a 64 MiB buffer shows in the peak: {r:?}");
        assert_eq!(r.peak, r.start + r.growth);
        assert!(Watch::start(u32::MAX - 1).err().unwrap().contains("cannot read"));
    }
}
