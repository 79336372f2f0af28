//! The hooked name lookup: `getaddrinfo(3)` in a fiber runs on the loop's
//! pool of threads, as `fiberloop::net` already resolves names.
use std::ffi::{CStr, CString};
use std::panic::{self};

use libc::{addrinfo, c_char, c_int};

use super::park::{caught, errno, errno_of, in_fiber, set_errno};
use super::real;

// ---- name lookup -----------------------------------------------------------

/// A lookup's list, freed if nobody takes it (the fiber was cancelled).
struct AddrList(*mut addrinfo);

// SAFETY: the list is plain heap memory owned by whoever holds this value.
unsafe impl Send for AddrList {}

impl Drop for AddrList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a list getaddrinfo returned, freed once (`take` nulls it).
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

/// # Safety
/// As libc's `getaddrinfo(3)`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !in_fiber() {
        // SAFETY: the caller's arguments, forwarded.
        return unsafe { real::getaddrinfo()(node, service, hints, res) };
    }
    // The pool thread gets its own copies: the fiber may be cancelled and
    // its stack unwound while the lookup still runs.
    // SAFETY: non-null `node`/`service` are C strings; `hints` is null or valid.
    let owned =
        |s: *const c_char| (!s.is_null()).then(|| CString::from(unsafe { CStr::from_ptr(s) }));
    let (node_owned, service_owned) = (owned(node), owned(service));
    // SAFETY: as above.
    let hints_owned =
        unsafe { hints.as_ref() }.map(|h| (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol));
    let lookup = move || {
        // SAFETY: a zeroed addrinfo is the documented "no hints" value.
        let mut hints: addrinfo = unsafe { std::mem::zeroed() };
        if let Some((flags, family, socktype, protocol)) = hints_owned {
            (
                hints.ai_flags,
                hints.ai_family,
                hints.ai_socktype,
                hints.ai_protocol,
            ) = (flags, family, socktype, protocol);
        }
        let mut list = std::ptr::null_mut();
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is to data this closure owns, alive for the call.
        let code = unsafe {
            real::getaddrinfo()(
                ptr(&node_owned),
                ptr(&service_owned),
                if hints_owned.is_some() {
                    &hints
                } else {
                    std::ptr::null()
                },
                &mut list,
            )
        };
        (code, AddrList(list), errno())
    };
    match panic::catch_unwind(|| crate::blocking::unblock(lookup)) {
        Ok(Ok((code, mut list, error))) => {
            if code == 0 {
                // SAFETY: `res` is the caller's out pointer.
                unsafe { *res = std::mem::replace(&mut list.0, std::ptr::null_mut()) };
            } else if code == libc::EAI_SYSTEM {
                set_errno(error);
            }
            code
        }
        Ok(Err(e)) => {
            set_errno(errno_of(&e, false));
            libc::EAI_SYSTEM
        }
        Err(payload) => {
            set_errno(caught(payload));
            libc::EAI_SYSTEM
        }
    }
}
