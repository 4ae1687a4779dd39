//! Reading files a node may have written (records, envelopes) or that come from outside (keys):
//! regular files only, never through a symbolic link, and never more than a stated size. A FIFO
//! would block the reader forever and a link to `/dev/zero` would fill its memory; both are
//! refused before a byte is read.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use thiserror::Error;

/// The most prov reads from any one record, envelope or key file. A manifest is about 4 KiB and
/// an envelope about 8 KiB: anything near this limit is not one of them.
pub const MAX_RECORD_BYTES: u64 = 4 << 20;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is {0}, not a regular file: records are plain files written by prov")]
    NotRegular(&'static str),
    #[error("is larger than {MAX_RECORD_BYTES} bytes, more than any record prov writes")]
    TooLarge,
}

/// The file's bytes; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    let Some(file) = open(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok(Some(bytes))
}

/// The file, open for reading, once it is known to be a regular file (for a caller that streams
/// it, bounding what it keeps itself); `Ok(None)` when it does not exist.
pub fn open(path: &Path) -> Result<Option<File>, ReadError> {
    // O_NOFOLLOW: a symbolic link fails to open (ELOOP) instead of being followed out of the
    // folder; O_NONBLOCK: opening a FIFO returns at once, so that it can be refused below.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::NotRegular("a symbolic link"))
        }
        Err(e) => return Err(e.into()),
    };
    check_regular(&file)?;
    Ok(Some(file))
}

/// Whether a path is a symbolic link (a record folder must not be one).
pub fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
}

/// Checked on the open descriptor, so the file cannot be swapped between check and read.
fn check_regular(file: &File) -> Result<(), ReadError> {
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(ReadError::NotRegular(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read(&path).unwrap().unwrap(), b"{}");
        assert!(read(&dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn refuses_fifos_devices_symlinks_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read(&fifo), Err(ReadError::NotRegular("a FIFO"))));

        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read(&link),
            Err(ReadError::NotRegular("a symbolic link"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero")),
            Err(ReadError::NotRegular("a device"))
        ));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b' '; MAX_RECORD_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&big), Err(ReadError::TooLarge)));
    }
}
