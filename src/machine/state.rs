//! Lab state on the host: the paths under /run/swarmnet-lab/<lab>/, the lab
//! lock, the machine records, and the pure rules (names, address allocation).

use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::procs::ProcId;

/// Where every lab keeps its state on the host.
pub const STATE_ROOT: &str = "/run/swarmnet-lab";
/// The lab used when SWARMNET_LAB is not set.
pub const DEFAULT_LAB: &str = "swarmnet";
/// The underlay's first three octets and prefix length.
const UNDERLAY: [u8; 3] = [192, 168, 99];
pub const UNDERLAY_PREFIX: u8 = 24;
/// The first machine gets .100, the next the lowest free host number.
const FIRST_HOST: u8 = 100;
const LAST_HOST: u8 = 254;
const MAX_NAME: usize = 15;
const MAX_LAB: usize = 20;

/// A machine as recorded in `<machine dir>/machine.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    /// Last octet of the machine's underlay address.
    pub host: u8,
    /// The process holding the machine's namespaces.
    pub holder: ProcId,
    pub daemon: Option<ProcId>,
    /// The daemon's full command line, reused by restart.
    pub daemon_argv: Vec<String>,
}

impl Machine {
    pub fn address(&self) -> Ipv4Addr {
        address(self.host)
    }

    /// The lab-side end of the machine's veth, private to the lab namespace.
    pub fn leg(&self) -> String {
        format!("m{}", self.host - FIRST_HOST)
    }
}

/// The lab record in `<lab dir>/lab.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LabRecord {
    holder: ProcId,
}

/// Where one machine keeps its files on the host.
pub struct MachinePaths {
    pub dir: PathBuf,
    /// Bound on /run inside the machine.
    pub run: PathBuf,
    /// Bound on /var/lib/swarmnet inside the machine.
    pub lib: PathBuf,
    /// The daemon's socket as the host reaches it.
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Bound on /etc/resolv.conf inside the machine: its upstream resolvers.
    pub resolv_conf: PathBuf,
    record: PathBuf,
}

/// One lab: an underlay bridge in its own namespace and its machines.
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
}

impl Lab {
    /// The lab named by SWARMNET_LAB, or the default lab.
    pub fn from_env() -> Result<Lab> {
        match std::env::var("SWARMNET_LAB") {
            Ok(name) if !name.is_empty() => Lab::new(&name),
            _ => Lab::new(DEFAULT_LAB),
        }
    }

    pub fn new(name: &str) -> Result<Lab> {
        validate_lab(name)?;
        Ok(Lab {
            name: name.to_string(),
            dir: Path::new(STATE_ROOT).join(name),
        })
    }

    pub fn machine(&self, name: &str) -> MachinePaths {
        let dir = self.dir.join("machines").join(name);
        MachinePaths {
            run: dir.join("run"),
            lib: dir.join("lib"),
            socket: dir.join("run/swarmnet/swarmnet.sock"),
            log: dir.join("daemon.log"),
            resolv_conf: dir.join("resolv.conf"),
            record: dir.join("machine.json"),
            dir,
        }
    }

    /// Takes the lab's exclusive lock (creating the lab dir), held until drop.
    pub fn lock(&self) -> Result<Flock<File>> {
        let path = self.dir.join("lab.lock");
        loop {
            fs::create_dir_all(&self.dir)
                .with_context(|| format!("could not create {}", self.dir.display()))?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| errno)?;
            // A lab removed while we waited leaves us holding a deleted file.
            let held = lock.metadata()?.ino();
            if fs::metadata(&path).is_ok_and(|m| m.ino() == held) {
                return Ok(lock);
            }
        }
    }

    /// Names of the lab's machines, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(self.dir.join("machines")) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    pub fn load(&self, name: &str) -> Result<Machine> {
        let paths = self.machine(name);
        if validate_name(name).is_err() || !paths.dir.exists() {
            bail!("machine {name} does not exist (`swarmnet machine ls` lists them)");
        }
        let broken = |what: String| {
            anyhow::anyhow!("machine {name} {what}: remove it with `swarmnet machine rm -f {name}`")
        };
        let text = fs::read_to_string(&paths.record)
            .map_err(|e| broken(format!("has no record ({e}; was its create interrupted?)")))?;
        serde_json::from_str(&text).map_err(|e| broken(format!("has a corrupt record ({e})")))
    }

    pub fn save(&self, machine: &Machine) -> Result<()> {
        let record = self.machine(&machine.name).record;
        write_atomic(&record, &serde_json::to_vec_pretty(machine)?)
    }

    /// The lab's holder, if the lab was set up.
    pub fn holder(&self) -> Result<Option<ProcId>> {
        match fs::read_to_string(self.dir.join("lab.json")) {
            Ok(text) => Ok(Some(serde_json::from_str::<LabRecord>(&text)?.holder)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    pub fn save_holder(&self, holder: ProcId) -> Result<()> {
        let record = serde_json::to_vec(&LabRecord { holder })?;
        write_atomic(&self.dir.join("lab.json"), &record)
    }

    /// Host numbers in use by the lab's recorded machines.
    pub fn used_hosts(&self) -> Result<Vec<u8>> {
        let mut used = Vec::new();
        for name in self.names()? {
            used.push(self.load(&name)?.host);
        }
        Ok(used)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("could not write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))
}

/// A new machine's /etc/resolv.conf: no nameserver, so nothing in the lab
/// ever asks a real resolver; a test writes its own lab resolvers in place.
pub fn resolv_conf(name: &str) -> String {
    format!(
        "# resolv.conf of swarmnet machine {name}: no upstream resolver; add nameserver lines\n"
    )
}

pub fn address(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(UNDERLAY[0], UNDERLAY[1], UNDERLAY[2], host)
}

/// The lowest free host number, or None when the underlay is full.
pub fn next_host(used: &[u8]) -> Option<u8> {
    (FIRST_HOST..=LAST_HOST).find(|host| !used.contains(host))
}

/// A machine name is its hostname: 1 to 15 letters, digits or '-'.
pub fn validate_name(name: &str) -> Result<()> {
    let chars_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if name.is_empty()
        || name.len() > MAX_NAME
        || !chars_ok
        || name.starts_with('-')
        || name.ends_with('-')
    {
        bail!(
            "invalid machine name {name:?}: use 1 to {MAX_NAME} letters, digits or '-', \
             not starting or ending with '-'"
        );
    }
    Ok(())
}

fn validate_lab(lab: &str) -> Result<()> {
    let chars_ok = lab
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if lab.is_empty() || lab.len() > MAX_LAB || !chars_ok || lab.starts_with('-') {
        bail!("invalid SWARMNET_LAB {lab:?}: use 1 to {MAX_LAB} letters, digits, '-' or '_'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_machine_gets_100_then_lowest_free() {
        assert_eq!(next_host(&[]), Some(100));
        assert_eq!(next_host(&[100]), Some(101));
        assert_eq!(next_host(&[100, 102]), Some(101));
        assert_eq!(next_host(&[101, 102]), Some(100));
        let full: Vec<u8> = (100..=254).collect();
        assert_eq!(next_host(&full), None);
        assert_eq!(address(101).to_string(), "192.168.99.101");
    }

    #[test]
    fn leg_names_fit_an_interface_name() {
        let machine = Machine {
            name: "vm1".into(),
            host: 254,
            holder: ProcId { pid: 1, start: 1 },
            daemon: None,
            daemon_argv: Vec::new(),
        };
        assert_eq!(machine.leg(), "m154");
    }

    #[test]
    fn a_new_machines_resolv_conf_names_no_resolver() {
        let text = resolv_conf("vm1");
        assert!(text.starts_with("# resolv.conf of swarmnet machine vm1"));
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("nameserver")),
            "{text}"
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn names_are_hostnames() {
        for ok in ["vm1", "a", "node-2", "ABCDEFGHIJKLMNO"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-vm",
            "vm-",
            "vm_1",
            "vm.1",
            "a/b",
            "ABCDEFGHIJKLMNOP",
            "vm 1",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lab_names_are_short_path_parts() {
        assert!(validate_lab("snt1234x").is_ok());
        assert!(validate_lab("swarm_net-2").is_ok());
        for bad in ["", "../x", "a/b", "-x", "averyveryverylonglabname"] {
            assert!(validate_lab(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn socket_path_fits_sun_path() {
        let lab = Lab::new(&"l".repeat(MAX_LAB)).unwrap();
        let paths = lab.machine(&"n".repeat(MAX_NAME));
        assert!(paths.socket.as_os_str().len() < 108);
    }
}
