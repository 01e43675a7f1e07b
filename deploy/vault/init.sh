#!/bin/sh
# One-time Vault setup for mtls-relay (docker-compose.yml's vault-init service; also usable by hand with the `vault` CLI
# or OpenBao's `bao`, which speak the same API):
# KV v2 at VAULT_KV_MOUNT, the AppRole auth method, the relay's least-privilege policy (mtls-relay-policy.hcl beside
# this file), and an AppRole whose role_id / secret_id are the relay's VAULT_ROLE_ID / VAULT_SECRET_ID.
#
# Idempotent: when the relay's AppRole already logs in, it stops there and needs no admin token. Otherwise it needs
# VAULT_TOKEN with the rights to mount engines and write policies (the dev root token, or an operator's token).
#
# VAULT_CLI names the CLI (default: `vault` when it is on PATH, else `bao`). Both read VAULT_ADDR and VAULT_TOKEN.
set -eu

if [ -z "${VAULT_CLI:-}" ]; then
  if command -v vault >/dev/null 2>&1; then VAULT_CLI=vault; else VAULT_CLI=bao; fi
fi
command -v "$VAULT_CLI" >/dev/null 2>&1 || { echo "vault-init: no \`$VAULT_CLI\` CLI found (set VAULT_CLI to vault or bao)" >&2; exit 1; }
vault() { "$VAULT_CLI" "$@"; }

: "${VAULT_ADDR:?VAULT_ADDR is required}"
: "${RELAY_ROLE_ID:?RELAY_ROLE_ID (the relay's VAULT_ROLE_ID) is required}"
: "${RELAY_SECRET_ID:?RELAY_SECRET_ID (the relay's VAULT_SECRET_ID) is required}"
MOUNT="${VAULT_KV_MOUNT:-secret}"
FOLDER="${VAULT_PATH_PREFIX:-mtls-relay}"
ROLE="${VAULT_ROLE_NAME:-mtls-relay}"
POLICY="${VAULT_POLICY_NAME:-mtls-relay}"
POLICY_FILE="${POLICY_FILE:-$(dirname "$0")/mtls-relay-policy.hcl}"

echo "vault-init: waiting for Vault at $VAULT_ADDR to be unsealed"
tries=0
until vault status >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -le 120 ] || { echo "vault-init: Vault is not reachable or still sealed" >&2; exit 1; }
  sleep 1
done

# Logs in as the relay and revokes the token at once (a check leaves no live token behind).
relay_login() {
  token=$(VAULT_TOKEN= vault write -field=token auth/approle/login role_id="$RELAY_ROLE_ID" secret_id="$RELAY_SECRET_ID") || return 1
  VAULT_TOKEN="$token" vault token revoke -self >/dev/null
}

if relay_login >/dev/null 2>&1; then
  echo "vault-init: the relay's AppRole already logs in; nothing to do"
  exit 0
fi
: "${VAULT_TOKEN:?VAULT_TOKEN (an admin token) is required for the first setup}"

if ! vault secrets list -format=json | grep -q "\"$MOUNT/\""; then
  vault secrets enable -path="$MOUNT" -version=2 kv
fi
# A KV v1 mount is upgraded in place; on v2 this is a no-op.
vault kv enable-versioning "$MOUNT" >/dev/null

if ! vault auth list -format=json | grep -q '"approle/"'; then
  vault auth enable approle
fi

sed -e "s#\"secret/#\"$MOUNT/#g" -e "s#/mtls-relay/#/$FOLDER/#g" "$POLICY_FILE" | vault policy write "$POLICY" -

# Short-lived tokens: the relay renews them and logs in again when renewal stops.
vault write "auth/approle/role/$ROLE" \
  token_policies="$POLICY" token_ttl="${VAULT_TOKEN_TTL:-1h}" token_max_ttl="${VAULT_TOKEN_MAX_TTL:-24h}" token_type=service \
  secret_id_ttl=0 secret_id_num_uses=0
vault write "auth/approle/role/$ROLE/role-id" role_id="$RELAY_ROLE_ID"
if ! out=$(vault write "auth/approle/role/$ROLE/custom-secret-id" secret_id="$RELAY_SECRET_ID" 2>&1); then
  case "$out" in
    *already*) echo "vault-init: the secret id is already registered" ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi

relay_login
echo "vault-init: KV v2 at $MOUNT/, policy $POLICY ($MOUNT/data/$FOLDER/*), AppRole $ROLE ready"
