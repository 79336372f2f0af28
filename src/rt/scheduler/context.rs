//! The loop installed on this thread, and the calls that reach it from
//! anywhere in the crate: `with_core`, waking a task on its own loop, and
//! the same-loop join that needs no `Waker`.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use super::Core;
use crate::rt::coro::{Resume, Suspend};
use crate::rt::task::TaskCell;

thread_local! {
    /// This thread's loop, from `EventLoop::new` until it is dropped.
    static CORE: Slot = const { Slot(RefCell::new(None)) };
    /// The same loop as a plain pointer (null when there is none), so that the
    /// hot paths (every wake, every wait) reach it without a lazily
    /// initialized thread-local or a `RefCell` borrow.
    static CORE_PTR: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
}

/// `CORE`'s value; clears `CORE_PTR` before the loop it points to can go,
/// should the thread end with its loop still installed (a leaked `EventLoop`).
struct Slot(RefCell<Option<Rc<Core>>>);

impl Drop for Slot {
    fn drop(&mut self) {
        CORE_PTR.with(|ptr| ptr.set(std::ptr::null()));
    }
}

/// Runs `f` with this thread's loop, if it has one. Always inlined: waits
/// run inside `f`, and the stack switch must stay in the caller's frame
/// (docs/benchmarks.md).
#[inline(always)]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let ptr = CORE_PTR.with(Cell::get);
    // SAFETY: `CORE_PTR` is non-null only while `CORE` holds the `Rc` it
    // points into: `install` sets it after storing the `Rc`; `uninstall` and
    // `Slot`'s destructor clear it before giving the `Rc` up. Neither runs
    // inside `f`: uninstalling is dropping the `EventLoop`, which no internal
    // closure does. An `f` that parks a fiber (a blocking wait) is suspended,
    // not running, while the loop turns; the loop is uninstalled only after
    // it has unwound every fiber (or given one up for good, never to resume
    // it), so such an `f` only ever runs while the loop is alive.
    (!ptr.is_null()).then(|| f(unsafe { &*ptr }))
}

/// This thread's loop, if it has one.
#[inline]
pub(crate) fn core() -> Option<Rc<Core>> {
    CORE.try_with(|core| core.0.borrow().clone()).ok().flatten()
}

/// Makes `core` this thread's loop; fails if the thread already has one.
pub(crate) fn install(core: Rc<Core>) -> io::Result<()> {
    CORE.with(|slot| {
        let mut slot = slot.0.borrow_mut();
        if slot.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this thread already has a fiberloop event loop (one loop per thread)",
            ));
        }
        CORE_PTR.with(|ptr| ptr.set(Rc::as_ptr(&core)));
        *slot = Some(core);
        Ok(())
    })
}

/// Removes this thread's loop.
pub(crate) fn uninstall() -> Option<Rc<Core>> {
    CORE_PTR.with(|ptr| ptr.set(std::ptr::null()));
    CORE.try_with(|slot| slot.0.borrow_mut().take())
        .ok()
        .flatten()
}

/// Queues a woken task on its loop: directly on the loop's own thread (where
/// its reference goes to the task's bank), through the remote queue from
/// anywhere else.
#[inline]
pub(crate) fn wake_task(task: Arc<TaskCell>) {
    let mut task = Some(task);
    with_core(|core| {
        if task.as_ref().is_some_and(|t| t.is_owned_by(&core.shared)) {
            let task = task.take().expect("checked");
            core.schedule_ref(&task);
            TaskCell::release_on_owner(task, core);
        }
    });
    if let Some(task) = task {
        // A task not adopted yet needs no wake: adoption queues it.
        if let Some(shared) = task.owner() {
            shared.push_remote(task);
        }
    }
}

/// Queues `task` if the caller is on its loop's thread; false otherwise.
pub(crate) fn wake_local(task: &TaskCell) -> bool {
    with_core(|core| {
        let local = task.is_owned_by(&core.shared);
        if local {
            core.schedule_ref(task);
        }
        local
    })
    .unwrap_or(false)
}

/// Waits for `task` to finish if the caller is a fiber of the same loop, by
/// leaving its own task in `task`'s owner-only joiner cell: no atomics, no
/// `Waker`. Returns `None`, having done nothing, for any other caller.
/// Inlined so the switch happens close to the caller's frame (see
/// docs/benchmarks.md on the return-address predictor).
#[inline(always)]
pub(crate) fn join_on_same_loop(
    task: &Arc<TaskCell>,
) -> Option<Result<(), crate::rt::wait::WaitError>> {
    if !crate::rt::coro::in_fiber() {
        return None;
    }
    let core = core()?;
    if !task.is_owned_by(core.shared()) {
        return None;
    }
    // Inside a timeout scope, the generic path (which sets a timer) applies.
    if core
        .with_current(|me| me.local(&core).deadline.get())
        .flatten()
        .is_some()
    {
        return None;
    }
    let joiner = &task.local(&core).joiner;
    let me = core.current_key().expect("a running fiber has a task");
    let on = crate::rt::diag::WaitOn::Join { id: task.id };
    while !task.is_complete() {
        joiner.set(Some(me));
        core.begin_wait(on, None);
        let resume = crate::rt::coro::suspend(Suspend::Park);
        core.end_wait(on); // before a cancellation unwinds from here
        let resume = match resume {
            Resume::Capture => join_after_capture(&core, on),
            other => other,
        };
        if let Err(e) = crate::rt::wait::resumed(resume) {
            return Some(Err(e)); // cancelled while unwinding
        }
    }
    Some(Ok(()))
}

/// The rest of a join whose fiber was resumed only for its backtrace (the
/// fiber dump): records it and parks again, as before.
#[cold]
#[inline(never)]
fn join_after_capture(core: &super::Core, on: crate::rt::diag::WaitOn) -> Resume {
    core.begin_wait(on, None);
    let resume = crate::rt::coro::recapture(Suspend::Park);
    core.end_wait(on);
    resume
}
