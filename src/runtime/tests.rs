//! Tests that start real containers (root; skipped without it unless
//! SWARMNET_REQUIRE_ROOT_TESTS=1), with this test binary as the shim.

use std::fs;
use std::time::{Duration, Instant};

use super::*;

/// The shim entry point when this test binary is run as the shim: `launch`
/// below runs it as `TEST --exact --nocapture -- --dir ... -- CMD`. In a normal
/// test run there is no `--dir` after `--`, and it does nothing.
#[test]
fn runtime_shim_entry() {
    let args: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    if args.first().map(String::as_str) == Some("--dir") {
        let code = match shim_main(args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("runtime-shim: {err:#}");
                1
            }
        };
        std::process::exit(code);
    }
}

/// Runs CMD in the container as the exec API does, with piped output; its exit code.
fn exec(p: &Process, cmd: &[String]) -> Result<i32> {
    let spec = ExecSpec {
        cmd: cmd.to_vec(),
        hostname: "exec-test".into(),
        ..Default::default()
    };
    match exec_command(p, &spec)?.output() {
        Ok(out) => Ok(exit_code_of(out.status)),
        Err(err) => spawn_failure_code(&err).ok_or_else(|| err.into()),
    }
}

fn test_shim() -> ShimCommand {
    let test = format!(
        "{}::runtime_shim_entry",
        module_path!().split_once("::").unwrap().1
    );
    ShimCommand {
        exe: std::env::current_exe().unwrap(),
        prefix: [test.as_str(), "--exact", "--nocapture", "--"]
            .map(String::from)
            .into(),
    }
}

/// Stops every container it started, by identity, even when a test fails.
struct Started(Vec<Process>);

impl Drop for Started {
    fn drop(&mut self) {
        for process in &self.0 {
            if let Err(err) = process.stop(Duration::from_secs(1)) {
                eprintln!("cleanup: {err:#}");
            }
        }
    }
}

fn spec(root: &Path, name: &str, cmd: &[&str]) -> ContainerSpec {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    ContainerSpec {
        id: format!("id-{name}"),
        name: name.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        dir,
        netns: None,
        addresses: Vec::new(),
    }
}

/// Polls `check` for up to 10 s; panics with `what` if it never holds.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn args(cmd: &[&str]) -> Vec<String> {
    cmd.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_missing_command_is_refused_before_anything_starts() {
    let root = tempfile::tempdir().unwrap();
    let spec = spec(root.path(), "c", &["swarmnet-no-such-command"]);
    let err = launch(&spec, &test_shim()).unwrap_err();
    assert!(
        format!("{err}").contains("executable file not found"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&spec.dir).unwrap().count(), 0);
}

#[test]
fn containers_run_in_their_own_namespaces_and_report_their_exit() {
    if !crate::test_support::root_or_skip() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
    let unique = format!("rt{}-{nanos}", std::process::id());
    let script = "echo hello; hostname; cat /etc/resolv.conf; ip -o link; echo started; sleep 30";
    let first = spec(root.path(), &unique, &["sh", "-c", script]);
    let mut started = Started(Vec::new());
    let process = launch(&first, &test_shim()).unwrap();
    started.0.push(process);
    assert!(process.alive());
    let log = eventually("the container's output", || {
        let log = fs::read_to_string(log_path(&first.dir)).ok()?;
        log.contains("\nstarted\n").then_some(log)
    });
    assert!(log.starts_with("hello\n"), "{log}");
    assert!(log.lines().any(|line| line == unique), "{log}");
    assert!(log.contains("nameserver 127.0.0.11\n"), "{log}");
    let links: Vec<&str> = log.lines().filter(|l| l.contains(": <")).collect();
    assert_eq!(links.len(), 1, "{log}");
    assert!(links[0].starts_with("1: lo: <LOOPBACK,UP"), "{log}");

    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{}/fd", process.pid))
        .unwrap()
        .map(|fd| fd.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "the container holds only its stdio");

    assert_eq!(exec(&process, &args(&["hostname"])).unwrap(), 0);
    assert_eq!(exec(&process, &args(&["sh", "-c", "exit 3"])).unwrap(), 3);
    assert_eq!(
        exec(&process, &args(&["swarmnet-no-such-command"])).unwrap(),
        127
    );

    process.stop(Duration::from_secs(5)).unwrap();
    assert!(!process.alive());
    let code = eventually("the exit code", || exit_code(&first.dir));
    assert_eq!(code, 128 + libc::SIGTERM, "sh dies of SIGTERM");
    assert!(exec(&process, &args(&["true"])).is_err());

    let second = spec(root.path(), &format!("{unique}-b"), &["sh", "-c", "exit 5"]);
    let ended = launch(&second, &test_shim()).unwrap();
    started.0.push(ended);
    assert_eq!(eventually("the exit code", || exit_code(&second.dir)), 5);
    assert!(!ended.alive());
}
