#!/bin/bash
# Runs once when the database volume is created (docker-entrypoint-initdb.d): the control role,
# a demo application role and the demo table whose sensitive columns are bytea (ciphertext).
set -euo pipefail
control_password=$(cat /secrets/control-password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE pgcloak LOGIN SUPERUSER PASSWORD '${control_password}';
CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}';
CREATE DATABASE app OWNER app;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname app \
  -c "SET ROLE app" -f /docker-entrypoint-initdb.d/demo.sql.in
