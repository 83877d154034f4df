//! Holders: one tiny process per machine (and one per lab) that owns the
//! namespaces. It is spawned as `swarmnet machine holder --lab L [--name N]`
//! with the namespaces unshared in `pre_exec` (the child is single-threaded
//! there), sets up the machine's hostname and mounts, prints `ready`, and then
//! pauses until it is killed.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::procs::ProcId;
use super::state::Lab;

/// The hidden subcommand's arguments after the executable.
fn holder_args(lab: &str, name: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["machine", "holder", "--lab", lab].map(String::from).into();
    if let Some(name) = name {
        args.extend(["--name".to_string(), name.to_string()]);
    }
    args
}

/// Starts a holder in new namespaces (net, uts and mount for a machine; net
/// for a lab) and waits until it is ready.
pub fn spawn(lab: &Lab, name: Option<&str>) -> Result<(Child, ProcId)> {
    let flags = match name {
        Some(_) => CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS,
        None => CloneFlags::CLONE_NEWNET,
    };
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(holder_args(&lab.name, name))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid and unshare are plain syscalls, safe after fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            unshare(flags)?;
            Ok(())
        });
    }
    let owner = name.map_or(format!("lab {}", lab.name), |name| {
        format!("machine {name}")
    });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start the namespace holder of {owner}"))?;
    let id = ProcId::of(child.id())?;
    let mut ready = false;
    if let Some(stdout) = child.stdout.take() {
        ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "ready");
    }
    if !ready {
        let mut why = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            stderr.read_to_string(&mut why)?;
        }
        let _ = child.kill();
        child.wait()?;
        let why = why.lines().map(str::trim).rfind(|l| !l.is_empty());
        bail!(
            "could not set up the namespaces of {owner}: {}",
            why.unwrap_or("its holder exited without saying why")
        );
    }
    Ok((child, id))
}

/// True if `id` is still the holder of this lab (name None) or machine.
pub fn is_holder(id: &ProcId, lab: &str, name: Option<&str>) -> bool {
    id.cmdline()
        .is_some_and(|args| args.get(1..) == Some(&holder_args(lab, name)[..]))
}

/// Kills a holder after checking that it still is one.
pub fn kill(id: &ProcId, lab: &str, name: Option<&str>) -> Result<()> {
    if is_holder(id, lab, name) {
        id.kill()?;
    }
    Ok(())
}

/// Every live holder of the lab, found by command line: (holder, machine name).
pub fn find(lab: &str) -> Vec<(ProcId, Option<String>)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    let prefix = holder_args(lab, None);
    pids.filter_map(|pid| {
        let id = ProcId::of(pid).ok()?;
        let args = id.cmdline()?;
        if args.get(1..5)? != &prefix[..] {
            return None;
        }
        let name = args.get(6).cloned();
        is_holder(&id, lab, name.as_deref()).then_some((id, name))
    })
    .collect()
}

/// The body of `swarmnet machine holder`: set up, report ready, pause forever.
pub fn serve(lab: &str, name: Option<&str>) -> Result<i32> {
    let lab = Lab::new(lab)?;
    match name {
        Some(name) => setup_machine(&lab, name)?,
        None => disable_ipv6()?,
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for fd in 0..=2 {
        nix::unistd::dup2(null.as_raw_fd(), fd)?;
    }
    loop {
        nix::unistd::pause();
    }
}

/// The file the machine's own resolv.conf is bound over.
const ETC_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Symbolic links followed to the host's resolv.conf, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Hostname, a private mount tree, /var/lib/swarmnet and /run bound to the
/// machine's dirs, its own resolv.conf, and a sysfs of the machine's network
/// namespace.
fn setup_machine(lab: &Lab, name: &str) -> Result<()> {
    let paths = lab.machine(name);
    nix::unistd::sethostname(name).context("sethostname")?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .context("make / rprivate")?;
    mount(
        Some(&paths.lib),
        "/var/lib/swarmnet",
        none,
        MsFlags::MS_BIND,
        none,
    )
    .context("bind /var/lib/swarmnet")?;
    // Mounts under the host's /run (such as /run/netns/*) would stay pinned
    // under the bind; detach them so the machine holds no other namespace.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    for point in mounts_under(&mountinfo, "/run") {
        if !paths.run.starts_with(&point) {
            match umount2(point.as_str(), MntFlags::MNT_DETACH) {
                Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
                Err(err) => return Err(err).with_context(|| format!("detach {point}")),
            }
        }
    }
    // The machine's resolv.conf is under the host's /run: held open across
    // the bind of /run that hides it, and bound through its descriptor.
    let resolv_conf = File::open(&paths.resolv_conf)
        .with_context(|| format!("open {}", paths.resolv_conf.display()))?;
    mount(Some(&paths.run), "/run", none, MsFlags::MS_BIND, none).context("bind /run")?;
    bind_resolv_conf(&resolv_conf)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("sysfs"), "/sys", Some("sysfs"), flags, none).context("mount /sys")?;
    Ok(())
}

/// Binds the machine's resolv.conf over the host's, so the machine's daemon
/// reads its own upstream resolvers (none until a test writes some). Where
/// /etc/resolv.conf is a link (systemd-resolved's into /run), the bind goes
/// over the file it names; under /run, now the machine's own, that file is
/// made first. A bind follows the file in place: it is rewritten in place,
/// never replaced by a rename, to be seen inside.
fn bind_resolv_conf(file: &File) -> Result<()> {
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    let target = follow_links(Path::new(ETC_RESOLV_CONF), |p| fs::read_link(p).ok());
    if fs::metadata(&target).is_err() {
        if !target.starts_with("/run/") {
            bail!(
                "the host has no {} (it names {}) for the machine's own to cover: \
                 create one, even empty",
                ETC_RESOLV_CONF,
                target.display()
            );
        }
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        File::create(&target).with_context(|| format!("create {}", target.display()))?;
    }
    let none: Option<&str> = None;
    mount(Some(source.as_str()), &target, none, MsFlags::MS_BIND, none)
        .with_context(|| format!("bind the machine's resolv.conf on {}", target.display()))
}

/// The path a chain of symbolic links ends at (`read_link` gives a link's
/// contents, None for a file or nothing), relative links read from the
/// link's own directory; stops after MAX_LINKS, as the kernel does.
fn follow_links(path: &Path, read_link: impl Fn(&Path) -> Option<PathBuf>) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Some(next) = read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) if next.is_relative() => dir.join(next),
            _ => next,
        };
    }
    normalize(&path)
}

/// `..` and `.` folded away, by the names alone (/etc/../run is /run).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The lab namespace carries no addresses at all, IPv6 link-local included.
fn disable_ipv6() -> Result<()> {
    for conf in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
        if fs::metadata(&path).is_ok() {
            fs::write(&path, "1").with_context(|| format!("could not write {path}"))?;
        }
    }
    Ok(())
}

/// Mount points strictly below `dir` in a mountinfo text, deepest first.
fn mounts_under(mountinfo: &str, dir: &str) -> Vec<String> {
    let below = format!("{}/", dir.trim_end_matches('/'));
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|point| point.starts_with(&below))
        .collect();
    points.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    points.dedup();
    points
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match octal.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_command_lines_name_lab_and_machine() {
        assert_eq!(
            holder_args("lab1", None),
            ["machine", "holder", "--lab", "lab1"]
        );
        assert_eq!(holder_args("l", Some("vm1"))[4..], ["--name", "vm1"]);
    }

    #[test]
    fn resolv_conf_links_are_followed_to_their_file() {
        let stub = "/run/systemd/resolve/stub-resolv.conf";
        let links = |p: &Path| match p.to_str()? {
            "/etc/resolv.conf" => Some(PathBuf::from("../run/systemd/resolve/./stub-resolv.conf")),
            "/etc/../run/systemd/resolve/./stub-resolv.conf" => Some(PathBuf::from("r.conf")),
            _ => None,
        };
        let stubs = |p: &Path| (p == Path::new("/etc/resolv.conf")).then(|| PathBuf::from(stub));
        let file = |_: &Path| None;
        let resolv = Path::new("/etc/resolv.conf");
        assert_eq!(follow_links(resolv, file), resolv);
        assert_eq!(follow_links(resolv, stubs), Path::new(stub));
        assert_eq!(
            follow_links(resolv, links),
            Path::new("/run/systemd/resolve/r.conf")
        );
        let forever = |p: &Path| Some(p.to_path_buf());
        assert_eq!(follow_links(resolv, forever), resolv, "a loop ends");
    }

    #[test]
    fn mounts_under_run_deepest_first() {
        let info = "\
22 1 8:1 / / rw shared:1 - ext4 /dev/vda rw
30 22 8:1 /run/netns /run/netns rw shared:5 - ext4 /dev/vda rw
31 30 0:4 net:[4026532] /run/netns/a\\040b rw shared:6 - nsfs nsfs rw
32 22 0:5 / /running rw - tmpfs tmpfs rw
33 22 0:6 / /sys rw - sysfs sysfs rw";
        assert_eq!(mounts_under(info, "/run"), ["/run/netns/a b", "/run/netns"]);
    }
}
