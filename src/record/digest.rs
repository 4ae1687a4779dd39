//! sha256 helpers: of bytes, of a file, and of a stream as it is written.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Whether `s` is a sha256 as `sha256sum` prints it: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Streams the file through the hasher in fixed-size chunks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256_reader(File::open(path)?)?.0)
}

/// Hashes a stream in constant memory, the way build logs are hashed; returns hex and size.
pub fn sha256_reader(reader: impl Read) -> io::Result<(String, u64)> {
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(
        &mut io::BufReader::with_capacity(1 << 16, reader),
        &mut hashing,
    )?;
    let (_, hex, bytes) = hashing.finish()?;
    Ok((hex, bytes))
}

/// A writer that hashes and counts every byte it passes on, in constant memory.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes and returns the inner writer, the hex digest and the byte count.
    pub fn finish(mut self) -> io::Result<(W, String, u64)> {
        self.inner.flush()?;
        Ok((
            self.inner,
            format!("{:x}", self.hasher.finalize()),
            self.bytes,
        ))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest_across_many_writes() {
        let mut w = HashingWriter::new(Vec::new());
        for i in 0..1000u32 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let (inner, hex, bytes) = w.finish().unwrap();
        assert_eq!(hex, sha256_hex(&inner));
        assert_eq!(bytes, inner.len() as u64);
    }
}
