//! ORM forms lifted this stop, as probes with sentinels and the leak oracle: Django's
//! `bulk_create` (`INSERT … SELECT * FROM UNNEST((%s)::varchar(n)[], …)`), its `bulk_update`
//! (`SET col = (CASE WHEN … THEN %s … ELSE NULL END)::varchar(n)`), and parameters under a cast
//! with a type modifier (applied as PostgreSQL applies it, checked against a plaintext twin).
//! Each must store ciphertext (not merely be refused), on every driver it runs on.

use crate::adversarial::{Expect, Probe, count, enc, probe, run_suite, t, twin};

const ORM: &str = "orm";

fn lifted() -> Vec<Probe> {
    vec![
        probe(ORM, "Django bulk_create: UNNEST of cast array parameters")
            .attack_p(
                "INSERT INTO {t} (id, s, i, note) SELECT * FROM UNNEST(($1)::integer[], \
                 ($2)::varchar(254)[], ($3)::integer[], ($4)::varchar(40)[])",
                vec![
                    t("{1,2,3}"),
                    t("{{S1},NULL,{S2}}"),
                    t("{7,8,NULL}"),
                    t("{a,b,c}"),
                ],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{S1}")),
                enc("s", 2, None),
                enc("s", 3, Some("{S2}")),
                enc("i", 2, Some("8")),
                enc("i", 3, None),
                count("public.{t}", 3),
            ])),
        probe(
            ORM,
            "bulk_create: the array cast's type modifier cuts each element",
        )
        .attack_p(
            "INSERT INTO {t} (id, v) SELECT * FROM UNNEST($1::int[], $2::varchar(3)[])",
            vec![t("{1,2}"), t("{abcdef,xy}")],
        )
        .expect(Expect::Encrypted(vec![
            twin("v", 1),
            enc("v", 2, Some("xy")),
        ])),
        probe(ORM, "UNNEST with column aliases and ORDINALITY")
            .attack_p(
                "INSERT INTO {t} (s, id) SELECT u.x, u.ordinality FROM unnest($1::text[]) \
                 WITH ORDINALITY AS u(x)",
                vec![t("{{S1},{S2}}")],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{S1}")),
                enc("s", 2, Some("{S2}")),
            ])),
        probe(ORM, "UNNEST of ARRAY[...] constants")
            .attack(
                "INSERT INTO {t} (id, r) SELECT * FROM unnest(ARRAY[1, 2], ARRAY['{S1}', NULL])",
            )
            .expect(Expect::Encrypted(vec![
                enc("r", 1, Some("{S1}")),
                enc("r", 2, None),
            ])),
        probe(ORM, "Django bulk_update: CASE of values under a cast")
            .setup("INSERT INTO {t} (id) VALUES (1), (2), (3)")
            .attack_p(
                "UPDATE {t} SET s = (CASE WHEN ({t}.id = $1) THEN $2 WHEN ({t}.id = $3) THEN $4 \
                 ELSE NULL END)::varchar(254) WHERE {t}.id IN ($5, $6)",
                vec![t("1"), t("{S1}"), t("2"), t("{S2}"), t("1"), t("2")],
            )
            .expect(Expect::Encrypted(vec![
                enc("s", 1, Some("{S1}")),
                enc("s", 2, Some("{S2}")),
                enc("s", 3, None),
            ])),
        probe(
            ORM,
            "bulk_update's cast type modifier applies to every branch",
        )
        .setup("INSERT INTO {t} (id) VALUES (1), (2) ON CONFLICT DO NOTHING")
        .attack_p(
            "UPDATE {t} SET v = (CASE WHEN id = 1 THEN $1 ELSE $2 END)::varchar(2)",
            vec![t("abc"), t("xyz")],
        )
        .expect(Expect::Encrypted(vec![
            twin("v", 1),
            enc("v", 2, Some("xy")),
        ])),
        probe(
            ORM,
            "a parameter cast to varchar(n) is cut as PostgreSQL cuts it",
        )
        .attack_p(
            "INSERT INTO {t} (id, v) VALUES (1, $1::varchar(4))",
            vec![t("abcdefg")],
        )
        .expect(Expect::Encrypted(vec![twin("v", 1)])),
    ]
}

fn refused() -> Vec<Probe> {
    vec![
        probe(
            ORM,
            "an unnested array compared with a deterministic column",
        )
        .setup_p("INSERT INTO {t} (id, s) VALUES (1, $1)", vec![t("{S1}")])
        .attack_p(
            "DELETE FROM {t} USING unnest($1::text[]) AS u(x) WHERE {t}.s = u.x",
            vec![t("{{S1}}")],
        )
        .expect(Expect::Refused),
        probe(ORM, "an array cast on a single value")
            .attack_p(
                "INSERT INTO {t} (id, s) VALUES (1, $1::text[])",
                vec![t("{{S1}}")],
            )
            .expect(Expect::Refused),
        probe(
            ORM,
            "a parameter cast PostgreSQL would convert (int4 into text)",
        )
        .attack_p(
            "INSERT INTO {t} (id, s) VALUES (1, $1::int4)",
            vec![t("0042")],
        )
        .expect(Expect::Refused),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_orm_forms_store_ciphertext() {
    let mut p = lifted();
    p.extend(refused());
    run_suite(p).await.assert_all_passed("ORM forms lifted");
}
