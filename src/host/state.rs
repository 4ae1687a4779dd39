//! Host-only state, kept outside the checkout and out of every node's reach: the attestation key
//! pair, the memory of the newest attested build per node (so that restoring an older record and
//! its envelope is noticed), the ssh configuration and pinned host keys, Vagrant's machine data,
//! and each node's export of the checkout. One folder per checkout, in the user's state
//! directory.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::record::bounded;
use crate::record::digest::sha256_hex;
use crate::record::manifest::AttestedMark;
use crate::record::nodes::NodeName;
use crate::record::store::write_atomic;

/// Overrides where the state lives (tests give each scratch checkout its own).
pub const STATE_ENV: &str = "PROV_STATE_DIR";

/// Where the project's keys lived before they moved here, relative to the checkout.
const OLD_KEYS: &str = ".cache/keys";
const KEY_FILES: [&str; 2] = ["attest.key", "attest.pub.json"];

pub struct HostState {
    dir: PathBuf,
}

impl HostState {
    /// The state of the checkout at `repo`: `$PROV_STATE_DIR`, else
    /// `${XDG_STATE_HOME:-~/.local/state}/prov/<first 16 hex of sha256(checkout path)>`.
    pub fn for_checkout(repo: &Path) -> Result<Self> {
        if let Some(dir) = std::env::var_os(STATE_ENV).filter(|d| !d.is_empty()) {
            return Ok(HostState {
                dir: PathBuf::from(dir),
            });
        }
        let root = std::env::var_os("XDG_STATE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .context("neither XDG_STATE_HOME nor HOME is set: set PROV_STATE_DIR")?;
        let checkout = repo
            .canonicalize()
            .with_context(|| format!("resolving {}", repo.display()))?;
        let id = sha256_hex(checkout.as_os_str().as_encoded_bytes());
        Ok(HostState {
            dir: root.join("prov").join(&id[..16]),
        })
    }

    /// State in a given folder (tests).
    pub fn at(dir: &Path) -> Self {
        HostState {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn private_key(&self) -> PathBuf {
        self.dir.join("keys").join(KEY_FILES[0])
    }

    pub fn public_key(&self) -> PathBuf {
        self.dir.join("keys").join(KEY_FILES[1])
    }

    /// The node's ssh configuration, from `vagrant ssh-config`.
    pub fn ssh_config(&self, node: &NodeName) -> PathBuf {
        self.dir.join("ssh").join(format!("{node}.config"))
    }

    /// The pinned ssh host keys of the nodes, one line per node (its name as the host alias).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("ssh").join("known_hosts")
    }

    /// Vagrant's machine data (`VAGRANT_DOTFILE_PATH`): the nodes' ids and private keys.
    pub fn vagrant_dir(&self) -> PathBuf {
        self.dir.join("vagrant")
    }

    /// The node's own export of the checkout, mounted at `/vagrant` inside it. The host writes
    /// it only through the node (`prov sync`), and reads back only the node's records, as data.
    pub fn export_dir(&self, node: &NodeName) -> PathBuf {
        self.dir.join("exports").join(node)
    }

    /// Runs Vagrant with this state: the Vagrantfile finds the exports here, and Vagrant keeps
    /// its machine data here rather than in the checkout's `.vagrant/`.
    pub fn vagrant(&self, repo: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("vagrant");
        cmd.current_dir(repo)
            .env(STATE_ENV, &self.dir)
            .env("VAGRANT_DOTFILE_PATH", self.vagrant_dir())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1");
        cmd
    }

    /// What the host last sent to `node`'s export, and when (`sync::sync` writes it; the import
    /// proves a record's source against it).
    pub fn synced_path(&self, node: &NodeName) -> PathBuf {
        self.dir.join("synced").join(format!("{node}.json"))
    }

    fn mark_path(&self, node: &NodeName) -> PathBuf {
        self.dir.join("attested").join(format!("{node}.json"))
    }

    /// The newest build of `node` the host attested, if any.
    pub fn attested(&self, node: &NodeName) -> Result<Option<AttestedMark>> {
        let path = self.mark_path(node);
        match bounded::read(&path).with_context(|| format!("reading {}", path.display()))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("parsing {}", path.display())),
        }
    }

    pub fn remember_attested(&self, node: &NodeName, mark: &AttestedMark) -> Result<()> {
        let path = self.mark_path(node);
        fs::create_dir_all(path.parent().expect("has a parent"))
            .with_context(|| format!("creating {}", path.parent().unwrap().display()))?;
        let mut bytes = serde_json::to_vec_pretty(mark)?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// Moves keys an older prov kept in the checkout (where nodes can read them) into the
    /// state folder; returns the one line to say when it moved something.
    pub fn migrate(&self, repo: &Path) -> Result<Option<String>> {
        let old = repo.join(OLD_KEYS);
        if !old.join(KEY_FILES[0]).exists() {
            return Ok(None);
        }
        if self.private_key().exists() {
            return Ok(Some(format!(
                "prov: warning: an old attestation key is still in {} (readable by the nodes); \
                 the project's key is in {}: remove the old one",
                old.display(),
                self.private_key().display()
            )));
        }
        let keys = self.dir.join("keys");
        fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
        set_mode(&keys, 0o700)?;
        for name in KEY_FILES {
            let from = old.join(name);
            if from.exists() {
                let to = keys.join(name);
                fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
                fs::remove_file(&from)?;
            }
        }
        set_mode(&self.private_key(), 0o600)?;
        Ok(Some(format!(
            "prov: moved the attestation key from {} (readable by the nodes) to {}",
            old.display(),
            keys.display()
        )))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
