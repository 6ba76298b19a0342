//! The `aws-kms` provider: AWS KMS `Encrypt` / `Decrypt` through the official SDK
//! (`aws-sdk-kms`), over a rustls client with the ring provider (no second TLS backend). The
//! data key's identity (name, version, algorithm) is the encryption context, so KMS refuses a
//! wrap copied to another row, and an IAM condition on `kms:EncryptionContext:pgcloak:key`
//! can limit what the proxy may unwrap. `Decrypt` names the key id too, so a ciphertext of
//! another key is refused. Credentials come from the standard AWS chain (env, profile, web
//! identity, ECS, IMDS); `endpoint` overrides the regional endpoint (VPC endpoints, tests).

use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use zeroize::Zeroizing;

use super::{
    FailureKind, KeyProvider, ProviderError, ProviderFuture, data_key_from, foreign, timed,
};
use crate::config::keys::{AwsKmsConfig, ProviderKind};
use crate::crypto::{DataKey, KekRef, WrappedKey};

const KIND: ProviderKind = ProviderKind::AwsKms;

/// Wraps with a KMS key.
pub struct AwsKmsProvider {
    cfg: AwsKmsConfig,
    client: tokio::sync::OnceCell<Client>,
}

impl AwsKmsProvider {
    /// Loads the SDK config (credentials, region) on first use.
    pub fn new(cfg: &AwsKmsConfig) -> Self {
        AwsKmsProvider {
            cfg: cfg.clone(),
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                use aws_smithy_http_client::tls;
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let timeout = std::time::Duration::from_secs(self.cfg.timeout_secs.max(1));
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout)
                    .build();
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(http)
                    .timeout_config(timeouts);
                if let Some(r) = &self.cfg.region {
                    loader = loader.region(aws_config::Region::new(r.clone()));
                }
                if let Some(e) = &self.cfg.endpoint {
                    loader = loader.endpoint_url(e);
                }
                Client::new(&loader.load().await)
            })
            .await
    }

    fn error<E, R>(&self, e: &SdkError<E, R>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let kind = match e {
            SdkError::TimeoutError(_) => FailureKind::Timeout,
            SdkError::DispatchFailure(_) => FailureKind::Unreachable,
            SdkError::ServiceError(s) => match s.err().code() {
                Some(
                    "AccessDeniedException"
                    | "AccessDenied"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException",
                ) => FailureKind::Denied,
                _ => FailureKind::Refused,
            },
            _ => FailureKind::Refused,
        };
        let cause = match e {
            SdkError::ServiceError(s) => format!(
                "{}: {}",
                s.err().code().unwrap_or("error"),
                s.err().message().unwrap_or("")
            ),
            other => DisplayErrorContext(other).to_string(),
        };
        ProviderError::new(KIND, &self.address(), kind, cause)
    }
}

fn context(name: &str, version: u32, algorithm: &str) -> Vec<(String, String)> {
    vec![
        ("pgcloak:key".to_owned(), name.to_owned()),
        ("pgcloak:version".to_owned(), version.to_string()),
        ("pgcloak:algorithm".to_owned(), algorithm.to_owned()),
    ]
}

impl KeyProvider for AwsKmsProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn address(&self) -> String {
        let region = self.cfg.region.as_deref().unwrap_or("default region");
        match &self.cfg.endpoint {
            Some(e) => format!("{e} ({region})"),
            None => region.to_owned(),
        }
    }

    fn kek(&self) -> KekRef {
        KekRef {
            kind: KIND.name().to_owned(),
            key_id: self.cfg.key_id.clone(),
            key_version: None,
        }
    }

    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey> {
        Box::pin(timed(
            KIND,
            self.address(),
            self.cfg.timeout_secs * 2,
            async move {
                let mut req = self
                    .client()
                    .await
                    .encrypt()
                    .key_id(&self.cfg.key_id)
                    .plaintext(Blob::new(key.material().to_vec()));
                for (k, v) in context(&key.name, key.version, key.algorithm.name()) {
                    req = req.encryption_context(k, v);
                }
                let out = req.send().await.map_err(|e| self.error(&e))?;
                let blob = out.ciphertext_blob.ok_or_else(|| {
                    ProviderError::new(
                        KIND,
                        &self.address(),
                        FailureKind::Refused,
                        "no CiphertextBlob",
                    )
                })?;
                Ok(WrappedKey {
                    name: key.name.clone(),
                    version: key.version,
                    algorithm: key.algorithm.name().to_owned(),
                    wrapped: blob.into_inner(),
                    by: KekRef {
                        kind: KIND.name().to_owned(),
                        key_id: out.key_id.unwrap_or_else(|| self.cfg.key_id.clone()),
                        key_version: None,
                    },
                })
            },
        ))
    }

    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey> {
        Box::pin(timed(
            KIND,
            self.address(),
            self.cfg.timeout_secs * 2,
            async move {
                if let Some(e) = foreign(KIND, &self.address(), stored) {
                    return Err(e);
                }
                let mut req = self
                    .client()
                    .await
                    .decrypt()
                    .key_id(&self.cfg.key_id)
                    .ciphertext_blob(Blob::new(stored.wrapped.clone()));
                for (k, v) in context(&stored.name, stored.version, &stored.algorithm) {
                    req = req.encryption_context(k, v);
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| self.error(&e).for_key(stored))?;
                let material =
                    Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
                data_key_from(stored, material).map_err(|e| {
                    ProviderError::new(KIND, &self.address(), FailureKind::Refused, e.to_string())
                        .for_key(stored)
                })
            },
        ))
    }

    fn policy(&self) -> String {
        format!(
            "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{{\n    \"Effect\": \"Allow\",\n    \
             \"Action\": [\"kms:Encrypt\", \"kms:Decrypt\"],\n    \"Resource\": \"<the ARN of {}>\",\n    \
             \"Condition\": {{ \"StringLike\": {{ \"kms:EncryptionContext:pgcloak:key\": \"*\" }} }}\n  }}]\n}}",
            self.cfg.key_id
        )
    }
}
