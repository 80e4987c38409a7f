//! The Prometheus text exposition format, made from the metrics list: one `# HELP` /
//! `# TYPE` pair per metric, a sample per listener or worker for scoped metrics (labelled
//! `listener` + `addr`, or `worker`), every metric listed even at zero.

use std::fmt::Write as _;

use super::metrics::{self, Scope};
use super::Stats;

fn number(v: f64, integer: bool) -> String {
    if integer {
        format!("{}", v as u64)
    } else {
        format!("{v:.6}")
    }
}

impl Stats {
    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut o = String::with_capacity(8 << 10);
        for m in metrics::all() {
            let name = m.prometheus_name();
            let _ = writeln!(o, "# HELP {name} {}\n# TYPE {name} {}", m.help, m.kind.name());
            let int = m.is_integer();
            match m.scope() {
                Scope::Engine => {
                    let _ = writeln!(o, "{name} {}", number(m.total(self), int));
                }
                Scope::Listener => {
                    for (i, l) in self.listeners.iter().enumerate() {
                        let addr = l.addr.map(|a| a.to_string()).unwrap_or_default();
                        let v = m.at(self, i).unwrap_or_default();
                        let _ = writeln!(o, "{name}{{listener=\"{i}\",addr=\"{addr}\"}} {}", number(v, int));
                    }
                }
                Scope::Worker => {
                    for i in 0..self.workers.len() {
                        let v = m.at(self, i).unwrap_or_default();
                        let _ = writeln!(o, "{name}{{worker=\"{i}\"}} {}", number(v, int));
                    }
                }
            }
        }
        o
    }
}
