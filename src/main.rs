//! prov: build provenance for Docker Compose stacks on Vagrant nodes. The command line is in
//! `cli/`; its exit code is decided by `error::Outcome` (0 held, 1 a check failed, 2 something
//! could not be checked or run).

fn main() -> std::process::ExitCode {
    prov::cli::main()
}
