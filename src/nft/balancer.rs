//! Keeps every container namespace's VIP rules equal to the view: a
//! namespace gets its rules when it is added (before its process runs), and
//! again whenever a new view changes its script. Each apply is one `nft -f`
//! transaction run inside the namespace; what was applied is kept, so an
//! unchanged script is not applied again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::firewall::run_nft_in;
use super::lb::{LbView, TABLE};

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
}

impl Balancer {
    /// Starts following views (on the caller's runtime).
    pub fn start() -> Arc<Balancer> {
        let (view, mut rx) = watch::channel(Arc::new(LbView::default()));
        let balancer = Arc::new(Balancer {
            namespaces: Mutex::new(HashMap::new()),
            view,
            applying: Mutex::new(()),
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

    /// Applies the newest view wherever it changes the script.
    fn sync(&self) {
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
        let Some((script, fresh)) = self.lock().get(path).and_then(|e| {
            let script = view.script(&e.owner);
            (e.applied.as_ref() != Some(&script)).then(|| (script, e.applied.is_none()))
        }) else {
            return Ok(());
        };
        // A namespace that never had rules and needs none: nothing to delete.
        let nothing = format!("table ip {TABLE}\ndelete table ip {TABLE}\n");
        if !(fresh && script == nothing) {
            run_nft_in(Some(path), &script)?;
        }
        if let Some(e) = self.lock().get_mut(path) {
            e.applied = Some(script);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.namespaces.lock().unwrap_or_else(|e| e.into_inner())
    }
}
