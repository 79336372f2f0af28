//! The fiber dump: every fiber with its state, what it waits on, where it
//! was spawned, and a backtrace (taken on its own stack) that contains the
//! user's function.

use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream};

mod util;
use fiberloop::sync::{bounded, Mutex};

#[inline(never)]
fn wait_on_socket(mut stream: TcpStream) {
    let mut byte = [0u8; 1];
    let _ = stream.read(&mut byte);
}

#[inline(never)]
fn wait_on_channel(rx: fiberloop::sync::Receiver<u8>) {
    let _ = rx.recv();
}

#[inline(never)]
fn wait_on_mutex(lock: Rc<Mutex<u32>>) {
    let _guard = lock.lock();
}

#[inline(never)]
fn wait_on_sleep() {
    let start = std::time::Instant::now();
    fiberloop::sleep(Duration::from_secs(30));
    // Work after the wait keeps it a call (not a tail jump) in release builds.
    std::hint::black_box(start.elapsed());
}

/// The loop's dump, from a function of its own (a frame in release builds too).
#[inline(never)]
fn take_dump() -> String {
    let dump = fiberloop::handle().dump();
    std::hint::black_box(dump)
}

/// The dump's block for the fiber named `name` (its title line up to the
/// next fiber's).
fn block<'a>(dump: &'a str, name: &str) -> &'a str {
    let start = dump
        .find(&format!("'{name}'"))
        .unwrap_or_else(|| panic!("no fiber '{name}' in:\n{dump}"));
    let rest = &dump[start..];
    let end = rest[1..]
        .find("\nfiber #")
        .or_else(|| rest[1..].find("\ntask #"))
        .map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[test]
fn a_dump_names_each_wait_and_shows_the_users_function() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, _) = listener.accept().unwrap();
        let (tx, rx) = bounded::<u8>(1);
        let lock = Rc::new(Mutex::new(0));
        let held = lock.lock().unwrap();
        let spawn = |name: &str, f: Box<dyn FnOnce()>| {
            fiberloop::Builder::new().name(name).spawn(f).unwrap()
        };
        let fibers = vec![
            spawn("reader", Box::new(move || wait_on_socket(client))),
            spawn("receiver", Box::new(move || wait_on_channel(rx))),
            spawn(
                "locker",
                Box::new({
                    let lock = lock.clone();
                    move || wait_on_mutex(lock)
                }),
            ),
            spawn("sleeper", Box::new(wait_on_sleep)),
        ];
        // Let each run up to its wait.
        for _ in 0..4 {
            fiberloop::yield_now();
        }
        let dump = take_dump();

        let reader = block(&dump, "reader");
        assert!(reader.contains("parked for"), "{reader}");
        assert!(reader.contains("read from fd"), "{reader}");
        assert!(reader.contains("tcp 127.0.0.1:"), "{reader}");
        assert!(reader.contains("wait_on_socket"), "{reader}");

        let receiver = block(&dump, "receiver");
        assert!(receiver.contains("recv from channel 0x"), "{receiver}");
        assert!(receiver.contains("wait_on_channel"), "{receiver}");

        let locker = block(&dump, "locker");
        assert!(locker.contains("mutex 0x"), "{locker}");
        assert!(
            locker.contains("'main'") && locker.contains("held by fiber #"),
            "{locker}"
        );
        assert!(locker.contains("wait_on_mutex"), "{locker}");

        let sleeper = block(&dump, "sleeper");
        assert!(sleeper.contains("on sleep (deadline in"), "{sleeper}");
        assert!(sleeper.contains("wait_on_sleep"), "{sleeper}");
        assert!(
            sleeper.contains("spawned at tests/diag_dump.rs:"),
            "{sleeper}"
        );

        let main = block(&dump, "main");
        assert!(main.contains("running"), "{main}");
        assert!(main.contains("diag_dump::take_dump"), "{main}");

        // The dump left every fiber where it was: each wait ends normally.
        drop(held);
        tx.send(7).unwrap();
        for fiber in fibers {
            fiber.cancel();
        }
    });
}

#[test]
fn a_dump_lists_async_tasks_and_what_they_await() {
    fiberloop::run(|| {
        let (_tx, rx) = bounded::<u8>(1);
        let task = fiberloop::task::spawn(async move { rx.recv_async().await });
        fiberloop::yield_now();
        let lock = Rc::new(Mutex::new(0));
        let held = lock.lock().unwrap();
        let locker = fiberloop::task::spawn({
            let lock = lock.clone();
            async move {
                *lock.lock_async().await += 1;
            }
        });
        fiberloop::yield_now();
        let dump = fiberloop::handle().dump();
        assert!(dump.contains("task #"), "{dump}");
        assert!(dump.contains("on recv from channel"), "{dump}");
        assert!(dump.contains("an async task: no stack"), "{dump}");
        assert!(dump.contains("'main' when last seen"), "{dump}");
        drop(held);
        fiberloop::wait(locker).unwrap().unwrap();
        task.cancel();
    });
}

#[test]
fn a_remote_handle_dumps_the_loop_from_another_thread() {
    let event_loop = fiberloop::EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let asker = std::thread::spawn(move || remote.dump(Duration::from_secs(10)));
    event_loop.run_until_complete(|| {
        fiberloop::sleep(Duration::from_millis(200));
    });
    let dump = asker.join().unwrap().unwrap();
    assert!(
        dump.contains("fiber #") && dump.contains("'main'"),
        "{dump}"
    );
    assert!(dump.contains("on sleep"), "{dump}");
}

#[test]
fn child_raises_sigquit() {
    if !util::in_child() {
        return;
    }
    fiberloop::run(|| {
        let _sleeper = fiberloop::Builder::new()
            .name("napper")
            .spawn(wait_on_sleep)
            .unwrap();
        fiberloop::yield_now();
        // SAFETY: raising a signal has no memory-safety preconditions.
        assert_eq!(unsafe { libc::raise(libc::SIGQUIT) }, 0);
        fiberloop::sleep(Duration::from_millis(300));
    });
}

#[test]
fn sigquit_dumps_the_loop_when_asked_to() {
    if util::in_child() {
        return;
    }
    let envs = [("FIBERLOOP_DUMP_ON_SIGQUIT", "1")];
    let (_, stderr) = util::run_in_child_ok_with("child_raises_sigquit", &envs);
    assert!(stderr.contains("fiberloop: loop "), "{stderr}");
    assert!(stderr.contains("'napper': parked for"), "{stderr}");
    assert!(stderr.contains("wait_on_sleep"), "{stderr}");
}

#[test]
fn a_runtime_dumps_every_loop() {
    let runtime = fiberloop::Runtime::builder().loops(2).build().unwrap();
    let napper = runtime
        .handle()
        .spawn_on(1, || fiberloop::sleep(Duration::from_secs(30)))
        .unwrap();
    let handle = runtime.handle().clone();
    let dump = runtime.run(move || {
        fiberloop::sleep(Duration::from_millis(50)); // the napper parks meanwhile
        handle.dump(Duration::from_secs(10))
    });
    assert!(dump.contains("runtime loop 0"), "{dump}");
    assert!(dump.contains("runtime loop 1"), "{dump}");
    assert!(dump.contains("on sleep (deadline in"), "{dump}");
    napper.cancel();
}

/// With the `hook` feature, a fiber blocked in std's `TcpStream::read` is
/// parked on its descriptor like fiberloop's own sockets.
#[cfg(feature = "hook")]
#[test]
fn a_dump_shows_a_hooked_std_read() {
    fiberloop::run(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, _) = listener.accept().unwrap();
        let reader = fiberloop::Builder::new()
            .name("std-reader")
            .spawn(move || {
                let mut byte = [0u8; 1];
                let _ = client.read(&mut byte);
            })
            .unwrap();
        fiberloop::yield_now();
        let dump = fiberloop::handle().dump();
        let reader_block = block(&dump, "std-reader");
        assert!(reader_block.contains("read from fd"), "{reader_block}");
        assert!(reader_block.contains("tcp 127.0.0.1:"), "{reader_block}");
        reader.cancel();
    });
}
