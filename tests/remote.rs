//! RemoteHandle: reaching a loop from other threads.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use fiberloop::EventLoop;

#[test]
fn call_soon_threadsafe_runs_on_the_loop_thread_and_wakes_it() {
    let event_loop = EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let handle = event_loop.handle();
    let loop_thread = std::thread::current().id();
    let (tx, rx) = mpsc::channel();
    let stopper = handle.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20)); // the loop sleeps in poll meanwhile
        remote
            .call_soon_threadsafe(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap();
    });
    // Nothing else would wake the loop: only the remote call can end this.
    handle.call_later(Duration::from_secs(30), move || stopper.stop());
    let h = handle.clone();
    let watcher = fiberloop::spawn(move || loop {
        if let Ok(id) = rx.try_recv() {
            h.stop();
            return id;
        }
        fiberloop::sleep(Duration::from_millis(1));
    });
    event_loop.run_forever();
    assert!(
        watcher.is_finished(),
        "stopped by the remote call, not the 30 s guard"
    );
    assert_eq!(watcher.join().unwrap(), loop_thread);
}

#[test]
fn fibers_and_futures_spawned_from_another_thread() {
    let event_loop = EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let other = std::thread::spawn(move || {
        let fiber = remote
            .spawn(|| {
                fiberloop::sleep(Duration::from_millis(2));
                fiberloop::current()
                    .name()
                    .map(str::to_owned)
                    .unwrap_or_default()
                    + "fiber"
            })
            .unwrap();
        let task = remote
            .spawn_future(async {
                fiberloop::time::sleep(Duration::from_millis(2)).await;
                "future"
            })
            .unwrap();
        // Plain-thread waits on both.
        (
            fiber.join().unwrap(),
            fiberloop::wait(task).unwrap().unwrap(),
        )
    });
    event_loop.run_until_complete(|| fiberloop::sleep(Duration::from_millis(100)));
    assert_eq!(other.join().unwrap(), ("fiber".to_string(), "future"));
}

#[test]
fn dropping_a_remote_task_cancels_it() {
    let event_loop = EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let other = std::thread::spawn(move || {
        let task = remote
            .spawn_future(async move {
                fiberloop::time::sleep(Duration::from_millis(50)).await;
                f.store(true, Ordering::SeqCst);
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        drop(task);
    });
    event_loop.run_until_complete(|| fiberloop::sleep(Duration::from_millis(100)));
    other.join().unwrap();
    assert!(!finished.load(Ordering::SeqCst));
}

#[test]
fn after_the_loop_closes_remote_calls_fail_and_pending_spawns_are_cancelled() {
    let event_loop = EventLoop::new().unwrap();
    let remote = event_loop.remote();
    // Handed in but never run: the loop closes before driving it.
    let pending = remote.spawn(|| 1).unwrap();
    drop(event_loop);
    assert!(pending.join().unwrap_err().is_cancelled());
    let err = remote.call_soon_threadsafe(|| ()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    let err = remote.spawn(|| 2).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
}

#[test]
fn the_cross_thread_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<fiberloop::RemoteHandle>();
    send::<fiberloop::time::Sleep>();
    send::<fiberloop::time::Timeout<std::future::Ready<()>>>();
    send::<fiberloop::task::Task<u32>>();
    send::<fiberloop::JoinHandle<u32>>();
}
