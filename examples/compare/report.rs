//! Result tables, printed as text and written as Markdown with SVG charts
//! (`chart.rs`), plus the check of the targets we hold ourselves to.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chart::{self, Bar, Chart};
use crate::model::Model;

/// How a column's values are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ns,
    Us,
    Ms,
    Mib,
    Kib,
    Rate,
}

/// A column of medians.
pub struct Column {
    name: &'static str,
    unit: Unit,
}

impl Column {
    pub fn ns(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Ns,
        }
    }
    pub fn us(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Us,
        }
    }
    pub fn ms(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Ms,
        }
    }
    pub fn mib(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Mib,
        }
    }
    pub fn kib(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Kib,
        }
    }
    pub fn rate(name: &'static str) -> Column {
        Column {
            name,
            unit: Unit::Rate,
        }
    }

    /// `v` in this column's unit; `in_us`: a nanosecond column whose
    /// figures reach 1 µs is shown in µs throughout (one unit per column).
    fn format(&self, v: f64, in_us: bool) -> String {
        match self.unit {
            // Three significant figures: 0.114 µs beside 75.7 µs.
            Unit::Ns if in_us && v < 1_000.0 => format!("{:.3} µs", v / 1000.0),
            Unit::Ns if in_us && v < 10_000.0 => format!("{:.2} µs", v / 1000.0),
            Unit::Ns if in_us => format!("{:.1} µs", v / 1000.0),
            Unit::Ns => format!("{v:.1} ns"),
            Unit::Us => format!("{v:.0} µs"),
            Unit::Ms => format!("{v:.0} ms"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::Kib => format!("{v:.2} KiB"),
            Unit::Rate => format!("{:.0}", v),
        }
    }

    /// A tick label on a chart's axis: the number alone, in the axis' unit.
    fn tick(&self, v: f64, in_us: bool) -> String {
        let v = if self.unit == Unit::Ns && in_us {
            v / 1000.0
        } else {
            v
        };
        if v != 0.0 && v.abs() < 1.0 {
            format!("{}", (v * 1000.0).round() / 1000.0)
        } else if v.abs() >= 1e6 {
            format!("{:.0} M", v / 1e6)
        } else if v.abs() >= 1e4 {
            format!("{:.0} k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    }

    fn axis(&self, in_us: bool) -> String {
        let unit = match self.unit {
            Unit::Ns if in_us => "µs",
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::Mib => "MiB",
            Unit::Kib => "KiB",
            Unit::Rate => return self.name.to_owned(),
        };
        format!("{} ({unit})", self.name)
    }
}

/// One figure of a model: the median of its repetitions, and their range.
#[derive(Clone, Copy, Debug)]
pub struct Fig {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One model's figures, or why it has none.
struct Row {
    model: Model,
    values: Result<Vec<Fig>, String>,
}

/// The medians of one workload, one row per model.
pub struct Table {
    /// Short name (also the chart's file name).
    key: String,
    title: String,
    columns: Vec<Column>,
    rows: Vec<Row>,
    /// Columns drawn as charts (default: the headline).
    charted: Option<Vec<usize>>,
    /// Said under the table: repetitions that failed, for one.
    notes: Vec<String>,
}

impl Table {
    pub fn new(key: &str, title: &str, columns: Vec<Column>) -> Table {
        Table {
            key: key.to_owned(),
            title: title.to_owned(),
            columns,
            rows: Vec::new(),
            charted: None,
            notes: Vec::new(),
        }
    }

    /// Adds notes to print under the table.
    pub fn add_notes(&mut self, notes: Vec<String>) {
        self.notes.extend(notes);
    }

    /// Draws a chart for each of `columns` instead of the headline only.
    pub fn chart_columns(mut self, columns: Vec<usize>) -> Table {
        self.charted = Some(columns);
        self
    }

    pub fn row(&mut self, model: Model, values: Vec<Fig>) {
        self.rows.push(Row {
            model,
            values: Ok(values),
        });
    }

    pub fn skip(&mut self, model: Model, why: String) {
        self.rows.push(Row {
            model,
            values: Err(why),
        });
    }

    /// The median in `column` for `model`.
    pub fn value(&self, model: Model, column: usize) -> Option<f64> {
        self.figure(model, column).map(|f| f.median)
    }

    /// The figure in `column` for `model`.
    fn figure(&self, model: Model, column: usize) -> Option<Fig> {
        let row = self.rows.iter().find(|r| r.model == model)?;
        row.values
            .as_ref()
            .ok()?
            .get(column)
            .copied()
            .filter(|f| f.median.is_finite())
    }

    /// True if column `c` is in ns and some figure in it reaches 1 µs: the
    /// whole column is then shown in µs.
    fn in_us(&self, c: usize) -> bool {
        self.columns[c].unit == Unit::Ns
            && self.rows.iter().any(|row| {
                row.values
                    .as_ref()
                    .is_ok_and(|values| values.get(c).is_some_and(|f| f.median >= 1_000.0))
            })
    }

    /// The column whose figure the chart shows and the ratio compares: CPU per
    /// trip for servers, else the first.
    fn headline(&self) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == "server CPU/trip")
            .unwrap_or(0)
    }

    /// Rows as cells: model, values, and the headline relative to fibers.
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["model".to_owned()];
        header.extend(self.columns.iter().map(|c| c.name.to_owned()));
        let h = self.headline();
        let base = self.value(Model::Fibers, h);
        header.push(format!("{} vs fibers", self.columns[h].name));
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.model.name().to_owned()];
                match &row.values {
                    Ok(values) => {
                        let shown = values.iter().zip(&self.columns).enumerate();
                        cells.extend(shown.map(|(i, (f, c))| c.format(f.median, self.in_us(i))));
                        cells.push(match base {
                            Some(b) if b > 0.0 => ratio(values[h].median / b),
                            _ => "–".to_owned(),
                        });
                    }
                    Err(why) => {
                        cells.push(format!("n/a: {why}"));
                        cells.extend((0..self.columns.len()).map(|_| String::new()));
                    }
                }
                cells
            })
            .collect();
        (header, rows)
    }

    /// A plain-text table for the terminal.
    pub fn to_text(&self) -> String {
        let (header, rows) = self.cells();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows.iter().filter(|r| !r[1].starts_with("n/a")) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!("== {}: {}\n", self.key, self.title);
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if cell.starts_with("n/a") {
                    let _ = write!(s, "  {cell}");
                    break;
                }
                let pad = w.saturating_sub(cell.chars().count());
                if i == 0 {
                    let _ = write!(s, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(s, "  {}{cell}", " ".repeat(pad));
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        out += &line(&header);
        for row in &rows {
            out += &line(row);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    fn to_markdown(&self) -> String {
        let (header, rows) = self.cells();
        let mut out = format!(
            "### {}\n\n{}\n\n| {} |\n|{}\n",
            self.key,
            self.title,
            header.join(" | "),
            "---|".repeat(header.len())
        );
        for row in rows {
            let row: Vec<String> = row.into_iter().take_while(|c| !c.is_empty()).collect();
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        for note in &self.notes {
            let _ = write!(out, "\nNote: {note}.\n");
        }
        out
    }

    /// Writes the table's bar charts; returns their file names.
    fn charts(&self, dir: &Path) -> io::Result<Vec<String>> {
        let columns = self
            .charted
            .clone()
            .unwrap_or_else(|| vec![self.headline()]);
        let mut files = Vec::new();
        for (n, &col) in columns.iter().enumerate() {
            let bars: Vec<Bar> = self
                .rows
                .iter()
                .map(|r| Bar {
                    label: r.model.name().to_owned(),
                    fig: match &r.values {
                        Ok(_) => self
                            .figure(r.model, col)
                            .ok_or_else(|| "no figure".to_owned()),
                        Err(why) => Err(why.clone()),
                    },
                    color: chart::COLORS
                        [Model::ALL.iter().position(|&m| m == r.model).unwrap_or(0)],
                })
                .collect();
            if bars.iter().all(|b| b.fig.is_err()) {
                continue;
            }
            let stem = self.key.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            let column = &self.columns[col];
            let file = if n == 0 {
                format!("{stem}.svg")
            } else {
                let what = column
                    .name
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
                format!("{stem}_{what}.svg")
            };
            let in_us = self.in_us(col);
            let better = if column.unit == Unit::Rate {
                "higher"
            } else {
                "lower"
            };
            let svg = chart::svg(&Chart {
                title: format!("{}: {}, {better} is better", self.key, column.name),
                subtitle: self.title.clone(),
                axis: column.axis(in_us),
                bars,
                format: &|v| column.format(v, in_us),
                tick: &|v| column.tick(v, in_us),
            });
            std::fs::write(dir.join(&file), svg)?;
            files.push(file);
        }
        Ok(files)
    }
}

/// `64 B`, `4 KiB`.
pub fn bytes(n: usize) -> String {
    if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

/// The targets from the issue tracker, checked against this run's medians.
/// Where the targets come from, said wherever they are printed.
pub const TARGETS_SOURCE: &str = "Each target is checked on this run's medians: a ratio of the \
     first model to the second (lower is better; its range pairs the repetitions' best and \
     worst), or fibers' own figure (yield, idle). The targets are the project's own, \
     listed in docs/benchmarks.md (\"The targets compare checks\").";

/// The targets' verdicts, one line each.
pub fn targets(tables: &[Table]) -> Vec<String> {
    let find = |key: &str| tables.iter().find(|t| t.key == key);
    let ratio = |key: &str, col: usize, a: Model, b: Model| {
        let t = find(key)?;
        Some((t.figure(a, col)?, t.figure(b, col)?))
    };
    let mut out = Vec::new();
    let mut check = |what: &str, pair: Option<(Fig, Fig)>, limit: f64| {
        let line = match pair {
            Some((a, b)) if b.median > 0.0 && b.min > 0.0 => {
                let r = a.median / b.median;
                // The ratio's range over the repetitions: best and worst pairing.
                let (lo, hi) = (a.min / b.max, a.max / b.min);
                let verdict = if r <= limit {
                    "met".to_owned()
                } else {
                    format!("**missed** by {:.0} %", (r / limit - 1.0) * 100.0)
                };
                let spread = if lo <= limit && limit < hi {
                    " (the repetitions' range straddles the target: another run may say otherwise)"
                } else {
                    ""
                };
                format!(
                    "- {what}: {r:.3}× (repetitions {lo:.3}–{hi:.3}×; target ≤ {limit}×): {verdict}{spread}"
                )
            }
            _ => format!("- {what}: not measured in this run"),
        };
        out.push(line);
    };
    let (f, a, ct, mio) = (Model::Fibers, Model::Async, Model::TokioCt, Model::Mio);
    check(
        "spawn + join, fibers / tokio-ct",
        ratio("spawn_join", 0, f, ct),
        0.35,
    );
    check(
        "ping-pong, fibers / tokio-ct",
        ratio("ping_pong", 0, f, ct),
        0.4,
    );
    check(
        "skynet wall time, fibers / tokio-ct",
        ratio("skynet", 0, f, ct),
        1.0,
    );
    check(
        "skynet peak RSS, fibers / tokio-ct",
        ratio("skynet", 1, f, ct),
        1.0,
    );
    let echo = "echo 1000×64 B";
    check(
        "echo 1000×64 B server CPU/trip, fibers / mio",
        ratio(echo, 3, f, mio),
        1.10,
    );
    check(
        "echo 1000×64 B server CPU/trip, fibers / tokio-ct",
        ratio(echo, 3, f, ct),
        1.0,
    );
    check(
        "echo 1000×64 B server CPU/trip, async / fibers",
        ratio(echo, 3, a, f),
        1.05,
    );
    let absolute = |table: &str, what: &str, unit: &str, limit: f64| {
        match find(table)
        .and_then(|t| t.figure(f, 0))
    {
        Some(x) => format!(
            "- {what}, fibers: {:.2} {unit} (repetitions {:.2}–{:.2}; target ≤ {limit} {unit}): {}{}",
            x.median,
            x.min,
            x.max,
            if x.median <= limit {
                "met".to_owned()
            } else {
                format!("**missed** by {:.0} %", (x.median / limit - 1.0) * 100.0)
            },
            if x.min <= limit && limit < x.max {
                " (the repetitions' range straddles the target: another run may say otherwise)"
            } else {
                ""
            }
        ),
        None => format!("- {what}, fibers: not measured in this run"),
    }
    };
    out.push(absolute("yield", "yield", "ns", 10.0));
    out.push(absolute(
        "idle",
        "idle connections",
        "KiB per connection",
        12.0,
    ));
    out
}

/// Writes `report.md` and the charts into `dir`; returns the report's path.
pub fn write(dir: &Path, mode: &str, tables: &[Table], took: Duration) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mut md = format!(
        "# fiberloop compare report\n\n\
         Mode **{mode}**, {:.0} s in all. Machine: {} CPUs ({cpu}), Linux {}.\n\n\
         Every figure is the median of the run's repetitions; models run interleaved within\n\
         each repetition, so machine drift hits all alike. Servers run in a child process\n\
         pinned to CPU 0, the load generator on the last CPU. The last column divides one\n\
         column by fibers' figure: server CPU per round trip for the servers, the time per\n\
         operation for the micro workloads, wall time for skynet, RSS for idle; below 1× is\n\
         less than fibers. Charts: bar at the median, whisker from the fastest to the slowest\n\
         repetition, a log axis where figures span more than 20×. Method and analysis: `docs/benchmarks.md`.\n\n## Targets\n\n{TARGETS_SOURCE}\n\n",
        took.as_secs_f64(),
        crate::child::cpus(),
        kernel.trim()
    );
    for line in targets(tables) {
        md += &line;
        md.push('\n');
    }
    md += "\n## Results\n\n";
    for table in tables {
        md += &table.to_markdown();
        for chart in table.charts(dir)? {
            let _ = writeln!(md, "\n![{}]({chart})\n", table.key);
        }
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

/// A ratio with two significant figures when it is small (`0.0042×`, not
/// `0.00×`), two decimals otherwise.
fn ratio(r: f64) -> String {
    if r > 0.0 && r < 0.1 {
        let decimals = (-r.log10()).ceil() as usize + 1;
        format!("{r:.decimals$}×")
    } else {
        format!("{r:.2}×")
    }
}
