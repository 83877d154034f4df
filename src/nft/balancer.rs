//! Keeps every container namespace's VIP rules (and a task's way back
//! through the routing mesh), and the host's published ports, equal to the
//! view: a namespace gets its rules when it is added (before its process
//! runs), and again whenever a new view changes its script. Each apply is one
//! `nft -f` transaction run inside the namespace; what was applied is kept,
//! so an unchanged script is not applied again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use std::net::Ipv4Addr;

use anyhow::{bail, Context};

use super::firewall::{command_in, run_nft_in};
use super::lb::{LbView, LB};
use super::mesh::HOST;

struct Entry {
    owner: String,
    /// The script last applied, if any.
    applied: Option<String>,
}

/// The VIP rules of this host's container namespaces.
pub struct Balancer {
    namespaces: Mutex<HashMap<PathBuf, Entry>>,
    view: watch::Sender<Arc<LbView>>,
    /// One apply at a time, always of the newest view: an older view can
    /// never overwrite a newer one's rules.
    applying: Mutex<()>,
    /// The host's published ports as last applied.
    host: Mutex<Option<String>>,
}

impl Balancer {
    /// Starts following views (on the caller's runtime).
    pub fn start() -> Arc<Balancer> {
        let (view, mut rx) = watch::channel(Arc::new(LbView::default()));
        let balancer = Arc::new(Balancer {
            namespaces: Mutex::new(HashMap::new()),
            view,
            applying: Mutex::new(()),
            host: Mutex::new(None),
        });
        let weak = Arc::downgrade(&balancer);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                rx.borrow_and_update();
                let Some(balancer) = weak.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || balancer.sync()).await;
            }
        });
        balancer
    }

    /// Every namespace follows `view` from now on.
    pub fn set_view(&self, view: LbView) {
        self.view.send_if_modified(|current| {
            let changed = **current != view;
            if changed {
                *current = Arc::new(view);
            }
            changed
        });
    }

    /// Gives the namespace at `netns` (of `owner`: a task's ID or the
    /// container's) its rules now, and keeps them current until `remove`.
    pub async fn add(self: &Arc<Self>, netns: &Path, owner: &str) -> anyhow::Result<()> {
        self.lock().insert(
            netns.to_path_buf(),
            Entry {
                owner: owner.to_string(),
                applied: None,
            },
        );
        let (me, path) = (self.clone(), netns.to_path_buf());
        tokio::task::spawn_blocking(move || me.apply(&path)).await?
    }

    pub fn remove(&self, netns: &Path) {
        self.lock().remove(netns);
    }

    /// Applies the newest view wherever it changes the script, the host's first.
    fn sync(&self) {
        if let Err(e) = self.apply_host() {
            tracing::warn!("cannot apply the published ports: {e:#}");
        }
        let paths: Vec<PathBuf> = self.lock().keys().cloned().collect();
        for path in paths {
            if let Err(e) = self.apply(&path) {
                tracing::warn!(netns = %path.display(), "cannot apply the VIP rules: {e:#}");
            }
        }
    }

    fn apply(&self, path: &Path) -> anyhow::Result<()> {
        let _one = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let view = self.view.borrow().clone();
        let Some((script, routes, whole, fresh)) = self.lock().get(path).and_then(|e| {
            let script = view.script(&e.owner);
            let routes = view.mesh.routes(&e.owner);
            let whole = format!("{script}{routes:?}");
            (e.applied.as_ref() != Some(&whole))
                .then(|| (script, routes, whole, e.applied.is_none()))
        }) else {
            return Ok(());
        };
        // A namespace that never had rules and needs none: nothing to delete.
        if !(fresh && script == LB.deleted()) {
            run_nft_in(Some(path), &script)?;
        }
        route_back(path, &routes)?;
        if let Some(e) = self.lock().get_mut(path) {
            e.applied = Some(whole);
        }
        Ok(())
    }

    fn apply_host(&self) -> anyhow::Result<()> {
        let _one = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let script = self.view.borrow().mesh.host_script();
        let mut host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let nothing = script == HOST.deleted();
        if host.as_ref() == Some(&script) || (host.is_none() && nothing) {
            return Ok(());
        }
        run_nft_in(None, &script)?;
        *host = Some(script);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.namespaces.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Gives a task on ingress a routing table per node (its mark), whose
/// default route is that node's leg, and a rule sending marked packets to
/// it; and loose reverse-path filtering, since a client's packets come in
/// by ingress while its address routes by the default route.
fn route_back(netns: &Path, routes: &[(u32, Ipv4Addr)]) -> anyhow::Result<()> {
    if routes.is_empty() {
        return Ok(());
    }
    let have = run_in(netns, "ip", &["-o", "rule", "show"], "")?;
    let mut batch = String::new();
    for (mark, leg) in routes {
        batch.push_str(&format!("route replace default via {leg} table {mark}\n"));
        if !have.contains(&format!("fwmark {mark:#x} lookup {mark}")) {
            batch.push_str(&format!("rule add fwmark {mark} table {mark} pref 1000\n"));
        }
    }
    run_in(netns, "ip", &["-batch", "-"], &batch)?;
    run_in(
        netns,
        "sysctl",
        &["-qw", "net.ipv4.conf.all.rp_filter=2"],
        "",
    )?;
    Ok(())
}

/// Runs `program args` inside `netns` with `input`; its output, or its error in one line.
fn run_in(netns: &Path, program: &str, args: &[&str], input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command_in(program, Some(netns))?
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{program} {}: {}",
            args.join(" "),
            err.lines().next().unwrap_or("failed")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
