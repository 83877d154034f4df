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
