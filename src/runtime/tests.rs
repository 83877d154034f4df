//! What `start` refuses before anything runs; the runtime's root tests are in
//! netns-tests/container.rs (see the module's doc).

use std::fs;

use super::*;

fn spec(root: &Path, name: &str, cmd: &[&str]) -> ContainerSpec {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    ContainerSpec {
        id: format!("id-{name}"),
        name: name.to_string(),
        hostname: name.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        dir,
        netns: None,
        addresses: Vec::new(),
        env: Vec::new(),
    }
}

#[test]
fn a_missing_command_is_refused_before_anything_starts() {
    let root = tempfile::tempdir().unwrap();
    let spec = spec(root.path(), "c", &["swarmnet-no-such-command"]);
    let err = start(&spec).unwrap_err();
    assert!(
        format!("{err}").contains("executable file not found"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&spec.dir).unwrap().count(), 0);
}

#[test]
fn a_container_without_a_command_or_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let empty = spec(root.path(), "c", &[]);
    assert_eq!(
        start(&empty).unwrap_err().to_string(),
        "container c has no command"
    );
    let mut gone = spec(root.path(), "d", &["true"]);
    gone.dir = root.path().join("missing");
    let err = start(&gone).unwrap_err().to_string();
    assert!(
        err.starts_with("container directory ") && err.ends_with(" does not exist"),
        "{err}"
    );
}

/// A container has ended only once its shim has recorded how (or is gone):
/// between its process's exit and that record it still counts as running,
/// and `ended` resolves only after the shim's exit.
#[test]
fn a_container_ends_when_its_shim_has_recorded_its_exit() {
    use std::process::Command;
    use tokio::time::timeout;
    let root = tempfile::tempdir().unwrap();
    let layout = Layout(root.path());
    let spawn = || Command::new("sleep").arg("30").spawn().unwrap();
    let (mut shim, mut main) = (spawn(), spawn());
    let process_of = |child: &std::process::Child| Process::of(child.id() as i32).unwrap();
    let process = process_of(&main);
    files::write_process(&layout.shim_json(), &process_of(&shim)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ended = ended(root.path(), process);
        tokio::pin!(ended);
        assert!(!has_ended(root.path(), &process));
        main.kill().unwrap();
        main.wait().unwrap();
        assert!(
            !has_ended(root.path(), &process),
            "ended before its shim recorded it"
        );
        let pending = Duration::from_millis(300);
        assert!(timeout(pending, &mut ended).await.is_err());
        files::write_atomic(&layout.exit_code(), b"137\n").unwrap();
        assert!(has_ended(root.path(), &process));
        shim.kill().unwrap();
        shim.wait().unwrap();
        let bound = Duration::from_secs(5);
        timeout(bound, ended).await.unwrap().unwrap();
    });
    fs::remove_file(layout.exit_code()).unwrap();
    assert!(
        has_ended(root.path(), &process),
        "its shim is gone without a record"
    );
    assert_eq!(exit_code(root.path()), None);
}
