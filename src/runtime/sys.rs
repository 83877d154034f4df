//! System calls made in a child between fork and exec (`pre_exec`): only
//! async-signal-safe libc calls on values prepared before the fork.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Marks every fd from 3 up close-on-exec, so nothing the parent holds without
/// O_CLOEXEC leaks into the new program (std's own exec-error pipe keeps working).
pub(super) fn cloexec_from_3() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(rc as libc::c_int)
}

pub(super) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Makes the whole mount tree a slave of the host's: nothing mounted here
/// leaks out, and unmounts there (a namespace bind mount under
/// /run/swarmnet/netns, a shared mount) reach here, so no copy keeps a
/// removed namespace alive.
pub(super) fn make_rslave() -> io::Result<()> {
    // SAFETY: static C strings, null data; mount(2) is async-signal-safe.
    check(unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    })
}

/// Mounts a fresh, read-only sysfs on /sys: sysfs shows the network devices
/// of the namespace that mounts it, so the container sees its own (as Docker's do).
pub(super) fn mount_sysfs() -> io::Result<()> {
    // SAFETY: static C strings, null data; mount(2) is async-signal-safe.
    check(unsafe {
        libc::mount(
            c"sysfs".as_ptr(),
            c"/sys".as_ptr(),
            c"sysfs".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    })
}

/// Bind-mounts the file `source` over the file `target`.
pub(super) fn bind(source: &CStr, target: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings made before the fork, null fstype and data.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}
