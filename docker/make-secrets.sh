#!/bin/sh
# One-shot init for docker-compose.yml: a CA, a certificate for the database ("db") and one for
# the proxy ("localhost", "pgcloak"), the control role's password and the master key. Runs once;
# later starts keep what is there. Runs in the postgres image, which ships openssl.
set -eu
cd /secrets
if [ -f master.key ]; then echo "secrets: already made"; exit 0; fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=pgcloak compose CA" -keyout ca.key -out ca.crt
leaf() { # name, SAN list
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}
leaf db "DNS:db"
leaf proxy "DNS:localhost,DNS:pgcloak,IP:127.0.0.1"
leaf openbao "DNS:openbao"              # the optional OpenBao of the `openbao` profile
openssl rand -base64 32 > master.key
openssl rand -hex 24 > control-password
# The database reads db.key as the postgres user (uid 999); pgcloak runs as uid 10001.
chown 999:999 db.key db.crt && chmod 600 db.key
chown 10001:10001 proxy.key master.key && chmod 600 proxy.key master.key
chmod 644 openbao.key openbao.crt   # demo only: read by the OpenBao image's own user
chmod 644 ca.crt proxy.crt control-password
rm -f ca.key ca.srl
echo "secrets: made"
