//! What a build's log says about the builder's cache: the steps it took from the cache instead of
//! running them. `prov build` always passes `--no-cache`, so a record whose log shows one did not
//! come from a fresh build. With timestamps set to the source's date, this is what still tells a
//! fresh image from a cached one (with the record, and the container's creation time).

use std::collections::HashMap;
use std::io::{self, BufRead};

/// Instructions that make a layer or run something: taken from a cache, they are stale.
const STEP_INSTRUCTIONS: [&str; 3] = ["RUN", "COPY", "ADD"];

/// The steps the log shows taken from the cache, as the log names them.
///
/// - The legacy builder prints ` ---> Using cache` under the step's `Step N/M : ...` line.
/// - BuildKit's plain progress names a step `#N [stage i/n] INSTRUCTION ...` and then prints
///   `#N CACHED`. It does so even with `--no-cache` for resolving a named context and for a
///   WORKDIR, which run nothing: only RUN, COPY and ADD steps count.
pub fn cached_steps(log: impl BufRead) -> io::Result<Vec<String>> {
    let mut cached = Vec::new();
    let mut legacy_step: Option<String> = None;
    let mut buildkit_steps: HashMap<String, String> = HashMap::new();
    for line in log.split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        let line = line.trim_end_matches('\r');
        if line.starts_with("Step ") && line.contains(" : ") {
            legacy_step = Some(line.to_string());
        } else if line.trim() == "---> Using cache" {
            cached.push(
                legacy_step
                    .clone()
                    .unwrap_or_else(|| line.trim().to_string()),
            );
        } else if let Some(rest) = line.strip_prefix('#') {
            let Some((vertex, what)) = rest.split_once(' ') else {
                continue;
            };
            if what == "CACHED" {
                if let Some(step) = buildkit_steps.get(vertex) {
                    cached.push(format!("#{vertex} {step}"));
                }
            } else if let Some((_, instruction)) =
                what.strip_prefix('[').and_then(|w| w.split_once("] "))
            {
                let keyword = instruction.split_whitespace().next().unwrap_or("");
                if STEP_INSTRUCTIONS.contains(&keyword) {
                    buildkit_steps.insert(vertex.to_string(), what.to_string());
                }
            }
        }
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(log: &str) -> Vec<String> {
        cached_steps(log.as_bytes()).unwrap()
    }

    #[test]
    fn a_fresh_buildkit_log_shows_no_cached_step_though_it_says_cached() {
        let log = "#6 [context prov-base-runtime-image] prov-runtime:42f915e2ffb7\n\
                   #6 resolve docker.io/library/prov-runtime:42f915e2ffb7 0.0s done\n\
                   #6 CACHED\n\n\
                   #7 [build 1/8] WORKDIR /src\n#7 CACHED\n\n\
                   #8 [build 2/8] COPY Cargo.toml Cargo.lock ./\n#8 DONE 0.1s\n\n\
                   #14 [build 8/8] RUN cargo build --release\n#14 DONE 54.1s\n";
        assert!(cached(log).is_empty());
    }

    #[test]
    fn a_cached_buildkit_step_is_named() {
        // A stage of ten steps or more pads the step's number: `[build  5/10]`.
        let log = "#8 [build 2/8] COPY Cargo.toml Cargo.lock ./\n#8 CACHED\n\n\
                   #9 [build  5/10] COPY vendor vendor\n#9 CACHED\n\n\
                   #15 [stage-2 1/1] COPY --from=build /out/ /\n\
                   #15 CACHED\n";
        assert_eq!(
            cached(log),
            [
                "#8 [build 2/8] COPY Cargo.toml Cargo.lock ./",
                "#9 [build  5/10] COPY vendor vendor",
                "#15 [stage-2 1/1] COPY --from=build /out/ /"
            ]
        );
    }

    #[test]
    fn the_legacy_builders_cache_hits_are_named_by_step() {
        let log = "Step 1/12 : ARG BUILDER_IMAGE\nStep 7/12 : COPY vendor vendor\n \
                   ---> Using cache\n ---> 0123456789ab\nStep 8/12 : RUN make\n \
                   ---> Running in 89ab\n";
        assert_eq!(cached(log), ["Step 7/12 : COPY vendor vendor"]);
        assert!(cached("Step 1/2 : FROM x\n ---> 0123\nStep 2/2 : RUN true\n").is_empty());
    }
}
