//! The `users_file` of `auth.mode = "userlist"`: per user, the SCRAM verifier the application
//! must prove and the environment variable holding the upstream login password.
//!
//! ```toml
//! [users.app]
//! verifier = "SCRAM-SHA-256$4096:...$...:..."
//! upstream_password_env = "APP_DB_PASSWORD"
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{AuthError, DEFAULT_ITERATIONS, ScramVerifier, UpstreamSecret};

/// One user of the users file.
#[derive(Debug)]
pub struct UserEntry {
    /// What the application must prove.
    pub verifier: ScramVerifier,
    /// Name of the environment variable holding the upstream login password.
    pub upstream_password_env: String,
    user: String,
}

impl UserEntry {
    /// Reads the upstream password from the environment (at connect time, so rotating the
    /// variable needs only a restart of nothing but the process environment).
    pub fn upstream_secret(&self) -> Result<UpstreamSecret, AuthError> {
        std::env::var(&self.upstream_password_env)
            .map(|p| UpstreamSecret::Password(Zeroizing::new(p)))
            .map_err(|_| AuthError::MissingEnv {
                var: self.upstream_password_env.clone(),
                user: self.user.clone(),
            })
    }
}

/// All users of a users file.
#[derive(Debug, Default)]
pub struct UserList {
    users: HashMap<String, UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    users: HashMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    verifier: String,
    upstream_password_env: String,
}

impl UserList {
    /// Reads and validates a users file. Errors name the file and the user, never a verifier.
    pub fn load(path: impl AsRef<Path>) -> Result<UserList, AuthError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let err = |reason: String| AuthError::UserList {
            file: file.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(err)
    }

    fn parse(text: &str) -> Result<UserList, String> {
        // The message alone: toml's full rendering quotes the offending line, which may hold
        // a verifier.
        let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let line = 1 + text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                format!("line {line}: {}", e.message())
            }
            None => e.message().to_owned(),
        })?;
        let mut users = HashMap::with_capacity(raw.users.len());
        for (user, value) in raw.users {
            let entry = RawEntry::deserialize(value).map_err(|e| format!("user {user:?}: {e}"))?;
            let verifier = ScramVerifier::parse(&entry.verifier).map_err(|e| {
                format!("user {user:?}: {e} (make one with `pgcloak`'s make_verifier)")
            })?;
            if entry.upstream_password_env.is_empty() {
                return Err(format!("user {user:?}: upstream_password_env is empty"));
            }
            let upstream_password_env = entry.upstream_password_env;
            users.insert(
                user.clone(),
                UserEntry {
                    verifier,
                    upstream_password_env,
                    user,
                },
            );
        }
        Ok(UserList { users })
    }

    /// The entry for `user`, if listed.
    pub fn get(&self, user: &str) -> Option<&UserEntry> {
        self.users.get(user)
    }

    /// `(user, variable)` for every upstream password variable that is unset (for `pgcloak check`).
    pub fn missing_env(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<_> = self
            .users
            .iter()
            .filter(|(_, e)| std::env::var_os(&e.upstream_password_env).is_none())
            .map(|(u, e)| (u.as_str(), e.upstream_password_env.as_str()))
            .collect();
        out.sort_unstable();
        out
    }
}

/// A PostgreSQL-compatible SCRAM-SHA-256 verifier for `password` with a fresh 16-byte salt and
/// 4096 iterations, for the users file (or `ALTER ROLE … PASSWORD '<verifier>'`).
pub fn make_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    crate::crypto::fill_os_random(&mut salt);
    ScramVerifier::from_password(password, &salt, DEFAULT_ITERATIONS).to_rolpassword()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn good_file() {
        let f = write(&format!(
            "[users.app]\nverifier = \"{V}\"\nupstream_password_env = \"PATH\"\n\
             [users.other]\nverifier = \"{V}\"\nupstream_password_env = \"PGCLOAK_SURELY_UNSET_9\"\n"
        ));
        let list = UserList::load(f.path()).unwrap();
        let app = list.get("app").unwrap();
        assert_eq!(app.verifier, ScramVerifier::parse(V).unwrap());
        assert_eq!(app.upstream_password_env, "PATH");
        assert!(matches!(
            app.upstream_secret(),
            Ok(UpstreamSecret::Password(_))
        ));
        let other = list.get("other").unwrap();
        let err = other.upstream_secret().unwrap_err().to_string();
        assert!(
            err.contains("PGCLOAK_SURELY_UNSET_9") && err.contains("other"),
            "{err}"
        );
        assert_eq!(
            list.missing_env(),
            vec![("other", "PGCLOAK_SURELY_UNSET_9")]
        );
        assert!(list.get("nobody").is_none());
    }

    #[test]
    fn unknown_key_names_file_and_user() {
        let f = write(&format!(
            "[users.app]\nverifier = \"{V}\"\nupstream_password_env = \"X\"\npassword = \"hunter2\"\n"
        ));
        let err = UserList::load(f.path()).unwrap_err().to_string();
        let file = f.path().display().to_string();
        assert!(
            err.contains(&file) && err.contains("\"app\"") && err.contains("password"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let f = write("\n[user.app]\n");
        let err = UserList::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("user"), "{err}");
        let f = write(&format!("[users.app]\nverifier = \"{V}\" x\n"));
        let err = UserList::load(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 2") && !err.contains("W22Z"), "{err}");
    }

    #[test]
    fn missing_env_name_is_an_error() {
        let f = write(&format!("[users.app]\nverifier = \"{V}\"\n"));
        let err = UserList::load(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("upstream_password_env") && err.contains("\"app\""),
            "{err}"
        );
    }

    #[test]
    fn bad_verifier_is_not_echoed() {
        let f =
            write("[users.app]\nverifier = \"md5secretsecret\"\nupstream_password_env = \"X\"\n");
        let err = UserList::load(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("\"app\"") && !err.contains("secretsecret"),
            "{err}"
        );
    }

    #[test]
    fn make_verifier_verifies_its_password() {
        let v = ScramVerifier::parse(&make_verifier("s3cret")).unwrap();
        assert_eq!(v.iterations, 4096);
        assert_eq!(v.salt.len(), 16);
        assert_eq!(v, ScramVerifier::from_password("s3cret", &v.salt, 4096));
        assert_ne!(make_verifier("s3cret"), make_verifier("s3cret"));
    }
}
