//! Helpers shared by the integration tests.

use std::fs;
use std::path::Path;

use prov::record::digest::sha256_hex;

pub const FILES: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\n",
    ),
    ("src/lib.rs", "pub fn tiny() -> u8 { 1 }\n"),
    (".gitignore", "target/\n"),
];

/// Writes, in the checkout `d`, a Cargo.lock naming one registry crate, that crate's archive in
/// .cache/crates and vendor/tiny, laid out as `cargo vendor` lays it out.
pub fn vendor_tiny_crate(d: &Path) {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in FILES {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, format!("tiny-0.1.0/{path}"), text.as_bytes())
            .unwrap();
    }
    let bytes = archive.into_inner().unwrap().finish().unwrap();
    let checksum = sha256_hex(&bytes);
    fs::create_dir_all(d.join(".cache/crates")).unwrap();
    fs::write(d.join(".cache/crates/tiny-0.1.0.crate"), &bytes).unwrap();
    fs::write(
        d.join("Cargo.lock"),
        format!(
            "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\n\
             name = \"tiny\"\nversion = \"0.1.0\"\nsource = \"registry+https://github.com/\
             rust-lang/crates.io-index\"\nchecksum = \"{checksum}\"\n"
        ),
    )
    .unwrap();
    // cargo vendor leaves .gitignore out and adds its checksum file.
    for (path, text) in &FILES[..2] {
        let file = d.join("vendor/tiny").join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
    write_checksums(d, &checksum);
}

/// `.cargo-checksum.json` as cargo writes it, for the files as they are now.
pub fn write_checksums(d: &Path, package: &str) {
    let files: serde_json::Map<String, serde_json::Value> = FILES[..2]
        .iter()
        .map(|(path, _)| {
            let bytes = fs::read(d.join("vendor/tiny").join(path)).unwrap();
            (path.to_string(), sha256_hex(&bytes).into())
        })
        .collect();
    fs::write(
        d.join("vendor/tiny/.cargo-checksum.json"),
        serde_json::json!({ "files": files, "package": package }).to_string(),
    )
    .unwrap();
}
