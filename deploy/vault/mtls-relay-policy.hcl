# Least privilege for the relay (api and workers): its own folder of one KV v2 mount, nothing else.
# deploy/vault/init.sh writes this policy with the mount and folder of VAULT_KV_MOUNT / VAULT_PATH_PREFIX in place of
# "secret" and "mtls-relay".

# Documents (certificates, mappings, hostname settings): read, create and update versions (check-and-set writes).
path "secret/data/mtls-relay/*" {
  capabilities = ["create", "read", "update"]
}

# Listing a folder, and deleting a document with all its versions (a removed certificate leaves no old version).
path "secret/metadata/mtls-relay/*" {
  capabilities = ["list", "delete"]
}

# The relay renews its own token (AppRole logins are re-done when renewal fails).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
