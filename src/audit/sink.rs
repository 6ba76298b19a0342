//! Where sealed audit records go: an append-only file, stdout, or the local syslog socket
//! (`/dev/log`, facility authpriv). One thread per process writes.
//!
//! A file may be shared by several processes (a server and `pgcloak keys …`/`migrate …` runs
//! with the same config): every record is sealed and appended under an exclusive `flock` on
//! the file, after reading the chain head from the file's last record, so the records of all
//! of them form one chain.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};

use super::chain::{self, Head};
use super::{AuditError, AuditKey};
use crate::config::file::Audit as AuditConfig;

pub(super) enum Sink {
    File { file: File, path: PathBuf },
    Stdout,
    Syslog(UnixDatagram),
}

/// The last non-empty line of `file` (read backwards in chunks: the trail may be large).
fn last_line(file: &mut File) -> std::io::Result<Option<String>> {
    const CHUNK: u64 = 8192;
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let start = end.saturating_sub(CHUNK);
        let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        tail = buf;
        let trimmed = tail.trim_ascii_end();
        if let Some(nl) = trimmed.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(
                String::from_utf8_lossy(&trimmed[nl + 1..]).into_owned(),
            ));
        }
        if start == 0 {
            return Ok((!trimmed.is_empty()).then(|| String::from_utf8_lossy(trimmed).into_owned()));
        }
        end = start;
    }
}

/// The chain head after the file's last record (the genesis head for an empty file).
fn head_of_file(file: &mut File, path: &Path) -> Result<Head, AuditError> {
    let last = last_line(file).map_err(|source| AuditError::File {
        path: path.to_owned(),
        source,
    })?;
    match last {
        Some(l) => chain::head_of(&l).ok_or_else(|| AuditError::Unreadable(path.to_owned())),
        None => Ok(Head::default()),
    }
}

/// Seals `fields` after the file's last record and appends it, holding an exclusive `flock`
/// from reading the head to the end of the write. Returns the record's sequence number.
fn append_locked(
    file: &File,
    path: &Path,
    key: &AuditKey,
    fields: Map<String, Value>,
) -> Result<u64, AuditError> {
    let err = |source| AuditError::File {
        path: path.to_owned(),
        source,
    };
    let dup = file.try_clone().map_err(err)?;
    let mut locked = Flock::lock(dup, FlockArg::LockExclusive)
        .map_err(|(_, errno)| err(std::io::Error::from(errno)))?;
    let mut head = head_of_file(&mut locked, path)?;
    let line = chain::seal(key, &mut head, fields);
    locked
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| locked.flush())
        .map_err(err)?;
    Ok(head.seq)
}

impl Sink {
    /// Opens the configured sink; a file must be empty or end with a sealed record.
    pub(super) fn open(cfg: &AuditConfig) -> Result<Sink, AuditError> {
        if let Some(path) = &cfg.file {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
                .map_err(|source| AuditError::File {
                    path: path.clone(),
                    source,
                })?;
            head_of_file(&mut file, path)?;
            return Ok(Sink::File {
                file,
                path: path.clone(),
            });
        }
        if cfg.syslog {
            let s = UnixDatagram::unbound().map_err(AuditError::Syslog)?;
            s.connect("/dev/log").map_err(AuditError::Syslog)?;
            return Ok(Sink::Syslog(s));
        }
        Ok(Sink::Stdout)
    }

    /// Seals and writes one record (`head`: the chain of this process, for stdout/syslog).
    fn write(
        &mut self,
        key: &AuditKey,
        head: &mut Head,
        fields: Map<String, Value>,
    ) -> Result<(), AuditError> {
        match self {
            Sink::File { file, path } => {
                head.seq = append_locked(file, path, key, fields)?;
                Ok(())
            }
            Sink::Stdout => {
                let line = chain::seal(key, head, fields);
                let mut out = std::io::stdout().lock();
                out.write_all(format!("{line}\n").as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(AuditError::Write)
            }
            // <86>: facility authpriv (10), severity info (6).
            Sink::Syslog(s) => {
                let line = chain::seal(key, head, fields);
                s.send(format!("<86>pgcloak-audit: {line}").as_bytes())
                    .map(|_| ())
                    .map_err(AuditError::Syslog)
            }
        }
    }

    /// Seals and writes every record until the channel closes.
    pub(super) fn run(mut self, key: AuditKey, rx: std::sync::mpsc::Receiver<Map<String, Value>>) {
        let mut head = Head::default();
        for fields in rx {
            if let Err(e) = self.write(&key, &mut head, fields) {
                tracing::error!(error = %e, "audit record not written");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::tests::rec;

    #[test]
    fn two_writers_of_one_file_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let key = AuditKey::from_material(b"k");
        let threads: Vec<_> = (0..2)
            .map(|_| {
                // Two opens: two open file descriptions, as two processes have.
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(&path)
                    .unwrap();
                let (path, key) = (path.clone(), AuditKey::from_material(b"k"));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        append_locked(&f, &path, &key, rec("x")).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(chain::verify(&key, &text).unwrap(), 100);
        let mut f = File::open(&path).unwrap();
        assert_eq!(head_of_file(&mut f, &path).unwrap().seq, 100);
    }

    #[test]
    fn last_line_spans_chunks_and_ignores_trailing_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let long = "y".repeat(20_000);
        std::fs::write(&path, format!("first\n{long}\n\n")).unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(last_line(&mut f).unwrap(), Some(long));
        std::fs::write(&path, "").unwrap();
        assert_eq!(last_line(&mut File::open(&path).unwrap()).unwrap(), None);
    }
}
