//! The on-disk cluster of a [`DevDb`](super::DevDb): directory layout, TLS files, `initdb`,
//! `postgresql.conf` / `pg_hba.conf`, and the bootstrap of roles over the private Unix socket.
//!
//! Layout of the temporary directory (mode 0755, owned by the caller):
//! `data/` (0700, server) · `run/` (socket + one-shot pwfile, 0700, server) ·
//! `tls/server.{crt,key}` (key 0600, server) · `ca.crt` (0644) · `postgres.log` (server) ·
//! `scratch/` (0755, caller's files).

use std::path::{Path, PathBuf};

use super::pgbin::{PgBin, log_tail};
use super::{
    APP_DATABASE, APP_PASSWORD, APP_USER, CONTROL_PASSWORD, CONTROL_USER, DevDbError, SUPERUSER,
    SUPERUSER_PASSWORD, TestCa,
};

/// The exact client authentication rules: trust only on the private socket, SCRAM over TLS on
/// loopback, and no `host` lines, so plaintext TCP is refused.
const PG_HBA: &str = "local all all trust\n\
hostssl all all 127.0.0.1/32 scram-sha-256\n\
hostssl all all ::1/128 scram-sha-256\n";

/// Paths inside the temporary directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub(crate) fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    pub(crate) fn log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }
    fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    fn pwfile(&self) -> PathBuf {
        self.run().join("pwfile")
    }
    fn conf(&self) -> PathBuf {
        self.data().join("devdb.conf")
    }

    /// Creates the directories, the server's TLS files, the CA file and the log file.
    pub(crate) fn prepare(
        &self,
        pg: &PgBin,
        ca: &TestCa,
        server_names: &[String],
        ca_cert: &Path,
        scratch: &Path,
    ) -> Result<(), DevDbError> {
        self.prepare_dirs(pg)?;
        mkdir(scratch)?;
        write(ca_cert, ca.cert_pem().as_bytes())?;
        set_mode(ca_cert, 0o644)?;
        let names: Vec<&str> = server_names.iter().map(String::as_str).collect();
        let (cert, key) = ca.issue(&names)?;
        let tls = self.tls();
        write(&tls.join("server.crt"), cert.as_bytes())?;
        pg.give(&tls.join("server.crt"), 0o644)?;
        write(&tls.join("server.key"), key.as_bytes())?;
        pg.give(&tls.join("server.key"), 0o600)?;
        write(&self.log(), b"")?;
        pg.give(&self.log(), 0o600)
    }

    /// Makes the root traversable and creates the server's directories (data, run, tls).
    pub(crate) fn prepare_dirs(&self, pg: &PgBin) -> Result<(), DevDbError> {
        // The root stays the caller's; 0755 lets the server's OS user traverse it.
        set_mode(&self.root, 0o755)?;
        for (dir, mode) in [
            (self.data(), 0o700),
            (self.run(), 0o700),
            (self.tls(), 0o700),
        ] {
            mkdir(&dir)?;
            pg.give(&dir, mode)?;
        }
        Ok(())
    }

    /// Runs `initdb` (SCRAM, superuser password from a one-shot file) and installs `pg_hba.conf`
    /// and the include of `devdb.conf` into the fresh data directory.
    pub(crate) async fn initdb(&self, pg: &PgBin) -> Result<(), DevDbError> {
        let pwfile = self.pwfile();
        write(&pwfile, format!("{SUPERUSER_PASSWORD}\n").as_bytes())?;
        pg.give(&pwfile, 0o600)?;
        let data = self.data();
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let user_arg = format!("--username={SUPERUSER}");
        let args: [&std::ffi::OsStr; 10] = [
            "-D".as_ref(),
            data.as_os_str(),
            pwfile_arg.as_ref(),
            user_arg.as_ref(),
            "--auth-local=trust".as_ref(),
            "--auth-host=scram-sha-256".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--locale=C".as_ref(),
            "--no-sync".as_ref(),
            "--no-instructions".as_ref(),
        ];
        let res = pg.run("initdb", args, &self.root, None).await;
        let _ = std::fs::remove_file(&pwfile);
        res?;
        let hba = data.join("pg_hba.conf");
        write(&hba, PG_HBA.as_bytes())?;
        pg.give(&hba, 0o600)?;
        let main_conf = data.join("postgresql.conf");
        let mut text =
            std::fs::read_to_string(&main_conf).map_err(|e| io("read", &main_conf, e))?;
        text.push_str("\n# pgcloak devdb settings\ninclude 'devdb.conf'\n");
        write(&main_conf, text.as_bytes())
    }

    /// (Re)writes `devdb.conf` for `port`, with `extra` settings after the defaults.
    pub(crate) fn write_config(
        &self,
        pg: &PgBin,
        port: u16,
        extra: &[(String, String)],
    ) -> Result<(), DevDbError> {
        let tls = self.tls();
        let mut text = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = {run}\n\
             ssl = on\n\
             ssl_cert_file = {cert}\n\
             ssl_key_file = {key}\n\
             password_encryption = 'scram-sha-256'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 300\n\
             shared_buffers = 128MB\n\
             logging_collector = off\n\
             log_min_messages = warning\n\
             log_min_error_statement = panic\n\
             log_error_verbosity = terse\n",
            run = quote(&self.run()),
            cert = quote(&tls.join("server.crt")),
            key = quote(&tls.join("server.key")),
        );
        for (name, value) in extra {
            text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let conf = self.conf();
        write(&conf, text.as_bytes())?;
        pg.give(&conf, 0o600)
    }

    /// A superuser client to the `postgres` database over the trusted Unix socket; the
    /// connection task runs on the current runtime.
    pub(crate) async fn socket_client(
        &self,
        port: u16,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), DevDbError> {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(self.run())
            .port(port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| self.pg_err("connecting over the Unix socket", e))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((client, task))
    }

    /// A [`DevDbError::Postgres`] carrying the tail of the server log.
    pub(crate) fn pg_err(&self, what: &str, e: tokio_postgres::Error) -> DevDbError {
        DevDbError::Postgres {
            what: what.to_string(),
            source: e,
            log_tail: log_tail(&self.log()),
        }
    }

    /// Creates the roles and the app database over the trusted Unix socket.
    pub(crate) async fn bootstrap(&self, port: u16) -> Result<(), DevDbError> {
        let (client, task) = self.socket_client(port).await?;
        let roles = format!(
            "CREATE ROLE {CONTROL_USER} LOGIN SUPERUSER PASSWORD '{CONTROL_PASSWORD}';\
             CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';"
        );
        client
            .batch_execute(&roles)
            .await
            .map_err(|e| self.pg_err("creating the roles", e))?;
        client
            .batch_execute(&format!("CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}"))
            .await
            .map_err(|e| self.pg_err("creating the app database", e))?;
        drop(client);
        let _ = task.await;
        Ok(())
    }
}

/// A single-quoted postgresql.conf string.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> DevDbError {
    DevDbError::Io {
        what: format!("cannot {what} {}", path.display()),
        source: e,
    }
}

fn mkdir(path: &Path) -> Result<(), DevDbError> {
    std::fs::create_dir_all(path).map_err(|e| io("create directory", path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DevDbError> {
    std::fs::write(path, bytes).map_err(|e| io("write", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DevDbError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("set the mode of", path, e))
}
