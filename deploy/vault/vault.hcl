# Production Vault for docker-compose.yml's `vault-server` profile (see README, "Vault in production").
# Persistent integrated storage on the `vault-data` volume, TLS on the listener, memory locking on.
# Put tls.crt (naming `vault` and `127.0.0.1`), tls.key and ca.crt in deploy/vault/tls/ before the first start.

ui            = false
disable_mlock = false

storage "raft" {
  path    = "/vault/data"
  node_id = "vault-1"
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/vault/tls/tls.crt"
  tls_key_file  = "/vault/tls/tls.key"
  tls_min_version = "tls12"
}

api_addr     = "https://vault:8200"
cluster_addr = "https://vault:8201"
