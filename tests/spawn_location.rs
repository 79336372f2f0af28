//! Every way to spawn a fiber records where it was called from
//! (`Fiber::spawn_location`), not a line inside fiberloop.

use std::panic::Location;

/// Asserts that `location` is `line` of this file.
fn assert_here(location: &Location<'_>, line: u32) {
    assert_eq!(
        (location.file(), location.line()),
        (file!(), line),
        "{location}"
    );
}

#[test]
fn each_spawning_call_records_its_caller() {
    let main_line = line!() + 1;
    fiberloop::run(move || {
        assert_here(fiberloop::current().spawn_location(), main_line);

        let line = line!() + 1;
        let plain = fiberloop::spawn(|| ());
        assert_here(plain.fiber().spawn_location(), line);

        let line = line!() + 1;
        let built = fiberloop::Builder::new().name("b").spawn(|| ()).unwrap();
        assert_here(built.fiber().spawn_location(), line);

        fiberloop::scope(|s| {
            let line = line!() + 1;
            let scoped = s.spawn(|| fiberloop::current().spawn_location());
            assert_here(scoped.join().unwrap(), line);
        });
    });
}

#[test]
fn spawns_from_other_threads_record_their_caller_too() {
    let rt = fiberloop::Runtime::builder().loops(2).build().unwrap();
    let handle = rt.handle();
    let line = line!() + 1;
    let placed = handle.spawn(|| ()).unwrap();
    assert_here(placed.fiber().spawn_location(), line);
    let line = line!() + 1;
    let pinned = handle.spawn_on(1, || ()).unwrap();
    assert_here(pinned.fiber().spawn_location(), line);
    placed.join().unwrap();
    pinned.join().unwrap();

    let event_loop = fiberloop::EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let line = line!() + 1;
    let adopted = remote.spawn(|| ()).unwrap();
    assert_here(adopted.fiber().spawn_location(), line);
    event_loop.run_until_complete(move || adopted.join().unwrap());
}
