//! The scheduler trace (`FIBERLOOP_TRACE`, `LoopBuilder::trace`): the text
//! form of a scripted program line by line, the JSON form's tracks, run
//! slices and wake flows, and the file's life (shared by a runtime's
//! loops, continued by a later loop, an error for a path it cannot create).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fiberloop::EventLoop;
use serde_json::Value;

/// A fresh path in the temporary directory for test `name`.
fn path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fiberloop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn traced_loop(path: &Path) -> EventLoop {
    EventLoop::builder()
        .trace(Some(path.to_path_buf()))
        .stall_report_after(None)
        .build()
        .expect("a traced loop")
}

/// Ping-pong over channels between the main fiber and a named one, with a
/// yield: each line is one run, why it started, why it stopped.
#[test]
fn the_text_form_of_a_ping_pong_names_every_run() {
    let file = path("ping-pong.txt");
    traced_loop(&file).run_until_complete(|| {
        let (to_pong, pongs_rx) = fiberloop::sync::bounded::<u32>(1);
        let (to_main, main_rx) = fiberloop::sync::bounded::<u32>(1);
        let pong = fiberloop::Builder::new()
            .name("pong")
            .spawn(move || {
                while let Ok(n) = pongs_rx.recv() {
                    to_main.send(n + 1).unwrap();
                }
            })
            .unwrap();
        fiberloop::yield_now();
        for i in 0..2 {
            to_pong.send(i * 10).unwrap();
            assert_eq!(main_rx.recv().unwrap(), i * 10 + 1);
        }
        drop(to_pong);
        pong.join().unwrap();
    });
    let text = std::fs::read_to_string(&file).unwrap();
    // Column widths aside, line by line.
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = text.lines().skip(1).map(words).collect();
    let expected = [
        "1  #M main      spawned                  → yield",
        "2  #P pong      spawned by #M            → recv: channel empty",
        "3  #M main      after yield              → recv: channel empty",
        "4  #P pong      woken by #M              → recv: channel empty",
        "5  #M main      woken by #P              → recv: channel empty",
        "6  #P pong      woken by #M              → recv: channel empty",
        "7  #M main      woken by #P              → join #P",
        "8  #P pong      woken by #M              → return",
        "9  #M main      woken by #P              → return",
    ];
    assert!(text.starts_with("# loop "), "{text}");
    let ids = |line: &str| line.split_whitespace().nth(1).unwrap().to_string();
    let (main, pong) = (ids(&lines[0]), ids(&lines[1]));
    let expected: Vec<String> = expected
        .iter()
        .map(|l| words(&l.replace("#M", &main).replace("#P", &pong)))
        .collect();
    assert_eq!(lines, expected, "the whole trace:\n{text}");
}

/// Reads a JSON trace, checking that it is one well-formed array.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    value.as_array().expect("the array format").clone()
}

fn field<'a>(event: &'a Value, key: &str) -> &'a Value {
    &event[key]
}

/// A fiber sleeping and two fibers and an async task talking over a
/// channel: one named track each, a run slice per run, and a flow from
/// each wake's waker to the run it caused.
#[test]
fn the_json_form_has_a_track_per_task_run_slices_and_wake_flows() {
    let file = path("small.json");
    traced_loop(&file).run_until_complete(|| {
        let (tx, rx) = fiberloop::sync::bounded::<u32>(1);
        let sleeper = fiberloop::Builder::new()
            .name("sleeper")
            .spawn(|| fiberloop::sleep(Duration::from_millis(5)))
            .unwrap();
        let receiver = fiberloop::Builder::new()
            .name("receiver")
            .spawn(move || rx.recv().unwrap())
            .unwrap();
        let task = fiberloop::task::spawn(async move { tx.send_async(7).await.unwrap() });
        fiberloop::wait(task).unwrap().unwrap();
        assert_eq!(receiver.join().unwrap(), 7);
        sleeper.join().unwrap();
    });
    let events = events(&file);
    let ph = |e: &Value| field(e, "ph").as_str().unwrap_or("").to_string();
    let names: Vec<(u64, String)> = events
        .iter()
        .filter(|e| ph(e) == "M" && field(e, "name") == "thread_name")
        .map(|e| {
            let name = field(e, "args")["name"].as_str().unwrap().to_string();
            (field(e, "tid").as_u64().unwrap(), name)
        })
        .collect();
    let track = |suffix: &str| {
        names
            .iter()
            .find(|(_, name)| name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no track {suffix} in {names:?}"))
            .0
    };
    let (main, sleeper, receiver) = (
        track("main (fiber)"),
        track("sleeper (fiber)"),
        track("receiver (fiber)"),
    );
    let task = track("(async)");
    assert!(names.iter().any(|(_, name)| name == "loop"), "{names:?}");
    assert_eq!(
        names.len(),
        5,
        "one track per task and the loop's: {names:?}"
    );

    let slices: Vec<&Value> = events.iter().filter(|e| ph(e) == "X").collect();
    let runs_of = |tid: u64| -> Vec<(String, String)> {
        slices
            .iter()
            .filter(|e| field(e, "tid").as_u64() == Some(tid))
            .map(|e| {
                let args = field(e, "args");
                let arg = |k: &str| args[k].as_str().unwrap().to_string();
                (arg("started"), arg("stopped"))
            })
            .collect()
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        runs_of(sleeper),
        [
            s(&format!("spawned by #{main}"), "sleep"),
            s("timer due", "return")
        ]
    );
    assert_eq!(
        runs_of(receiver),
        [
            s(&format!("spawned by #{main}"), "recv: channel empty"),
            s(&format!("woken by #{task}"), "return")
        ]
    );
    assert_eq!(runs_of(task), [s(&format!("spawned by #{main}"), "return")]);
    assert_eq!(runs_of(main).first(), Some(&s("spawned", "future")));
    let loop_slices: Vec<&str> = slices
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter(|n| *n == "epoll_wait" || *n == "timers")
        .collect();
    assert!(loop_slices.contains(&"timers"), "{loop_slices:?}");
    assert!(loop_slices.contains(&"epoll_wait"), "{loop_slices:?}");

    // Every flow starts and ends at the start of a slice on its track.
    let starts_a_slice = |e: &Value| {
        slices.iter().any(|x| {
            field(x, "tid") == field(e, "tid")
                && field(x, "pid") == field(e, "pid")
                && field(x, "ts") == field(e, "ts")
        })
    };
    let flows: Vec<&Value> = events.iter().filter(|e| ph(e) == "s").collect();
    let ends: Vec<&Value> = events.iter().filter(|e| ph(e) == "f").collect();
    assert!(flows.len() >= 5, "spawns and wakes: {}", flows.len());
    for end in &ends {
        assert!(starts_a_slice(end), "{end}");
        let start = flows
            .iter()
            .find(|s| field(s, "id") == field(end, "id"))
            .unwrap_or_else(|| panic!("no start for {end}"));
        assert!(starts_a_slice(start), "{start}");
    }
    // The receiver's wake comes from the async task's run.
    let receiver_woken = ends
        .iter()
        .filter(|e| field(e, "tid").as_u64() == Some(receiver))
        .filter_map(|e| flows.iter().find(|s| field(s, "id") == field(e, "id")))
        .any(|s| field(s, "tid").as_u64() == Some(task));
    assert!(receiver_woken, "a flow from the async task to the receiver");
}

/// Many fibers that yield: a batch's budget cuts the run, and says so.
#[test]
fn a_budget_cut_is_marked() {
    let file = path("budget.txt");
    traced_loop(&file).run_until_complete(|| {
        let fibers: Vec<_> = (0..100)
            .map(|_| fiberloop::spawn(|| (0..3).for_each(|_| fiberloop::yield_now())))
            .collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("budget cut"), "{text}");
    let yields = text.lines().filter(|l| l.ends_with("→ yield")).count();
    assert_eq!(yields, 300, "each fiber's three yields");
}

/// A runtime's loops write one file, each as its own process.
#[test]
fn a_runtimes_loops_share_one_file() {
    let file = path("runtime.json");
    let rt = fiberloop::Runtime::builder()
        .loops(2)
        .diagnostics(fiberloop::EventLoop::builder().trace(Some(file.clone())))
        .build()
        .unwrap();
    let ran = rt.handle().on_each_loop(|_| 1).unwrap();
    assert_eq!(ran.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 2);
    drop(rt);
    let events = events(&file);
    let loops = events
        .iter()
        .filter(|e| field(e, "name") == "process_name")
        .count();
    assert_eq!(loops, 2);
}

/// A second loop on the same path carries on after the first one's events.
#[test]
fn a_later_loop_continues_the_file() {
    let file = path("two-runs.json");
    for _ in 0..2 {
        traced_loop(&file).run_until_complete(fiberloop::yield_now);
    }
    let events = events(&file);
    let pids: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| field(e, "name") == "process_name")
        .map(|e| field(e, "pid").as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "both loops: {pids:?}");
}

#[test]
fn a_trace_file_that_cannot_be_created_is_an_error() {
    let file = PathBuf::from("/nonexistent-dir/trace.json");
    let err = EventLoop::builder()
        .trace(Some(file))
        .build()
        .expect_err("no such directory");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains("/nonexistent-dir/trace.json"),
        "{err}"
    );
    // The thread has no loop left behind: a new one can be made.
    EventLoop::new().unwrap().run_until_complete(|| ());
}

/// A socket wait names its descriptor and direction, and the run it ends
/// says the descriptor became readable.
#[test]
fn a_socket_wait_names_its_descriptor() {
    use std::io::{Read, Write};
    let file = path("socket.txt");
    traced_loop(&file).run_until_complete(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = fiberloop::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).unwrap();
            buf
        });
        fiberloop::yield_now(); // the server parks in accept
        let mut client = fiberloop::net::TcpStream::connect(addr).unwrap();
        fiberloop::sleep(Duration::from_millis(5)); // and then in read
        client.write_all(b"ping").unwrap();
        assert_eq!(&server.join().unwrap(), b"ping");
    });
    let text = std::fs::read_to_string(&file).unwrap();
    let parked_on_fd = text.lines().find_map(|l| {
        let at = l.find("WouldBlock: wait for fd ")? + "WouldBlock: wait for fd ".len();
        l[at..].split_whitespace().next().map(str::to_string)
    });
    let fd = parked_on_fd.unwrap_or_else(|| panic!("no socket wait in\n{text}"));
    assert!(text.contains(&format!("fd {fd} readable")), "{text}");
    assert!(text.contains("epoll_wait("), "{text}");
}
