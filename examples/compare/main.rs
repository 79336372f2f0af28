//! `cargo run --release --example compare`: every workload in every model, in
//! one run, interleaved, with progress as it goes; prints tables and writes
//! `target/fiberloop-compare/report.md` with SVG charts.
//!
//! ```text
//! compare [--full] [--only W1,W2] [--models M1,M2] [--out DIR] [--smoke]
//!   workloads: spawn_join yield ping_pong skynet echo idle deep
//!   models:    fibers fibers-mt async tokio-ct tokio-mt threads may may-mt callbacks mio
//! ```
//!
//! The default quick mode takes about a minute on two cores; `--full` runs
//! longer and repeats more for steadier medians; `--smoke` is a seconds-long
//! check that everything runs (the tests use it). Method and analysis:
//! `docs/benchmarks.md`.

mod chart;
mod child;
mod load;
mod measure;
mod micro;
mod model;
mod report;
mod server;
mod skynet;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use measure::{figure, interleaved, Measured};
use micro::Micro;
use model::Model;
use report::{Column, Table};
use server::Proto;

/// How much work each workload does.
struct Plan {
    name: &'static str,
    reps: usize,
    /// Target time of one micro measurement.
    micro_time: Duration,
    skynet_leaves: u64,
    echo_warmup: Duration,
    echo_measure: Duration,
    echo_conns: Vec<usize>,
    echo_sizes: Vec<usize>,
    idle_conns: usize,
    deep_conns: usize,
    deep_depth: usize,
}

impl Plan {
    fn quick() -> Plan {
        Plan {
            name: "quick",
            reps: 3,
            micro_time: Duration::from_millis(20),
            skynet_leaves: 1_000_000,
            echo_warmup: Duration::from_millis(40),
            echo_measure: Duration::from_millis(150),
            echo_conns: vec![1, 100, 1000],
            echo_sizes: vec![64, 4096],
            idle_conns: 10_000,
            deep_conns: 100,
            deep_depth: 20,
        }
    }

    fn full() -> Plan {
        Plan {
            name: "full",
            reps: 7,
            micro_time: Duration::from_millis(100),
            echo_warmup: Duration::from_millis(200),
            echo_measure: Duration::from_millis(1000),
            ..Plan::quick()
        }
    }

    fn smoke() -> Plan {
        Plan {
            name: "smoke",
            reps: 1,
            micro_time: Duration::from_millis(2),
            skynet_leaves: 1_000,
            echo_warmup: Duration::from_millis(5),
            echo_measure: Duration::from_millis(20),
            echo_conns: vec![1, 10],
            echo_sizes: vec![64, 4096],
            idle_conns: 100,
            deep_conns: 10,
            ..Plan::quick()
        }
    }
}

const WORKLOADS: [&str; 7] = [
    "spawn_join",
    "yield",
    "ping_pong",
    "skynet",
    "echo",
    "idle",
    "deep",
];

struct Options {
    plan: Plan,
    only: Vec<String>,
    models: Vec<Model>,
    out: PathBuf,
}

/// The one-line synopsis.
fn synopsis() -> String {
    format!(
        "usage: compare [--full | --smoke] [--only {}] [--models {}] [--out DIR]",
        WORKLOADS.join(","),
        Model::ALL.map(Model::name).join(",")
    )
}

/// A bad command line: what is wrong, then the synopsis.
fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}\n{}", synopsis()),
    )
}

/// What `--help` prints.
fn help() -> String {
    format!(
        "compare: fibers, async/await, tokio, threads and may side by side\n\
         {}\n\
         \n  --full    7 repetitions of each figure, measured 5 times longer (default: 3)\
         \n  --smoke   1 repetition at tiny sizes: checks that everything runs, not for figures\
         \n  --only    the workloads to run, comma-separated (default: all)\
         \n  --models  the models to run, comma-separated (default: all)\
         \n  --out     where report.md and the charts go (default: target/fiberloop-compare)\
         \n\nThrough cargo, flags go after `--`: cargo run --release --example compare -- --help",
        synopsis()
    )
}

/// The options, or `None` when `--help` asked for the help.
fn options(args: &[String]) -> io::Result<Option<Options>> {
    let mut opts = Options {
        plan: Plan::quick(),
        only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
        models: Model::ALL.to_vec(),
        out: PathBuf::from("target/fiberloop-compare"),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--full" => opts.plan = Plan::full(),
            "--smoke" => opts.plan = Plan::smoke(),
            "--out" => opts.out = PathBuf::from(value()?),
            "--only" => {
                opts.only = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = opts.only.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
                    return Err(usage(&format!("unknown workload '{bad}'")));
                }
            }
            "--models" => {
                opts.models = value()?
                    .split(',')
                    .map(|m| Model::parse(m).ok_or_else(|| usage(&format!("unknown model '{m}'"))))
                    .collect::<io::Result<_>>()?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(usage(&format!("unknown argument '{other}'"))),
        }
    }
    Ok(Some(opts))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        child::main(&args[1..])
    } else {
        options(&args).and_then(|opts| match opts {
            Some(opts) => compare(&opts),
            None => {
                println!("{}", help());
                Ok(())
            }
        })
    };
    if let Err(e) = result {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

fn compare(opts: &Options) -> io::Result<()> {
    let started = Instant::now();
    let plan = &opts.plan;
    eprintln!(
        "compare: {} mode, {} repetitions per figure, models {}; {} CPUs",
        plan.name,
        plan.reps,
        opts.models
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        child::cpus()
    );
    let mut tables = Vec::new();
    for work in &opts.only {
        eprintln!("\n[{:>5.1}s] {work}", started.elapsed().as_secs_f64());
        match work.as_str() {
            "spawn_join" => tables.push(micro_table(Micro::SpawnJoin, opts)),
            "yield" => tables.push(micro_table(Micro::Yield, opts)),
            "ping_pong" => tables.push(micro_table(Micro::PingPong, opts)),
            "skynet" => tables.push(skynet_table(opts)),
            "echo" => tables.extend(echo_tables(opts)),
            "idle" => tables.push(idle_table(opts)),
            "deep" => tables.push(deep_table(opts)),
            _ => unreachable!("options() checked the workload"),
        }
        if work != "echo" {
            // (echo prints each of its tables as it finishes them)
            if let Some(table) = tables.last() {
                println!("{}", table.to_text());
            }
        }
    }
    println!("== Targets\n{}", report::TARGETS_SOURCE);
    for line in report::targets(&tables) {
        println!("{}", line.replace("**", ""));
    }
    let path = report::write(&opts.out, plan.name, &tables, started.elapsed())?;
    eprintln!(
        "\n[{:>5.1}s] report: {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

fn micro_table(work: Micro, opts: &Options) -> Table {
    let (what, per) = match work {
        Micro::SpawnJoin => ("spawn + join of an empty task", "time per spawn + join"),
        Micro::Yield => (
            "yield round trip (two tasks yielding in turn), per yield",
            "time per yield",
        ),
        Micro::PingPong => (
            "channel ping-pong between two tasks, per round trip",
            "time per round trip",
        ),
    };
    let mut table = Table::new(work.name(), what, vec![Column::ns(per)]);
    let (results, notes) = interleaved(
        opts,
        work.name(),
        |model| {
            if let Some(why) = work.unsupported(model) {
                return Err(why.into());
            }
            // Calibrate: aim each measurement at the plan's micro time.
            let probe = micro::run(work, model, 50).expect("supported");
            let per_op = probe.as_secs_f64() / 50.0;
            let iters =
                (opts.plan.micro_time.as_secs_f64() / per_op.max(1e-9)).clamp(50.0, 20e6) as u64;
            let elapsed = micro::run(work, model, iters).expect("supported");
            Ok(elapsed.as_nanos() as f64 / iters as f64)
        },
        |ns| format!("{ns:.1} ns"),
    );
    for (model, samples) in results {
        match samples {
            Ok(s) => table.row(model, vec![figure(&s, |&x| x)]),
            Err(why) => table.skip(model, why),
        }
    }
    table.add_notes(notes);
    table
}

fn skynet_table(opts: &Options) -> Table {
    let leaves = opts.plan.skynet_leaves;
    let tasks: u64 = (0..)
        .map(|d| 10u64.pow(d))
        .take_while(|&n| n <= leaves)
        .sum();
    let mut table = Table::new(
        "skynet",
        &format!("a tree of {tasks} tasks summing {leaves} leaves: wall time and peak RSS growth"),
        vec![Column::ms("wall"), Column::mib("peak RSS")],
    )
    .chart_columns(vec![0, 1]);
    let (results, notes) = interleaved(
        opts,
        "skynet",
        |model| {
            if let Some(why) = skynet::supports(model) {
                return Err(why.into());
            }
            let mut child = child::Child::spawn(&["skynet", model.name(), &leaves.to_string()])
                .map_err(|e| e.to_string())?;
            let words = child
                .expect("skynet", Duration::from_secs(60))
                .map_err(|e| e.to_string())?;
            let get = |i| child::parse::<u64>(&words, i).map_err(|e| e.to_string());
            let (sum, nanos, base, peak) = (get(0)?, get(1)?, get(2)?, get(3)?);
            if sum != skynet::answer(leaves) {
                return Err(format!("wrong sum {sum}"));
            }
            Ok((
                nanos as f64 / 1e6,
                peak.saturating_sub(base) as f64 / 1024.0,
            ))
        },
        |(ms, mib)| format!("{ms:.0} ms, {mib:.1} MiB"),
    );
    for (model, samples) in results {
        match samples {
            Ok(s) => table.row(model, vec![figure(&s, |x| x.0), figure(&s, |x| x.1)]),
            Err(why) => table.skip(model, why),
        }
    }
    table.add_notes(notes);
    table
}

/// One echo or deep run against a fresh server child.
struct ServerRun {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
}

fn server_run(model: Model, proto: Proto, load: &load::Load) -> Result<ServerRun, String> {
    if let Some(why) = proto.unsupported(model) {
        return Err(why.into());
    }
    let err = |e: io::Error| e.to_string();
    let mut child = child::Child::spawn(&["serve", model.name(), proto.name()]).map_err(err)?;
    let port: u16 = child::parse(
        &child.expect("port", Duration::from_secs(10)).map_err(err)?,
        0,
    )
    .map_err(err)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The load generator runs on its own thread, pinned away from the server.
    std::thread::scope(|s| {
        s.spawn(|| {
            child::pin_to_cpu(child::cpus() - 1);
            let mut marks = Vec::new();
            let outcome = load::run(addr, load, |mark| match mark {
                load::Mark::Connected(n) => child.wait_for_active(n),
                load::Mark::Window => {
                    marks.push(child.stats()?.cpu_ns);
                    Ok(())
                }
            })
            .map_err(err)?;
            if outcome.trips == 0 || marks.len() != 2 {
                return Err("no round trips completed".into());
            }
            Ok(ServerRun {
                rate: outcome.rate(),
                p50_us: outcome.latency_us(0.5),
                p99_us: outcome.latency_us(0.99),
                cpu_ns: (marks[1] - marks[0]) as f64 / outcome.trips as f64,
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the load generator panicked".into()))
    })
}

fn server_columns() -> Vec<Column> {
    vec![
        Column::rate("round trips/s"),
        Column::us("p50"),
        Column::us("p99"),
        Column::ns("server CPU/trip"),
    ]
}

fn server_table(table: Table, (results, notes): Measured<ServerRun>) -> Table {
    // CPU per trip (the headline), throughput and p99.
    let mut table = table.chart_columns(vec![3, 0, 2]);
    for (model, samples) in results {
        match samples {
            Ok(s) => table.row(
                model,
                vec![
                    figure(&s, |r| r.rate),
                    figure(&s, |r| r.p50_us),
                    figure(&s, |r| r.p99_us),
                    figure(&s, |r| r.cpu_ns),
                ],
            ),
            Err(why) => table.skip(model, why),
        }
    }
    table.add_notes(notes);
    table
}

fn show_run(r: &ServerRun) -> String {
    format!(
        "{:.0} trips/s, p99 {:.0} µs, {:.0} ns CPU/trip",
        r.rate, r.p99_us, r.cpu_ns
    )
}

fn echo_tables(opts: &Options) -> Vec<Table> {
    let plan = &opts.plan;
    let mut tables = Vec::new();
    for &conns in &plan.echo_conns {
        for &size in &plan.echo_sizes {
            let load = load::Load {
                conns,
                request: vec![vec![0x5a; size]],
                response: vec![0x5a; size],
                warmup: plan.echo_warmup,
                measure: plan.echo_measure,
            };
            let name = format!("echo {conns}×{}", report::bytes(size));
            let (results, notes) = interleaved(
                opts,
                &name,
                |model| server_run(model, Proto::Echo, &load),
                show_run,
            );
            let plural = if conns == 1 { "" } else { "s" };
            let title = format!(
                "TCP echo, {conns} connection{plural} × {} messages, one outstanding each",
                report::bytes(size)
            );
            tables.push(server_table(
                Table::new(&name, &title, server_columns()),
                (results, notes),
            ));
            if let Some(table) = tables.last() {
                println!("{}", table.to_text());
            }
        }
    }
    tables
}

fn deep_table(opts: &Options) -> Table {
    let plan = &opts.plan;
    let depth = plan.deep_depth;
    let number = 12345;
    let load = load::Load {
        conns: plan.deep_conns,
        // Sent in two chunks, a loop turn apart: the parser waits 20 calls deep.
        request: vec![
            format!("{}{number}", "[".repeat(depth)).into_bytes(),
            format!("{}\n", "]".repeat(depth)).into_bytes(),
        ],
        response: format!("{}\n", number + depth).into_bytes(),
        warmup: plan.echo_warmup,
        measure: plan.echo_measure,
    };
    let title = format!(
        "deep blocking: {} connections, requests parsed by a recursive parser that waits for the socket {depth} calls deep",
        plan.deep_conns
    );
    let (results, notes) = interleaved(
        opts,
        "deep",
        |model| server_run(model, Proto::Deep, &load),
        show_run,
    );
    server_table(
        Table::new("deep", &title, server_columns()),
        (results, notes),
    )
}

fn idle_table(opts: &Options) -> Table {
    let n = opts.plan.idle_conns;
    let mut table = Table::new(
        "idle",
        &format!("{n} idle connections, each handler parked in a blocking read (4 KiB buffer): server RSS growth per connection"),
        vec![Column::kib("RSS/conn")],
    );
    let (results, notes) = interleaved(
        opts,
        "idle",
        |model| idle_run(model, n).map_err(|e| e.to_string()),
        |kib| format!("{kib:.2} KiB/conn"),
    );
    for (model, samples) in results {
        match samples {
            Ok(s) => table.row(model, vec![figure(&s, |&x| x)]),
            Err(why) => table.skip(model, why),
        }
    }
    table.add_notes(notes);
    table
}

fn idle_run(model: Model, n: usize) -> io::Result<f64> {
    let mut child = child::Child::spawn(&["serve", model.name(), "echo"])?;
    let port: u16 = child::parse(&child.expect("port", Duration::from_secs(10))?, 0)?;
    let before = child.stats()?;
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        if i % load::CONNECT_BATCH == 0 {
            child.wait_for_active(i)?;
        }
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                load::reset_on_close(&s)?;
                streams.push(s);
            }
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                return Err(io::Error::other(format!("the client ran out of file descriptors after {} connections (raise `ulimit -n`)", streams.len())))
            }
            Err(e) => return Err(e),
        }
    }
    child.wait_for_active(n)?;
    std::thread::sleep(Duration::from_millis(200)); // let the last handlers park
    let after = child.stats()?;
    Ok(after.rss_kib.saturating_sub(before.rss_kib) as f64 / n as f64)
}
