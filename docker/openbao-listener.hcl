# The TLS listener of the compose OpenBao (profile `openbao`), with the certificate
# docker/make-secrets.sh issues for "openbao" from the compose CA.
listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/secrets/openbao.crt"
  tls_key_file  = "/secrets/openbao.key"
}
