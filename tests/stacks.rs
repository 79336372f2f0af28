//! Stacks: reuse without leaking state or memory, custom sizes, limits, overflow.

mod util;

use std::time::Duration;

#[test]
fn reused_stacks_do_not_leak_state_between_fibers() {
    fiberloop::run(|| {
        // A fiber fills its stack with a pattern; the next one on the same
        // (pooled) stack starts from a clean frame: its locals are its own.
        fiberloop::spawn(|| {
            let buf = [0xAAu8; 16 * 1024];
            std::hint::black_box(&buf);
        })
        .join()
        .unwrap();
        let seen = fiberloop::spawn(|| {
            let buf = [0u8; 16 * 1024];
            std::hint::black_box(&buf).iter().all(|&b| b == 0)
        })
        .join()
        .unwrap();
        assert!(seen);
        // Thread-local fiber identity does not carry over either.
        let a = fiberloop::spawn(|| fiberloop::current().id())
            .join()
            .unwrap();
        let b = fiberloop::spawn(|| fiberloop::current().id())
            .join()
            .unwrap();
        assert_ne!(a, b);
    });
}

#[test]
fn thousands_of_fibers_reuse_a_bounded_number_of_stacks() {
    fiberloop::run(|| {
        for _ in 0..20 {
            let batch: Vec<_> = (0..500)
                .map(|i| {
                    fiberloop::spawn(move || {
                        fiberloop::sleep(Duration::from_millis(1));
                        i
                    })
                })
                .collect();
            for h in batch {
                h.join().unwrap();
            }
        }
        // 10,000 fibers ran, at most ~500 at once: the pool holds about that many.
        let idle = fiberloop::stack::idle_count();
        assert!(idle <= 520, "idle stacks: {idle}");
    });
}

#[test]
fn a_custom_stack_size_is_honoured() {
    fiberloop::run(|| {
        // 512 KiB of locals would overflow the 64 KiB default; with a 1 MiB stack it fits.
        let h = fiberloop::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(|| {
                let big = [1u8; 512 * 1024];
                std::hint::black_box(&big)
                    .iter()
                    .map(|&b| b as usize)
                    .sum::<usize>()
            })
            .unwrap();
        assert_eq!(h.join().unwrap(), 512 * 1024);
    });
}

#[test]
fn an_impossible_stack_size_is_an_error() {
    fiberloop::run(|| {
        let err = fiberloop::Builder::new()
            .stack_size(usize::MAX - 4095)
            .spawn(|| ())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn running_out_of_address_space_is_reported_by_spawn() {
    if util::in_child() {
        // Cap the address space a little above what is mapped now, then ask
        // for stacks bigger than what is left.
        let limit = 4u64 << 30;
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: setrlimit reads the struct we pass.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
        fiberloop::run(|| {
            let err = fiberloop::Builder::new()
                .stack_size(8 << 30)
                .spawn(|| ())
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
            println!("SPAWN-ERROR: {err}");
            // The loop still works.
            assert_eq!(fiberloop::spawn(|| 1).join().unwrap(), 1);
        });
        return;
    }
    let (stdout, _) = util::run_in_child_ok("running_out_of_address_space_is_reported_by_spawn");
    assert!(stdout.contains("SPAWN-ERROR: cannot map a"), "{stdout}");
    assert!(stdout.contains("out of memory"), "{stdout}");
}

/// True when `vm.max_map_count` is Linux's default (a child that runs into
/// a raised one would take too long).
fn default_map_count() -> bool {
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let default = max.is_some_and(|m| m <= 70_000);
    if !default {
        println!(
            "vm.max_map_count is not the default here; the child would take too long, skipped"
        );
    }
    default
}

/// Spawning blocked fibers with default stacks, without yielding: spawn
/// fails with an error naming `vm.max_map_count` before the stacks run out,
/// every fiber it accepted runs, and the loop closes (no abort, no hang).
#[test]
fn hitting_vm_max_map_count_names_the_limit() {
    if util::in_child() {
        let ran = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let r = ran.clone();
        let spawned = fiberloop::run(move || {
            let mut parked = Vec::new();
            let err = loop {
                let r = r.clone();
                match fiberloop::Builder::new().spawn(move || {
                    r.set(r.get() + 1);
                    fiberloop::sleep(Duration::from_secs(3600));
                }) {
                    Ok(h) => parked.push(h),
                    Err(e) => break e,
                }
                assert!(parked.len() < 200_000, "no limit was hit");
            };
            println!("SPAWN-ERROR after {} fibers: {err}", parked.len());
            // All of them start now, each mapping its stack (bounded by the
            // child's own time limit).
            while r.get() < parked.len() {
                fiberloop::sleep(Duration::from_millis(5));
            }
            // Memory is still there for everything else.
            let big = vec![1u8; 64 << 20];
            assert_eq!(big.len(), 64 << 20);
            parked.len()
        });
        assert_eq!(ran.get(), spawned, "every accepted fiber ran");
        println!("RAN {spawned}");
        return;
    }
    if !default_map_count() {
        return;
    }
    let (stdout, _) = util::run_in_child_ok("hitting_vm_max_map_count_names_the_limit");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("fiber stacks are in use"), "{stdout}");
    assert!(stdout.contains("sysctl -w vm.max_map_count="), "{stdout}");
    assert!(stdout.contains("RAN "), "{stdout}");
}

/// The same with `fiberloop::spawn`, which panics at the limit: the panic
/// reaches `run`'s caller and the loop's teardown unwinds every fiber.
#[test]
fn spawn_panics_at_the_limit_and_the_loop_still_closes() {
    if util::in_child() {
        let outcome = std::panic::catch_unwind(|| {
            fiberloop::run(|| loop {
                fiberloop::spawn(|| fiberloop::sleep(Duration::from_secs(3600)));
            })
        });
        let payload = outcome.unwrap_err();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        println!("PANIC: {message}");
        return;
    }
    if !default_map_count() {
        return;
    }
    let (stdout, _) = util::run_in_child_ok("spawn_panics_at_the_limit_and_the_loop_still_closes");
    assert!(
        stdout.contains("PANIC: fiberloop::spawn: cannot map"),
        "{stdout}"
    );
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
}

#[test]
fn a_stack_overflow_names_the_fiber_before_aborting() {
    if util::in_child() {
        fn recurse(depth: u64) -> u64 {
            let pad = [depth; 64];
            std::hint::black_box(&pad);
            if depth == u64::MAX {
                return 0; // never: the stack runs out long before
            }
            recurse(depth + 1) + pad[3]
        }
        fiberloop::run(|| {
            fiberloop::Builder::new()
                .name("deep-diver")
                .stack_size(32 * 1024)
                .spawn(|| recurse(0))
                .unwrap()
                .join()
                .ok();
        });
        return;
    }
    let out = util::run_in_child("a_stack_overflow_names_the_fiber_before_aborting");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'deep-diver' has overflowed its stack of 32768 bytes"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
}

#[test]
fn a_fault_outside_fiber_stacks_still_reaches_the_default_handler() {
    if util::in_child() {
        fiberloop::run(|| {
            fiberloop::spawn(|| {
                // SAFETY: deliberately invalid, to check that the fault is not
                // mistaken for a fiber stack overflow.
                unsafe { std::ptr::write_volatile(16 as *mut u8, 1) };
            })
            .join()
            .ok();
        });
        return;
    }
    let out = util::run_in_child("a_fault_outside_fiber_stacks_still_reaches_the_default_handler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{stderr}");
    assert!(!stderr.contains("overflowed"), "{stderr}");
}

/// The pool and the loop's idle coroutines share one budget of idle stacks
/// per thread (once each had its own, so twice the budget could sit idle).
#[test]
fn idle_stacks_stay_within_one_budget_per_thread() {
    let budget = fiberloop::stack::MAX_IDLE_BYTES / fiberloop::DEFAULT_STACK_SIZE;
    fiberloop::run(move || {
        let (tx, rx) = fiberloop::sync::unbounded::<()>();
        let started = std::rc::Rc::new(std::cell::Cell::new(0));
        // Twice the budget alive at once, then all finish.
        let fibers: Vec<_> = (0..2 * budget)
            .map(|_| {
                let (rx, started) = (rx.clone(), started.clone());
                fiberloop::spawn(move || {
                    started.set(started.get() + 1);
                    rx.recv()
                })
            })
            .collect();
        while started.get() < 2 * budget {
            fiberloop::yield_now(); // until every one holds a stack
        }
        drop(tx);
        for f in fibers {
            let _ = f.join().unwrap();
        }
        let idle = fiberloop::stack::idle_count();
        assert!(idle <= budget, "{idle} idle stacks, budget {budget}");
    });
    let idle = fiberloop::stack::idle_count();
    assert!(
        idle <= budget,
        "after the loop: {idle} idle stacks, budget {budget}"
    );
}
