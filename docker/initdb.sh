#!/bin/bash
# Runs once when the database volume is created (docker-entrypoint-initdb.d): the control role,
# a demo application role and the demo table whose sensitive columns are bytea (ciphertext).
set -euo pipefail
control_password=$(cat /secrets/control-password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
-- The control role is not a superuser: it may create its pgcloak schema (keys init), read and
-- re-write the rules tables (keys reencrypt), and look verifiers up only through the function.
CREATE ROLE pgcloak LOGIN PASSWORD '${control_password}';
CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}';
CREATE DATABASE app OWNER app;
GRANT CREATE ON DATABASE app TO pgcloak;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname app <<'SQL'
CREATE SCHEMA pgcloak_auth;
CREATE FUNCTION pgcloak_auth.verifier(role_name text) RETURNS TABLE (rolpassword text)
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
  $$ SELECT rolpassword FROM pg_authid WHERE rolname = role_name AND rolcanlogin
       AND (rolvaliduntil IS NULL OR rolvaliduntil > now()) $$;
REVOKE ALL ON FUNCTION pgcloak_auth.verifier(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgcloak_auth TO pgcloak;
GRANT EXECUTE ON FUNCTION pgcloak_auth.verifier(text) TO pgcloak;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname app \
  -c "SET ROLE app" -f /docker-entrypoint-initdb.d/demo.sql.in
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname app \
  -c "GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO pgcloak"
