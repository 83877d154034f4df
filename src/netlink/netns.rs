//! Persistent network namespaces (kept alive by a bind mount of the namespace
//! file, as `ip netns add` makes them) and rtnetlink handles whose socket
//! lives inside one.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Makes a new network namespace kept alive by a bind mount at `path` (which
/// must not exist), with `lo` up.
///
/// The parent directory is first made a shared mount point, as iproute2 does
/// for /run/netns: containers get their own mount namespace, and a private
/// copy of these bind mounts there would keep a namespace alive after we
/// unmount it here.
pub fn create(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    share(dir)?;
    let owned = path.to_owned();
    std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || make(&owned))
        .context("cannot start a thread")?
        .join()
        .map_err(|_| anyhow!("the thread creating {} panicked", path.display()))?
}

/// Makes `dir` a mount point (a bind mount of itself if it is not one yet)
/// with shared propagation. A lock on the directory keeps two callers from
/// stacking two bind mounts.
fn share(dir: &Path) -> anyhow::Result<()> {
    let opened = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let _lock = Flock::lock(opened, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot lock {}", dir.display()))?;
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot make {} shared", dir.display())),
    }
    // EINVAL: not a mount point yet.
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("cannot bind-mount {} onto itself", dir.display()))?;
    make_shared().with_context(|| format!("cannot make {} shared", dir.display()))
}

/// Runs on a fresh thread: unshares its network namespace, pins it at `path`
/// and brings `lo` up in it.
fn make(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .with_context(|| format!("cannot create the namespace file {}", path.display()))?;
    let pinned = unshare(CloneFlags::CLONE_NEWNET)
        .context("cannot unshare the network namespace")
        .and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .context("cannot bind-mount the new namespace")
        });
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(path);
        return Err(e.context(format!("creating network namespace {}", path.display())));
    }
    if let Err(e) = loopback_up() {
        let _ = remove(path);
        return Err(
            anyhow::Error::from(e).context(format!("cannot bring lo up in {}", path.display()))
        );
    }
    Ok(())
}

/// Unmounts and deletes the namespace file at `path`; the namespace goes
/// away when nothing else holds it. Ok if absent.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot unmount {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot delete {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// True when `path` is a network namespace file (a pinned namespace, or a
/// process's /proc/PID/ns/net).
pub fn is_namespace(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    nix::sys::statfs::fstatfs(&file)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Opens the namespace at `path`, e.g. to move a link into it by fd.
pub fn open(path: &Path) -> anyhow::Result<File> {
    if !is_namespace(path) {
        anyhow::bail!("{} is not a network namespace", path.display());
    }
    File::open(path).with_context(|| format!("cannot open network namespace {}", path.display()))
}

/// Runs `f` on a fresh thread that has entered the namespace at `path`, inside
/// the caller's tokio runtime context (so sockets it opens register with the
/// reactor), and returns its result. Sockets opened by `f` stay bound to that
/// namespace wherever they are used afterwards. `setns` is per thread, which
/// is why this never runs on a tokio worker.
pub async fn run_in<T, F>(path: &Path, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    run_inside(open(path)?, &path.display().to_string(), f).await
}

/// `run_in` for a namespace already open (`namespace`, called `name` in
/// errors), such as a process's /proc/PID/ns/net held while its owner is
/// checked.
pub async fn run_inside<T, F>(namespace: File, name: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-enter".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let outcome = setns(&namespace, CloneFlags::CLONE_NEWNET)
                .context("cannot enter the namespace")
                .and_then(|()| f());
            let _ = done.send(outcome);
        })
        .context("cannot start a thread")?;
    result
        .await
        .map_err(|_| anyhow!("the thread inside {name} panicked"))?
        .with_context(|| format!("in network namespace {name}"))
}

/// An rtnetlink handle bound to one network namespace; owns the task driving
/// its connection (aborted on drop).
pub struct NsHandle {
    handle: rtnetlink::Handle,
    connection: tokio::task::JoinHandle<()>,
    name: String,
}

impl NsHandle {
    /// The namespace's path, or "the host namespace", for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Deref for NsHandle {
    type Target = rtnetlink::Handle;

    fn deref(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

impl Drop for NsHandle {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A handle whose socket lives in the namespace at `path`, usable from any
/// thread.
pub async fn handle_in(path: &Path) -> anyhow::Result<NsHandle> {
    handle_inside(open(path)?, path.display().to_string()).await
}

/// `handle_in` for a namespace already open, called `name` in errors.
pub async fn handle_inside(namespace: File, name: String) -> anyhow::Result<NsHandle> {
    let (connection, handle) = run_inside(namespace, &name, || {
        let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        Ok((connection, handle))
    })
    .await?;
    Ok(NsHandle {
        handle,
        connection: tokio::spawn(connection),
        name,
    })
}

/// A handle in the calling thread's namespace (the daemon's host namespace).
pub async fn handle_here() -> anyhow::Result<NsHandle> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    Ok(NsHandle {
        handle,
        connection: tokio::spawn(connection),
        name: "the host namespace".into(),
    })
}

#[cfg(test)]
pub(crate) use super::scratch::ScratchDir;

/// Brings `lo` up in the current network namespace: one ioctl, which a
/// container's shim can make after unshare without a netlink socket or runtime.
pub fn loopback_up() -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills in the ifreq we own, through a valid pointer.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the flags member is the one SIOCGIFFLAGS just filled in.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own, through a valid pointer.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use futures::TryStreamExt;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn nsenter(ns: &Path, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(args)
            .output()
            .expect("running nsenter")
    }

    #[test]
    #[ignore = "needs root"]
    fn create_pins_a_namespace_and_remove_releases_it() {
        let scratch = ScratchDir::new("nst");
        let dir = scratch.path().join("ns");
        let ns = dir.join("one");
        create(&ns).unwrap();
        assert!(is_namespace(&ns));
        assert!(!is_namespace(scratch.path()));
        let err = format!("{:#}", create(&ns).unwrap_err());
        assert!(err.contains(&ns.display().to_string()), "{err}");

        let out = Command::new("findmnt")
            .args(["-n", "-o", "PROPAGATION", "--mountpoint"])
            .arg(&dir)
            .output()
            .unwrap();
        let propagation = String::from_utf8_lossy(&out.stdout);
        assert!(propagation.contains("shared"), "{propagation:?}");

        let out = nsenter(&ns, &["ip", "-o", "link", "show"]);
        let links = String::from_utf8_lossy(&out.stdout);
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains("lo:") && links.contains(",UP,"), "{links}");

        create(&dir.join("two")).unwrap();
        remove(&ns).unwrap();
        assert!(!ns.exists());
        remove(&ns).unwrap();
        assert!(is_namespace(&dir.join("two")));
    }

    #[test]
    #[ignore = "needs root"]
    fn a_handle_works_inside_its_namespace_from_any_thread() {
        let scratch = ScratchDir::new("nst");
        let ns = scratch.path().join("h");
        create(&ns).unwrap();
        let bridge = format!("snb{}", std::process::id() % 100_000);
        runtime().block_on(async {
            let handle = handle_in(&ns).await.unwrap();
            assert_eq!(handle.name(), ns.display().to_string());
            handle
                .link()
                .add()
                .bridge(bridge.clone())
                .execute()
                .await
                .unwrap();
            let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
            assert_eq!(links.len(), 2);

            let here = handle_here().await.unwrap();
            let found = here
                .link()
                .get()
                .match_name(bridge.clone())
                .execute()
                .try_next()
                .await;
            assert!(
                found.is_err(),
                "the bridge leaked into the test's namespace"
            );

            let missing = scratch.path().join("missing");
            let err = format!("{:#}", handle_in(&missing).await.err().unwrap());
            assert!(err.contains("is not a network namespace"), "{err}");
        });
        assert!(nsenter(&ns, &["ip", "link", "show", &bridge])
            .status
            .success());
    }
}
