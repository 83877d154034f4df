//! The compose format `docker stack deploy` reads: each file read as YAML
//! (`yaml.rs`), its variables substituted (`interpolate.rs`), the files
//! merged in order, then the keys typed (`model.rs`).

mod interpolate;
mod model;
mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use interpolate::Vars;
pub use model::*;

/// Compose files read, merged and typed, with what they say that is ignored.
#[derive(Debug)]
pub struct Loaded {
    pub compose: Compose,
    /// Keys compose knows that swarmnet does nothing with.
    pub ignored: BTreeSet<String>,
    /// Variables that were not set and were taken as blank.
    pub unset: BTreeSet<String>,
    /// The folder of the first file, which `env_file` paths are relative to.
    pub dir: PathBuf,
}

/// Reads `files` in order (`-` is stdin), each later one merged over the
/// earlier ones. Variables come from `env` and the `.env` beside the first file.
pub fn load(
    files: &[PathBuf],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, String> {
    let first = files
        .first()
        .ok_or("give a compose file with --compose-file (-c)")?;
    let dir = match first.as_os_str() == "-" {
        true => PathBuf::from("."),
        false => first.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let dot_env = std::fs::read_to_string(dir.join(".env")).ok();
    let vars = Vars::new(env, dot_env.as_deref());
    let mut merged = Value::Object(Default::default());
    let mut unset = BTreeSet::new();
    for file in files {
        let name = file.display().to_string();
        let text = match file.as_os_str() == "-" {
            true => std::io::read_to_string(std::io::stdin()),
            false => std::fs::read_to_string(file),
        }
        .map_err(|e| format!("cannot read the compose file {name}: {e}"))?;
        let mut value = yaml::load(&text, &name)?;
        unset.extend(
            interpolate::interpolate(&mut value, &vars).map_err(|e| format!("{name}: {e}"))?,
        );
        merge(&mut merged, value);
    }
    let (compose, ignored) = model::read(merged)?;
    Ok(Loaded {
        compose,
        ignored,
        unset,
        dir: if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        },
    })
}

/// `over` merged onto `base`: mappings key by key, anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_files_merge_over_earlier_ones() {
        let mut base = json!({"services": {"web": {"image": "host", "ports": ["80:80"], "deploy": {"replicas": 1, "mode": "replicated"}}}});
        merge(
            &mut base,
            json!({"services": {"web": {"ports": ["81:80"], "deploy": {"replicas": 3}}, "db": {"image": "host"}}}),
        );
        assert_eq!(
            base,
            json!({"services": {
                "web": {"image": "host", "ports": ["81:80"], "deploy": {"replicas": 3, "mode": "replicated"}},
                "db": {"image": "host"}
            }})
        );
    }

    #[test]
    fn files_are_read_substituted_merged_and_typed() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("docker-compose.yml");
        let over = dir.path().join("prod.yml");
        std::fs::write(
            &main,
            "version: '3.8'\nservices:\n  web:\n    image: host\n    command: swarmnet whoami --port ${PORT:-80}\n    build: .\n",
        )
        .unwrap();
        std::fs::write(
            &over,
            "services:\n  web:\n    deploy:\n      replicas: ${REPLICAS}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env"), "PORT=3000\n").unwrap();
        let loaded = load(
            &[main.clone(), over],
            [("REPLICAS".to_string(), "3".to_string())],
        );
        let loaded = loaded.unwrap();
        let web = &loaded.compose.services["web"];
        assert_eq!(
            web.command.as_ref().unwrap().0,
            ["swarmnet", "whoami", "--port", "3000"]
        );
        assert_eq!(
            web.deploy.as_ref().unwrap().replicas,
            Some(3),
            "a substituted value is text, read as the number the key takes"
        );
        assert_eq!(loaded.ignored, BTreeSet::from(["build".to_string()]));
        let err = load(&[dir.path().join("missing.yml")], []).unwrap_err();
        assert!(err.starts_with("cannot read the compose file"), "{err}");
    }
}
