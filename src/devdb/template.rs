//! A process-wide template data directory: `initdb` runs once per process and every
//! [`DevDb`](super::DevDb) copies the result (`cp -a`, as the server's OS user), which is much
//! cheaper than another `initdb` when a test binary starts dozens of databases.
//!
//! The template lives in its own `pgcloak-devdb-*` directory claimed by this process, so the
//! reaper removes it once the process is gone (statics are never dropped).

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

use super::DevDbError;
use super::cluster::Layout;
use super::pgbin::PgBin;
use super::reap;

static TEMPLATE: OnceCell<PathBuf> = OnceCell::const_new();

/// The template's data directory, made on first use. A failure is not cached.
pub(crate) async fn data_dir(pg: &PgBin) -> Result<&'static Path, DevDbError> {
    TEMPLATE
        .get_or_try_init(|| make(pg))
        .await
        .map(PathBuf::as_path)
}

async fn make(pg: &PgBin) -> Result<PathBuf, DevDbError> {
    let io = |e| DevDbError::Io {
        what: "cannot create the template directory".into(),
        source: e,
    };
    let tmp = tempfile::Builder::new()
        .prefix(reap::DIR_PREFIX)
        .tempdir()
        .map_err(io)?;
    reap::claim(tmp.path()).map_err(io)?;
    let layout = Layout::new(&tmp.keep());
    layout.prepare_dirs(pg)?;
    layout.initdb(pg).await?;
    Ok(layout.data())
}

/// Removes this process's template directory, if it made one (`pgcloak demo` on exit, so
/// nothing is left in the temp dir; a test binary leaves it to the reaper). No `DevDb` may
/// be started afterwards.
pub(crate) fn remove() {
    if let Some(root) = TEMPLATE.get().and_then(|d| d.parent()) {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// Fills `layout`'s (empty, server-owned) data directory with a copy of the template.
pub(crate) async fn copy_into(pg: &PgBin, layout: &Layout) -> Result<(), DevDbError> {
    let template = data_dir(pg).await?;
    let src = template.join(".");
    let dst = layout.data();
    let args = ["-a".as_ref(), src.as_os_str(), dst.as_os_str()];
    pg.run("/bin/cp", args, layout.root(), None)
        .await
        .map(|_| ())
}
