//! The builder itself: the `docker build` command line (legacy or BuildKit, no cache, no
//! network), its output copied to the terminal and the log while hashed, and BuildKit's OCI
//! archive loaded into the engine.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::record::build_inputs::{base_context_name, passed_build_args, Builder};
use crate::record::buildkit::ImageArchive;
use crate::record::digest::HashingWriter;
use crate::record::manifest::{BuildContext, BuildLog};

use super::materials::{in_context_dir, Materials};
use super::BuildRequest;

/// Runs the build, streaming it the context and copying its output to the terminal and the log
/// while hashing it. The outer error means the build could not be run at all (its context
/// withdrawn, say).
pub(super) fn run_docker_build(
    req: &BuildRequest,
    m: &Materials,
    tag: &str,
    image_labels: &BTreeMap<String, String>,
    scratch: &Path,
    log_path: &Path,
    echo: &mut dyn Write,
) -> Result<Ran> {
    let dockerfile = in_context_dir(&req.context, &req.dockerfile)
        .expect("checked when the context was made")
        .to_string_lossy()
        .into_owned();
    // BuildKit: plain progress streams like the legacy builder's. The Dockerfile dates its files
    // the source's date itself: BuildKit's `rewrite-timestamp=true` would read and compress
    // again every layer, the runtime base's included (docs/builds.md). OCI media types, in the
    // store as in the archive: the image's ID is the same either way.
    let archive = archive_path(req, m, scratch);
    let mut args: Vec<String> = match (m.builder, &archive) {
        (Builder::Legacy, _) => vec!["build".into(), "--force-rm".into()],
        // Into the store, without BuildKit's provenance: attached, it would make the image an
        // index whose digest changes with every build.
        (Builder::BuildKit, None) => vec![
            "buildx".into(),
            "build".into(),
            "--progress=plain".into(),
            "--provenance=false".into(),
            "--output".into(),
            format!("type=image,name={tag},oci-mediatypes=true"),
        ],
        // With BuildKit's provenance: an OCI archive (the docker exporter takes no provenance),
        // which prov loads without it.
        (Builder::BuildKit, Some(archive)) => vec![
            "buildx".into(),
            "build".into(),
            "--progress=plain".into(),
            "--provenance=mode=max".into(),
            "--output".into(),
            format!("type=oci,name={tag},dest={}", archive.display()),
        ],
    };
    args.extend([
        "--no-cache".into(),
        "--network=none".into(),
        "--file".into(),
        dockerfile,
    ]);
    // The legacy builder makes each `--label` a step of its own (1 s each on these nodes): the
    // image is named by ID and labelled after, in one step (`stamp_labels`).
    let iidfile = scratch.join("image.id");
    match m.builder {
        Builder::Legacy => args.extend(["--iidfile".into(), iidfile.display().to_string()]),
        Builder::BuildKit => args.extend(["--tag".into(), tag.into()]),
    }
    // BuildKit cannot take `FROM <image id>`; a named context resolves a local image offline,
    // and its ID is checked again after the build.
    if m.builder == Builder::BuildKit {
        for base in &m.base_images {
            args.push("--build-context".into());
            args.push(format!(
                "{}=docker-image://{}",
                base_context_name(&base.arg),
                base.reference
            ));
        }
    }
    let build_args = passed_build_args(
        m.builder,
        &m.base_images,
        &m.git,
        Some(&m.source_date),
        req.build_args.iter().cloned(),
    );
    for (k, v) in build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    if m.builder == Builder::BuildKit {
        for (k, v) in image_labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
    }
    // The context is the stream prov makes from the recorded tree, on standard input.
    args.push("-".into());

    let file = File::create(log_path).with_context(|| {
        format!(
            "cannot create the build log {}: the provenance folder must be writable",
            log_path.display()
        )
    })?;
    let mut log = HashingWriter::new(file);
    // The exact command heads the log, so the log alone says how the image was made; what the
    // context held ends it, once sent.
    let env = match m.builder {
        Builder::Legacy => "DOCKER_BUILDKIT=0 ",
        Builder::BuildKit => "",
    };
    writeln!(
        log,
        "$ {env}docker {} < the build context, streamed by prov from the recorded tree",
        args.join(" ")
    )?;

    let (context_in, context_out) =
        std::io::pipe().context("making the pipe for the build context")?;
    let reader = duct::cmd("docker", &args)
        .dir(&req.repo)
        .stdin_file(context_in)
        .env(
            "DOCKER_BUILDKIT",
            if m.builder == Builder::Legacy {
                "0"
            } else {
                "1"
            },
        )
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .context("starting docker build")?;
    // The context is written while docker reads it; its output is copied meanwhile.
    let (sent, copied) = std::thread::scope(|scope| {
        let sent = scope.spawn(|| {
            m.context.stream(context_out, || {
                let _ = reader.kill();
            })
        });
        let copied = copy_output(&reader, echo, &mut log, log_path);
        (sent.join(), copied)
    });
    copied?;
    let sent = sent.unwrap_or_else(|_| Err(anyhow!("sending the build context panicked")));
    let mut status = reader
        .try_wait()?
        .ok_or_else(|| anyhow!("docker build output ended before the process"))?
        .status;
    if sent.is_ok() && status.success() && m.builder == Builder::Legacy {
        let built = std::fs::read_to_string(&iidfile)
            .with_context(|| format!("reading the built image's ID from {}", iidfile.display()))?;
        status = stamp_labels(built.trim(), tag, image_labels, echo, &mut log, log_path)?;
    }
    // A context withdrawn is a build that never ran (docker never had the whole context): no
    // log, no record, as when an input is refused before the build.
    let context = match sent {
        Ok(sent) => sent,
        Err(e) => {
            drop(log);
            let _ = std::fs::remove_file(log_path);
            return Err(e.context(format!("docker build was stopped ({status})")));
        }
    };
    writeln!(
        log,
        "prov: the build context sent: {} files, {} bytes, sha256 {}",
        context.files, context.bytes, context.sha256
    )?;
    let (file, sha256, bytes) = log.finish()?;
    file.sync_all()?;
    let result = if status.success() {
        Ok(())
    } else {
        Err(anyhow!(
            "docker build exited with {status}; see the log {}",
            log_path.display()
        ))
    };
    Ok(Ran {
        log: BuildLog {
            path: String::new(),
            sha256,
            bytes,
        },
        context,
        result,
    })
}

/// What one run of the builder gave.
pub(super) struct Ran {
    pub(super) log: BuildLog,
    pub(super) context: BuildContext,
    /// Whether docker build succeeded.
    pub(super) result: Result<()>,
}

/// Where BuildKit writes the image as an OCI archive, when the build keeps BuildKit's provenance
/// (prov loads it, see `load_archive`); otherwise BuildKit writes into the store itself.
pub(super) fn archive_path(req: &BuildRequest, m: &Materials, scratch: &Path) -> Option<PathBuf> {
    (m.builder == Builder::BuildKit && req.buildkit_provenance).then(|| scratch.join("image.tar"))
}

/// The legacy builder's image `built`, labelled and tagged in one step: a Dockerfile of `FROM`
/// the image by ID and one `LABEL` with every label, on standard input (no context). Its
/// command and output go on in the log. Returns docker's exit status.
fn stamp_labels(
    built: &str,
    tag: &str,
    labels: &BTreeMap<String, String>,
    echo: &mut dyn Write,
    log: &mut HashingWriter<File>,
    log_path: &Path,
) -> Result<std::process::ExitStatus> {
    let dockerfile = label_dockerfile(built, labels)?;
    let args = [
        "build",
        "--force-rm",
        "--no-cache",
        "--network=none",
        "--tag",
        tag,
        "-",
    ];
    writeln!(
        log,
        "$ DOCKER_BUILDKIT=0 docker {} <<'EOF'\n{dockerfile}EOF",
        args.join(" ")
    )?;
    let reader = duct::cmd("docker", args)
        .stdin_bytes(dockerfile)
        .env("DOCKER_BUILDKIT", "0")
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .context("starting docker build to label the image")?;
    copy_output(&reader, echo, log, log_path)?;
    Ok(reader
        .try_wait()?
        .ok_or_else(|| anyhow!("docker build output ended before the process"))?
        .status)
}

/// `FROM <id>` and one `LABEL` instruction naming every label, each key and value quoted (a
/// value with a line break cannot be one).
fn label_dockerfile(built: &str, labels: &BTreeMap<String, String>) -> Result<String> {
    let quote = |s: &str| -> Result<String> {
        if s.contains(['\n', '\r']) {
            bail!("the label {s:?} has a line break, which a Dockerfile cannot hold");
        }
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
        ))
    };
    let mut text = format!("FROM {built}\nLABEL");
    for (k, v) in labels {
        text.push_str(&format!(" {}={}", quote(k)?, quote(v)?));
    }
    text.push('\n');
    Ok(text)
}

/// Copies docker's output to the terminal and the log as it comes.
fn copy_output(
    mut reader: &duct::ReaderHandle,
    echo: &mut dyn Write,
    log: &mut HashingWriter<File>,
    log_path: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .context("reading docker build output")?;
        if n == 0 {
            return Ok(());
        }
        echo.write_all(&buf[..n])?;
        echo.flush()?;
        log.write_all(&buf[..n])
            .with_context(|| format!("writing {}", log_path.display()))?;
    }
}

/// Loads the image of BuildKit's OCI archive into the node's store, without BuildKit's provenance
/// (see [`ImageArchive::write_image_only`]), and returns the provenance.
pub(super) fn load_archive(path: &Path) -> Result<Option<serde_json::Value>> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let archive = ImageArchive::read(open()?).context("reading BuildKit's OCI archive")?;
    let mut load = std::process::Command::new("docker")
        .arg("load")
        .stdin(std::process::Stdio::piped())
        // Its one line goes to stderr: a rebuild reports on stdout.
        .stdout(std::io::stderr())
        .spawn()
        .context("running docker load")?;
    let written = archive.write_image_only(open()?, load.stdin.take().expect("stdin is piped"));
    let status = load.wait().context("running docker load")?;
    written.context("streaming the image to docker load")?;
    if !status.success() {
        bail!("docker load of the built image exited with {status}");
    }
    Ok(archive.statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_go_in_one_instruction_quoted() {
        let labels = BTreeMap::from([
            ("a.b".to_string(), "plain".to_string()),
            ("c".to_string(), r#"q"uote $HOME back\slash"#.to_string()),
        ]);
        assert_eq!(
            label_dockerfile("sha256:0123", &labels).unwrap(),
            "FROM sha256:0123\nLABEL \"a.b\"=\"plain\" \"c\"=\"q\\\"uote \\$HOME back\\\\slash\"\n"
        );
        let broken = BTreeMap::from([("a".to_string(), "two\nlines".to_string())]);
        assert!(label_dockerfile("sha256:0123", &broken).is_err());
    }
}
