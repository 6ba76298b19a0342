//! AWS KMS (moto) and PKCS#11 (SoftHSM2) end to end: `keys init` (the HSM key created),
//! `serve`, `keys rotate`, a wrap moved to another row (refused by the encryption context), a
//! key id that does not exist, KMS down at start, a missing HSM key label, a wrong PIN.

use crate::keys_providers::{
    RULES, Setup, TABLE, aws_keys, expected, fails, insert, ok, pkcs11_keys, read_all,
};
use crate::keys_servers::{Moto, SoftHsm};

#[tokio::test(flavor = "multi_thread")]
async fn aws_kms_init_rotate_serve_and_failures() {
    let mut moto = Moto::start().await;
    let s = Setup::start(RULES, TABLE).await;
    let cfg = s.config("aws.toml", &aws_keys(&moto, &moto.key_arn));
    let c = cfg.to_str().unwrap();
    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.patients.ssn v1",
    );
    assert!(
        s.wrapped_by()
            .await
            .iter()
            .all(|(k, id, _)| k == "aws-kms" && *id == moto.key_arn)
    );
    {
        let (_guard, _log) = s.serve(&cfg).await;
        insert(&s, 1).await;
        ok(
            &s.run(&["keys", "rotate", "-c", c, "--no-reencrypt"]).await,
            "new writes use v2",
        );
        insert(&s, 2).await;
        assert_eq!(read_all(&s).await, expected(&[1, 2]));
    }
    // The encryption context binds the data key's identity: a wrap moved to another row
    // does not decrypt.
    let su = s.db.superuser_client(s.db.database()).await.unwrap();
    let saved = "create table saved as select * from pgcloak.data_keys";
    su.batch_execute(saved).await.unwrap();
    su.batch_execute(
        "update pgcloak.data_keys set wrapped_key = (select wrapped_key from pgcloak.data_keys where key_name = 'public.patients.dx' and version = 1) \
         where key_name = 'public.patients.ssn' and version = 1",
    )
    .await
    .unwrap();
    let out = s.run(&["check", "-c", c]).await;
    fails(
        &out,
        &[
            "key-unwrap",
            "data key public.patients.ssn v1",
            "InvalidCiphertextException",
        ],
    );
    su.batch_execute(
        "delete from pgcloak.data_keys; insert into pgcloak.data_keys select * from saved",
    )
    .await
    .unwrap();
    ok(&s.run(&["check", "-c", c]).await, "keys are consistent");

    // A key id that does not exist.
    let wrong = s.config("wrong.toml", &aws_keys(&moto, "alias/does-not-exist"));
    fails(
        &s.run(&["check", "-c", wrong.to_str().unwrap()]).await,
        &["key provider aws-kms", "NotFoundException"],
    );
    moto.stop().await;
    let text = s.serve_fails(&cfg).await;
    assert!(
        text.contains(&format!("key provider aws-kms at {}", moto.endpoint)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pkcs11_init_creates_the_key_serve_rotate_and_wrong_pin() {
    let hsm = SoftHsm::start().await;
    let mut s = Setup::start(RULES, TABLE).await;
    s.env.extend(hsm.env());
    s.env.push(("WRONG_PIN".into(), "000000x".into()));
    let cfg = s.config("hsm.toml", &pkcs11_keys(&hsm, "PGCLOAK_HSM_PIN"));
    let c = cfg.to_str().unwrap();
    ok(
        &s.run(&["keys", "init", "-c", c]).await,
        "created data key public.patients.ssn v1",
    );
    ok(&s.run(&["keys", "init", "-c", c]).await, "nothing to do");
    assert!(
        s.wrapped_by()
            .await
            .iter()
            .all(|(k, id, _)| k == "pkcs11" && id == "pgcloak/pgcloak-kek")
    );
    {
        let (_guard, _log) = s.serve(&cfg).await;
        insert(&s, 1).await;
        ok(
            &s.run(&["keys", "rotate", "-c", c, "--no-reencrypt"]).await,
            "new writes use v2",
        );
        insert(&s, 2).await;
        assert_eq!(read_all(&s).await, expected(&[1, 2]));
    }
    // A key label the token does not have: a clear error naming it.
    let absent = pkcs11_keys(&hsm, "PGCLOAK_HSM_PIN").replace("\"pgcloak-kek\"", "\"absent-kek\"");
    let absent = s.config("absent.toml", &absent);
    let out = s.run(&["check", "-c", absent.to_str().unwrap()]).await;
    fails(
        &out,
        &[
            "no AES key labelled \"absent-kek\" on token \"pgcloak\"",
            "keys init",
        ],
    );
    let wrong = s.config("wrong-pin.toml", &pkcs11_keys(&hsm, "WRONG_PIN"));
    let out = s.run(&["check", "-c", wrong.to_str().unwrap()]).await;
    fails(
        &out,
        &[
            "key provider pkcs11",
            "denied",
            "PIN is incorrect",
            "the least-privilege policy",
        ],
    );
    let text = s.serve_fails(&wrong).await;
    assert!(text.contains("key provider pkcs11 at /usr/lib/softhsm/libsofthsm2.so token \"pgcloak\" denied the request: login"), "{text}");
    assert!(text.contains("PIN is incorrect"), "{text}");
}
