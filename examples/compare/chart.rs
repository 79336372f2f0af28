//! The report's bar charts, written as SVG text: one bar per model at its
//! median, a whisker from the repetitions' best to worst, the value beside
//! the whisker, "n/a" and the reason for a model without a figure, and a
//! logarithmic axis when the figures span more than 20× (threads beside
//! fibers would otherwise flatten every other bar).

use std::fmt::Write as _;

use crate::report::Fig;

/// One row of a chart.
pub struct Bar {
    pub label: String,
    /// The figure, or why this model has none.
    pub fig: Result<Fig, String>,
    pub color: &'static str,
}

/// A horizontal bar chart.
pub struct Chart<'a> {
    /// What is measured, and which way is better.
    pub title: String,
    /// The workload, in a sentence.
    pub subtitle: String,
    /// The axis: what and in which unit.
    pub axis: String,
    pub bars: Vec<Bar>,
    /// A value as the table shows it (`12.3 ns`, `4.56 µs`).
    pub format: &'a dyn Fn(f64) -> String,
    /// The axis' tick labels, in the axis' unit.
    pub tick: &'a dyn Fn(f64) -> String,
}

const WIDTH: f64 = 820.0;
/// The plot's left and right edges; model names sit left of it, values right.
const X0: f64 = 110.0;
const X1: f64 = 640.0;
const TOP: f64 = 80.0;
const ROW: f64 = 28.0;

/// High-contrast colours on white (Okabe–Ito, darkened where pale), one per
/// model in `Model::ALL` order.
pub const COLORS: [&str; 10] = [
    "#0072B2", "#003F6B", "#D55E00", "#009E73", "#00664A", "#7A5195", "#B0508A", "#7F2F5F",
    "#8C6D00", "#555555",
];

/// Where values map on the axis.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    fn new(values: &[f64]) -> Scale {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        if lo > 0.0 && hi / lo > 20.0 {
            Scale {
                lo: 10f64.powf(lo.log10().floor()),
                hi: 10f64.powf(hi.log10().ceil()),
                log: true,
            }
        } else {
            let step = nice_step(hi.max(1e-9) * 1.05 / 6.0);
            Scale {
                lo: 0.0,
                hi: (hi.max(1e-9) * 1.05 / step).ceil() * step,
                log: false,
            }
        }
    }

    fn x(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            v / self.hi
        };
        X0 + t.clamp(0.0, 1.0) * (X1 - X0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.hi / self.lo).log10().round() as i32;
            let steps: &[f64] = if decades <= 3 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let mut ticks = Vec::new();
            for d in 0..=decades {
                for s in steps {
                    let v = self.lo * 10f64.powi(d) * s;
                    if v <= self.hi * 1.0001 {
                        ticks.push(v);
                    }
                }
            }
            ticks
        } else {
            let step = nice_step(self.hi / 6.0);
            (0..=((self.hi / step).round() as usize))
                .map(|i| i as f64 * step)
                .collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> String {
    let figs: Vec<f64> = chart
        .bars
        .iter()
        .filter_map(|b| b.fig.as_ref().ok())
        .flat_map(|f| [f.min, f.median, f.max])
        .filter(|v| v.is_finite())
        .collect();
    let scale = Scale::new(&figs);
    let rows = chart.bars.len() as f64;
    let axis_y = TOP + rows * ROW + 4.0;
    let height = axis_y + 52.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"12\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n\
         <text x=\"12\" y=\"44\" font-size=\"12\" fill=\"#333\">{}</text>\n\
         <text x=\"12\" y=\"62\" font-size=\"12\" fill=\"#333\">bar: median · whisker: fastest to slowest repetition{}</text>\n",
        escape(&chart.title),
        escape(&chart.subtitle),
        if scale.log { " · log scale" } else { "" }
    );
    for t in scale.ticks() {
        let x = scale.x(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            axis_y + 16.0,
            escape(&(chart.tick)(t))
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{X0}\" y1=\"{axis_y}\" x2=\"{X1}\" y2=\"{axis_y}\" stroke=\"#333\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
        (X0 + X1) / 2.0,
        axis_y + 38.0,
        escape(&chart.axis)
    );
    for (i, bar) in chart.bars.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let mid = y + ROW / 2.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"end\">{}</text>",
            X0 - 8.0,
            mid + 4.5,
            escape(&bar.label)
        );
        match &bar.fig {
            Ok(f) => {
                let (xm, xa, xb) = (scale.x(f.median), scale.x(f.min), scale.x(f.max));
                let _ = writeln!(
                    s,
                    "<rect x=\"{X0}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n\
                     <path d=\"M{xa:.1} {mid:.1}H{xb:.1}M{xa:.1} {:.1}V{:.1}M{xb:.1} {:.1}V{:.1}\" \
                     stroke=\"black\" stroke-width=\"1.5\" class=\"whisker\"/>\n\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
                    y + 5.0,
                    (xm - X0).max(1.0),
                    ROW - 10.0,
                    bar.color,
                    mid - 5.0,
                    mid + 5.0,
                    mid - 5.0,
                    mid + 5.0,
                    xb.max(xm) + 6.0,
                    mid + 4.0,
                    escape(&(chart.format)(f.median))
                );
            }
            Err(why) => {
                let mut why = why.clone();
                if why.chars().count() > 70 {
                    why = why.chars().take(69).collect::<String>() + "…";
                }
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#555\">n/a: {}</text>",
                    X0 + 6.0,
                    mid + 4.0,
                    escape(&why)
                );
            }
        }
    }
    s += "</svg>\n";
    s
}
