-- The demo table: the sensitive columns are bytea (pgcloak stores ciphertext there; the rules
-- are schema-rules/demo.toml). Used by docker/initdb.sh and embedded by `pgcloak demo`.
CREATE TABLE public.customers (
  id           bigserial PRIMARY KEY,
  name         bytea,
  email        bytea UNIQUE,
  ssn          bytea,
  birth_date   bytea,
  credit_limit bytea,
  created_at   timestamptz NOT NULL DEFAULT now()
);
