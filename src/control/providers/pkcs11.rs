//! The `pkcs11` provider: any PKCS#11 module (an HSM; SoftHSM2 in tests) through `cryptoki`.
//! A 256-bit AES key on the token (label `key_label`; created by `pgcloak keys init` if
//! absent: token object, private, sensitive, non-extractable) wraps each data key with
//! `CKM_AES_GCM` inside the token, the data key's identity (name, version, algorithm) as
//! associated data. Stored wrap: `0x01 ‖ IV (12) ‖ ciphertext ‖ tag (16)`. The PIN comes from
//! `pin_env` or `pin_file`. PKCS#11 calls block, so each runs on tokio's blocking pool, under
//! the configured timeout; one logged-in session is kept and reopened after an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{
    FailureKind, KeyProvider, ProviderError, ProviderFuture, data_key_from, foreign, timed,
};
use crate::config::keys::{Pkcs11Config, ProviderKind};
use crate::crypto::{DataKey, KekRef, WrappedKey};

const KIND: ProviderKind = ProviderKind::Pkcs11;
const WRAP_VERSION: u8 = 0x01;
const IV_LEN: usize = 12;

/// An open, logged-in session and the wrapping key's handle.
struct Hsm {
    session: Session,
    key: ObjectHandle,
}

/// Wraps with an AES key inside a PKCS#11 token.
pub struct Pkcs11Provider {
    cfg: Pkcs11Config,
    hsm: Arc<Mutex<Option<Hsm>>>,
}

/// One initialized context per module per process (C_Initialize may run only once).
fn context(module: &PathBuf) -> Result<Pkcs11, String> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock();
    if let Some(c) = all.get(module) {
        return Ok(c.clone());
    }
    let ctx =
        Pkcs11::new(module).map_err(|e| format!("cannot load module {}: {e}", module.display()))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| format!("C_Initialize: {e}"))?;
    all.insert(module.clone(), ctx.clone());
    Ok(ctx)
}

impl Pkcs11Provider {
    /// Checks the PIN source; loads the module on first use.
    pub fn new(cfg: &Pkcs11Config) -> Result<Self, ProviderError> {
        let p = Pkcs11Provider {
            cfg: cfg.clone(),
            hsm: Arc::new(Mutex::new(None)),
        };
        Ok(p)
    }

    fn addr(cfg: &Pkcs11Config) -> String {
        format!("{} token {:?}", cfg.module.display(), cfg.token_label)
    }

    fn pin(cfg: &Pkcs11Config) -> Result<AuthPin, ProviderError> {
        let err = |m: String| ProviderError::new(KIND, &Self::addr(cfg), FailureKind::Config, m);
        let text = match (&cfg.pin_env, &cfg.pin_file) {
            (Some(var), _) => Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| err(format!("environment variable {var} is not set")))?,
            ),
            (None, Some(path)) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read pin_file {}: {e}", path.display())))?,
            ),
            (None, None) => return Err(err("no PIN source (pin_env or pin_file)".into())),
        };
        Ok(AuthPin::new(text.trim().to_owned().into()))
    }

    /// Opens a session, logs in and finds (or, with `create`, makes) the key.
    fn open(cfg: &Pkcs11Config, create: bool) -> Result<Hsm, ProviderError> {
        let addr = Self::addr(cfg);
        let e = |kind: FailureKind, m: String| ProviderError::new(KIND, &addr, kind, m);
        let ctx = context(&cfg.module).map_err(|m| e(FailureKind::Unreachable, m))?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|x| e(FailureKind::Unreachable, x.to_string()))?;
        let slot = slots
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|i| i.label() == cfg.token_label)
            })
            .ok_or_else(|| {
                e(
                    FailureKind::Refused,
                    format!("no token labelled {:?}", cfg.token_label),
                )
            })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|x| e(FailureKind::Unreachable, x.to_string()))?;
        let pin = Self::pin(cfg)?;
        session.login(UserType::User, Some(&pin)).map_err(|x| {
            e(
                FailureKind::Denied,
                format!("login to token {:?}: {x}", cfg.token_label),
            )
        })?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(cfg.key_label.as_bytes().to_vec()),
        ];
        let found = session
            .find_objects(&template)
            .map_err(|x| e(FailureKind::Refused, x.to_string()))?;
        let key = match (found.first(), create) {
            (Some(k), _) => *k,
            (None, true) => Self::generate(&session, &cfg.key_label).map_err(|x| {
                e(
                    FailureKind::Refused,
                    format!("creating key {:?}: {x}", cfg.key_label),
                )
            })?,
            (None, false) => {
                return Err(e(
                    FailureKind::Refused,
                    format!(
                        "no AES key labelled {:?} on token {:?} (`pgcloak keys init` creates it)",
                        cfg.key_label, cfg.token_label
                    ),
                ));
            }
        };
        Ok(Hsm { session, key })
    }

    fn generate(session: &Session, label: &str) -> cryptoki::error::Result<ObjectHandle> {
        session.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
        )
    }

    /// Runs `op` with the open session on the blocking pool, under the timeout. A failed
    /// operation drops the session so the next call logs in again.
    async fn with_hsm<T: Send + 'static>(
        &self,
        create: bool,
        op: impl FnOnce(&Hsm, &str) -> Result<T, ProviderError> + Send + 'static,
    ) -> Result<T, ProviderError> {
        let (cfg, hsm) = (self.cfg.clone(), Arc::clone(&self.hsm));
        let addr = Self::addr(&self.cfg);
        let task = tokio::task::spawn_blocking(move || {
            let mut slot = hsm.lock();
            if slot.is_none() {
                *slot = Some(Self::open(&cfg, create)?);
            }
            let result = op(slot.as_ref().expect("opened above"), &Self::addr(&cfg));
            if result
                .as_ref()
                .is_err_and(|e| !matches!(e.kind, FailureKind::Unwrap { .. }))
            {
                *slot = None;
            }
            result
        });
        timed(KIND, addr.clone(), self.cfg.timeout_secs, async move {
            task.await.map_err(|e| {
                ProviderError::new(KIND, &addr, FailureKind::Unreachable, e.to_string())
            })?
        })
        .await
    }
}

impl KeyProvider for Pkcs11Provider {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn address(&self) -> String {
        Self::addr(&self.cfg)
    }

    fn kek(&self) -> KekRef {
        KekRef {
            kind: KIND.name().to_owned(),
            key_id: format!("{}/{}", self.cfg.token_label, self.cfg.key_label),
            key_version: None,
        }
    }

    fn prepare(&self) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            self.with_hsm(true, |_, _| Ok(())).await?;
            self.verify().await
        })
    }

    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey> {
        let aad = DataKey::wrap_aad(&key.name, key.version, key.algorithm);
        let material = Zeroizing::new(key.material().to_vec());
        let (name, version, algorithm) = (key.name.clone(), key.version, key.algorithm.name());
        let by = self.kek();
        Box::pin(async move {
            let wrapped = self
                .with_hsm(false, move |hsm, addr| {
                    let mut iv = [0u8; IV_LEN];
                    crate::crypto::fill_os_random(&mut iv);
                    let mut iv_param = iv;
                    let params = GcmParams::new(&mut iv_param, &aad, 128.into()).map_err(|e| {
                        ProviderError::new(KIND, addr, FailureKind::Refused, e.to_string())
                    })?;
                    let ct = hsm
                        .session
                        .encrypt(&Mechanism::AesGcm(params), hsm.key, &material)
                        .map_err(|e| {
                            ProviderError::new(
                                KIND,
                                addr,
                                FailureKind::Refused,
                                format!("C_Encrypt: {e}"),
                            )
                        })?;
                    let mut out = Vec::with_capacity(1 + IV_LEN + ct.len());
                    out.push(WRAP_VERSION);
                    out.extend_from_slice(&iv);
                    out.extend_from_slice(&ct);
                    Ok(out)
                })
                .await?;
            Ok(WrappedKey {
                name,
                version,
                algorithm: algorithm.to_owned(),
                wrapped,
                by,
            })
        })
    }

    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey> {
        Box::pin(async move {
            if let Some(e) = foreign(KIND, &self.address(), stored) {
                return Err(e);
            }
            let algorithm = super::stored_algorithm(stored).map_err(|e| {
                ProviderError::new(KIND, &self.address(), FailureKind::Refused, e.to_string())
                    .for_key(stored)
            })?;
            let aad = DataKey::wrap_aad(&stored.name, stored.version, algorithm);
            let w = stored.wrapped.clone();
            let owned = stored.clone();
            let material = self
                .with_hsm(false, move |hsm, addr| {
                    let bad = |m: String| {
                        ProviderError::new(KIND, addr, FailureKind::Refused, m).for_key(&owned)
                    };
                    if w.len() < 1 + IV_LEN + 16 || w[0] != WRAP_VERSION {
                        return Err(bad("not a pkcs11 wrap".into()));
                    }
                    let mut iv = [0u8; IV_LEN];
                    iv.copy_from_slice(&w[1..1 + IV_LEN]);
                    let params = GcmParams::new(&mut iv, &aad, 128.into())
                        .map_err(|e| bad(e.to_string()))?;
                    let pt = hsm
                        .session
                        .decrypt(&Mechanism::AesGcm(params), hsm.key, &w[1 + IV_LEN..])
                        .map_err(|e| {
                            bad(format!("C_Decrypt: {e} (wrong key, or an altered row)"))
                        })?;
                    Ok(Zeroizing::new(pt))
                })
                .await?;
            data_key_from(stored, material).map_err(|e| {
                ProviderError::new(KIND, &self.address(), FailureKind::Refused, e.to_string())
                    .for_key(stored)
            })
        })
    }

    fn policy(&self) -> String {
        format!(
            "PKCS#11: a token labelled {:?} whose user PIN is given to pgcloak only ({}); the AES key {:?} \
             on it (CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_ENCRYPT/CKA_DECRYPT; `pgcloak keys init` \
             creates it), and CKM_AES_GCM allowed for it",
            self.cfg.token_label,
            match (&self.cfg.pin_env, &self.cfg.pin_file) {
                (Some(v), _) => format!("env {v}"),
                (None, Some(p)) => format!("file {}", p.display()),
                _ => "no PIN source".to_owned(),
            },
            self.cfg.key_label
        )
    }
}
