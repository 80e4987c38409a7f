//! Grouped bar charts as standalone SVG (no plotting dependency: the lab needs bars,
//! error bars, a legend and an axis, nothing more).

use std::fmt::Write as _;

const COLORS: [&str; 8] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One bar: its height and the interval drawn over it as an error bar (none where
/// `low == high` or either is not finite).
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Bar {
    pub fn new(value: f64, low: f64, high: f64) -> Bar {
        Bar { value, low, high }
    }

    fn interval(&self) -> Option<(f64, f64)> {
        (self.low.is_finite() && self.high.is_finite() && self.low != self.high)
            .then(|| (self.low.min(self.high), self.low.max(self.high)))
    }
}

/// One group of bars per category, one bar per series; `log`: a logarithmic y axis.
pub fn grouped_bars(title: &str, y_label: &str, cats: &[String], series: &[(String, Vec<Bar>)], log: bool) -> String {
    let vals = series
        .iter()
        .flat_map(|(_, v)| v.iter().flat_map(|b| [b.value, b.low, b.high]))
        .filter(|v| v.is_finite() && *v > 0.0);
    let bars_max =
        series.iter().flat_map(|(_, v)| v.iter().map(|b| b.value)).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    // A linear axis reaches the error bars up to twice the tallest bar (a wide interval
    // must not flatten every bar); longer ones are cut at the top of the plot.
    let max = vals.clone().fold(0.0f64, f64::max);
    let max = if log { max } else { max.min(2.0 * bars_max) }.max(bars_max).max(1e-9);
    let min = vals.fold(f64::INFINITY, f64::min).min(max);
    let (lo, hi) =
        if log { (min.log10().floor(), max.log10().ceil().max(min.log10().floor() + 1.0)) } else { (0.0, max * 1.1) };
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| -> f64 {
        let f = if log {
            if v > 0.0 {
                (v.log10() - lo) / (hi - lo)
            } else {
                0.0
            }
        } else {
            v / hi
        };
        TOP + plot_h * (1.0 - f.clamp(0.0, 1.0))
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(o, r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#, W / 2.0, esc(title));
    // Axis and grid.
    let ticks: Vec<f64> = if log {
        (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|i| hi * i as f64 / 5.0).collect()
    };
    for t in ticks {
        let ty = y(t);
        let _ = writeln!(o, r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#ddd"/>"##, W - RIGHT);
        let label = if t >= 1000.0 { format!("{t:.0}") } else { format!("{t:.2}") };
        let _ = writeln!(o, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#, LEFT - 6.0, ty + 4.0);
    }
    let _ = writeln!(
        o,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    let group_w = plot_w / cats.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (ci, cat) in cats.iter().enumerate() {
        let gx = LEFT + group_w * ci as f64 + group_w * 0.1;
        for (si, (name, bars)) in series.iter().enumerate() {
            let bar = bars.get(ci).copied().unwrap_or(Bar::new(0.0, 0.0, 0.0));
            let v = if bar.value.is_finite() { bar.value } else { 0.0 };
            let top = y(v);
            let x = gx + bar_w * si as f64;
            let range = bar.interval().map(|(lo, hi)| format!(" ({lo}-{hi})")).unwrap_or_default();
            let _ = writeln!(
                o,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {v}{range}</title></rect>"#,
                bar_w * 0.92,
                (TOP + plot_h - top).max(0.0),
                COLORS[si % COLORS.len()],
                esc(cat),
                esc(name)
            );
            if let Some((lo, hi)) = bar.interval() {
                // The error bar: a line from the interval's low end to its high end, with caps.
                let cx = x + bar_w * 0.46;
                let cap = (bar_w * 0.25).min(6.0);
                let (y0, y1) = (y(lo), y(hi));
                let _ = writeln!(
                    o,
                    r##"<path class="interval" d="M{cx:.1} {y0:.1}V{y1:.1}M{:.1} {y0:.1}H{:.1}M{:.1} {y1:.1}H{:.1}" stroke="#222" stroke-width="1.2" fill="none"/>"##,
                    cx - cap,
                    cx + cap,
                    cx - cap,
                    cx + cap
                );
            }
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            TOP + plot_h + 18.0,
            esc(cat)
        );
    }
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    for (si, (name, _)) in series.iter().enumerate() {
        let ly = TOP + 18.0 * si as f64;
        let lx = W - RIGHT + 14.0;
        let _ = writeln!(o, r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/>"#, COLORS[si % COLORS.len()]);
        let _ = writeln!(o, r#"<text x="{}" y="{}">{}</text>"#, lx + 18.0, ly + 10.0, esc(name));
    }
    if series.iter().any(|(_, b)| b.iter().any(|b| b.interval().is_some())) {
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">bars: median; I: min-max over rounds</text>"#,
            W - RIGHT + 14.0,
            TOP + 18.0 * series.len() as f64 + 14.0
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_one_closed_svg_element_with_a_bar_per_value_and_its_error_bars() {
        let cats = vec!["a".to_string(), "b<".to_string()];
        let p = |v: f64| Bar::new(v, v, v);
        let series = vec![
            ("x".to_string(), vec![Bar::new(1.0, 0.8, 1.3), p(2.0)]),
            ("y".to_string(), vec![Bar::new(10.0, 9.0, 12.0), p(f64::NAN)]),
        ];
        for log in [false, true] {
            let s = grouped_bars("t & u", "v", &cats, &series, log);
            assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
            assert_eq!(s.matches("<rect x=").count(), 4 + series.len());
            assert_eq!(s.matches(r#"class="interval""#).count(), 2, "an error bar where low and high differ");
            assert!(s.contains("t &amp; u") && s.contains("b&lt;") && !s.contains("NaN"));
        }
        let points = vec![("x".to_string(), vec![p(1.0), p(2.0)])];
        assert!(!grouped_bars("t", "v", &cats, &points, false).contains("interval"));
    }
}
