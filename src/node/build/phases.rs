//! How long each phase of a build took, written where `PROV_TIMINGS` says (the benchmarks
//! read it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// Where prov's time goes in one build, by phase: written as JSON to the file `PROV_TIMINGS`
/// names, when set (the benchmarks read it).
#[derive(Default)]
pub(super) struct Phases(BTreeMap<&'static str, f64>);

impl Phases {
    pub(super) fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        *self.0.entry(phase).or_default() += start.elapsed().as_secs_f64();
        out
    }

    /// Adds `secs` to `phase`: time prov spent on it while another phase ran.
    pub(super) fn add(&mut self, phase: &'static str, secs: f64) {
        *self.0.entry(phase).or_default() += secs;
    }

    /// Sets `phase` to `secs`, less the time counted already under `inner`, a phase within it.
    pub(super) fn set_less(&mut self, phase: &'static str, secs: f64, inner: &str) {
        let inner = self.0.get(inner).copied().unwrap_or_default();
        self.0.insert(phase, secs - inner);
    }

    pub(super) fn write(&self) -> Result<()> {
        let Some(path) = std::env::var_os(TIMINGS_ENV).filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        std::fs::write(&path, serde_json::to_vec(&self.0)?)
            .with_context(|| format!("writing {TIMINGS_ENV}={}", Path::new(&path).display()))
    }
}

pub const TIMINGS_ENV: &str = "PROV_TIMINGS";
