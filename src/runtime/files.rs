//! The container directory's files: what the runtime writes there (resolv.conf,
//! hosts, the shim's and the container's identity, the exit code), written
//! atomically (temp file + rename), and how they are read back.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Process;

/// A container's resolv.conf: the resolver at 127.0.0.11, and the host's
/// search domains (from `host`, the host's own resolv.conf), as Docker writes it.
pub(super) fn resolv_conf(host: &str) -> String {
    let search: Vec<&str> = host
        .lines()
        .filter_map(|line| line.trim().strip_prefix("search"))
        .filter(|rest| rest.starts_with([' ', '\t']))
        .flat_map(str::split_whitespace)
        .collect();
    let mut conf = String::from("nameserver 127.0.0.11\n");
    if !search.is_empty() {
        conf.push_str(&format!("search {}\n", search.join(" ")));
    }
    conf.push_str("options ndots:0\n");
    conf
}
pub(super) const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// A container directory's paths.
pub(super) struct Layout<'a>(pub(super) &'a Path);

impl Layout<'_> {
    pub(super) fn resolv_conf(&self) -> PathBuf {
        self.0.join("resolv.conf")
    }
    pub(super) fn hosts(&self) -> PathBuf {
        self.0.join("hosts")
    }
    /// The shim's own output (and the launcher's).
    pub(super) fn shim_log(&self) -> PathBuf {
        self.0.join("shim.log")
    }
    /// The shim's identity, written by the launcher.
    pub(super) fn shim_json(&self) -> PathBuf {
        self.0.join("shim.json")
    }
    /// The container's main process, written by the shim once spawned.
    pub(super) fn pid_json(&self) -> PathBuf {
        self.0.join("pid.json")
    }
    pub(super) fn exit_code(&self) -> PathBuf {
        self.0.join("exit-code")
    }
    pub(super) fn container_log(&self) -> PathBuf {
        self.0.join("container.log")
    }
}

/// Writes `path` whole or not at all: a temp file beside it, synced, renamed.
pub(super) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path.file_name().context("no file name")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file =
        fs::File::create(&tmp).with_context(|| format!("could not create {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))
}

pub(super) fn write_process(path: &Path, process: &Process) -> Result<()> {
    write_atomic(path, &serde_json::to_vec(process)?)
}

/// The process recorded at `path`, or None if there is none (yet).
pub(super) fn read_process(path: &Path) -> Result<Option<Process>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is not a process record", path.display())
        })?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not read {}", path.display())),
    }
}

/// /etc/hosts: localhost, then the container's own addresses under its name, as Docker writes it.
pub(super) fn hosts(name: &str, addresses: &[std::net::Ipv4Addr]) -> String {
    let mut text = HOSTS.to_string();
    for ip in addresses {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    text
}

pub(super) fn format_exit_code(code: i32) -> String {
    format!("{code}\n")
}

pub(super) fn parse_exit_code(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

/// What the shim writes to shim.log when the container has ended.
pub(super) fn exit_record(name: &str, code: i32) -> String {
    format!("container {name} exited with code {code}")
}

/// The line the container's child writes to container.log when a set-up step fails.
pub(super) const STEP_FAILED: &str = "swarmnet runtime: ";

/// Why a container did not start, in one line, from its two logs: the set-up
/// step that failed (container.log) and the shim's own error (shim.log),
/// whichever of them there is.
pub(super) fn start_failure(shim_log: &str, container_log: &str) -> String {
    let step = container_log
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(STEP_FAILED));
    let shim = shim_log.lines().rev().map(str::trim).find(|line| {
        let exit = line.starts_with("container ") && line.contains(" exited with code ");
        !line.is_empty() && !exit
    });
    match (step, shim) {
        (Some(step), Some(shim)) => format!("{step} ({shim})"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => "it left no error in its logs".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_files_say_what_docker_says() {
        assert_eq!(resolv_conf(""), "nameserver 127.0.0.11\noptions ndots:0\n");
        let host =
            "nameserver 192.0.2.1\nsearch lab.test corp.example\nsearchx no\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 127.0.0.11\nsearch lab.test corp.example\noptions ndots:0\n"
        );
        assert!(HOSTS.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(HOSTS.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
        let with = hosts("c1", &["10.0.1.5".parse().unwrap()]);
        assert!(with.starts_with(HOSTS));
        assert!(with.ends_with("10.0.1.5\tc1\n"), "{with}");
    }

    #[test]
    fn process_record_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = Layout(dir.path()).pid_json();
        assert_eq!(read_process(&path).unwrap(), None);
        let first = Process {
            pid: 42,
            start_time: 12345,
        };
        write_process(&path, &first).unwrap();
        assert_eq!(read_process(&path).unwrap(), Some(first));
        let second = Process {
            pid: 7,
            start_time: 1,
        };
        write_process(&path, &second).unwrap();
        assert_eq!(read_process(&path).unwrap(), Some(second));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::write(&path, "garbage").unwrap();
        assert!(read_process(&path).is_err());
    }

    #[test]
    fn exit_codes_parse_back() {
        for code in [0, 3, 127, 143] {
            assert_eq!(parse_exit_code(&format_exit_code(code)), Some(code));
        }
        assert_eq!(parse_exit_code(""), None);
        assert_eq!(parse_exit_code("x\n"), None);
    }

    #[test]
    fn a_start_failure_is_one_line_from_both_logs() {
        let shim = format!(
            "could not start \"sh\": Operation not permitted (os error 1)\n{}\n",
            exit_record("c1", 125)
        );
        let container = "an earlier line\nswarmnet runtime: could not mount /sys\n\n";
        assert_eq!(
            start_failure(&shim, container),
            "could not mount /sys (could not start \"sh\": Operation not permitted (os error 1))"
        );
        assert_eq!(start_failure("", container), "could not mount /sys");
        assert_eq!(
            start_failure(
                "the shim failed\nfor this reason\n",
                "output of the command\n"
            ),
            "for this reason"
        );
        assert_eq!(
            start_failure(&exit_record("c1", 0), ""),
            "it left no error in its logs"
        );
    }
}
