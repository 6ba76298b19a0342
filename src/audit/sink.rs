//! Where sealed audit records go: an append-only file (its chain continued after a restart),
//! stdout, or the local syslog socket (`/dev/log`, facility authpriv). One thread writes.

use std::io::Write;
use std::os::unix::net::UnixDatagram;

use serde_json::{Map, Value};

use super::chain::{self, Head};
use super::{AuditError, AuditKey};
use crate::config::file::Audit as AuditConfig;

pub(super) enum Sink {
    File(std::fs::File),
    Stdout,
    Syslog(UnixDatagram),
}

impl Sink {
    /// Opens the configured sink and finds the chain head to continue from.
    pub(super) fn open(cfg: &AuditConfig) -> Result<(Sink, Head), AuditError> {
        if let Some(path) = &cfg.file {
            let err = |source| AuditError::File {
                path: path.clone(),
                source,
            };
            let head = match std::fs::read_to_string(path) {
                Ok(text) => match text.lines().rev().find(|l| !l.trim().is_empty()) {
                    Some(last) => {
                        chain::head_of(last).ok_or_else(|| AuditError::Unreadable(path.clone()))?
                    }
                    None => Head::default(),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Head::default(),
                Err(e) => return Err(err(e)),
            };
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(err)?;
            return Ok((Sink::File(file), head));
        }
        if cfg.syslog {
            let s = UnixDatagram::unbound().map_err(AuditError::Syslog)?;
            s.connect("/dev/log").map_err(AuditError::Syslog)?;
            return Ok((Sink::Syslog(s), Head::default()));
        }
        Ok((Sink::Stdout, Head::default()))
    }

    fn write(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Sink::File(f) => {
                f.write_all(format!("{line}\n").as_bytes())?;
                f.flush()
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(format!("{line}\n").as_bytes())?;
                out.flush()
            }
            // <86>: facility authpriv (10), severity info (6).
            Sink::Syslog(s) => s
                .send(format!("<86>pgcloak-audit: {line}").as_bytes())
                .map(|_| ()),
        }
    }

    /// Seals and writes every record until the channel closes.
    pub(super) fn run(
        mut self,
        key: AuditKey,
        mut head: Head,
        rx: std::sync::mpsc::Receiver<Map<String, Value>>,
    ) {
        for fields in rx {
            let line = chain::seal(&key, &mut head, fields);
            if let Err(e) = self.write(&line) {
                tracing::error!(error = %e, seq = head.seq, "audit record not written");
            }
        }
    }
}
