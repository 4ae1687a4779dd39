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

    /// Times `f` under `phase`, and the CPU prov itself used meanwhile (all its threads, not the
    /// processes it waits for) under `cpu_phase`: while docker builds, prov writes the context,
    /// copies the log and asks Compose, and only that work is its own.
    pub(super) fn time_with_cpu<T>(
        &mut self,
        phase: &'static str,
        cpu_phase: &'static str,
        f: impl FnOnce() -> T,
    ) -> T {
        let cpu = own_cpu_secs();
        let out = self.time(phase, f);
        *self.0.entry(cpu_phase).or_default() += own_cpu_secs() - cpu;
        out
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

/// The CPU this process has used so far, user and system, in seconds.
fn own_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the whole struct, and with RUSAGE_SELF it cannot fail.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
