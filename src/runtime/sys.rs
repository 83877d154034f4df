//! System calls made in a child between fork and exec (`pre_exec`): only
//! async-signal-safe calls on values prepared before the fork.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;

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
    match rc {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

pub(super) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Makes the whole mount tree a slave of the host's: nothing mounted here
/// leaks out, and unmounts there (a namespace bind mount under
/// /run/swarmnet/netns, a shared mount) reach here, so no copy keeps a
/// removed namespace alive.
pub(super) fn make_rslave() -> io::Result<()> {
    mount(
        Some(c"none"),
        c"/",
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
    )
}

/// Mounts a fresh, read-only sysfs on /sys: sysfs shows the network devices
/// of the namespace that mounts it, so the container sees its own (as Docker's do).
pub(super) fn mount_sysfs() -> io::Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some(c"sysfs"), c"/sys", Some(c"sysfs"), flags)
}

/// Bind-mounts the file `source` over the file `target`.
pub(super) fn bind(source: &CStr, target: &CStr) -> io::Result<()> {
    mount(Some(source), target, None, MsFlags::MS_BIND)
}

/// mount(2) with no data; C strings pass through nix without an allocation.
fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: MsFlags,
) -> io::Result<()> {
    Ok(nix::mount::mount(
        source,
        target,
        fstype,
        flags,
        None::<&CStr>,
    )?)
}
