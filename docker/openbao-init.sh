#!/bin/sh
# One-shot for the compose profile `openbao`: enables Transit, creates the derived key
# `pgcloak` (the data key's identity is its derivation context), writes pgcloak's
# least-privilege policy and a renewable token for it into the `baotoken` volume.
set -eu
bao secrets list | grep -q '^transit/' || bao secrets enable transit
bao read transit/keys/pgcloak >/dev/null 2>&1 || bao write -f transit/keys/pgcloak derived=true
bao policy write pgcloak - <<'POLICY'
path "transit/encrypt/pgcloak" { capabilities = ["update"] }
path "transit/decrypt/pgcloak" { capabilities = ["update"] }
path "transit/rewrap/pgcloak"  { capabilities = ["update"] }
path "auth/token/lookup-self"  { capabilities = ["read"] }
path "auth/token/renew-self"   { capabilities = ["update"] }
POLICY
umask 077
bao token create -policy=pgcloak -period=24h -field=token > /bao/pgcloak.token
chown 10001:10001 /bao/pgcloak.token
echo "openbao: transit key pgcloak and pgcloak's token ready"
