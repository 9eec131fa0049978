#!/usr/bin/env bash
# Regenerates the test-only certificates in this folder (see README.md).
# Needs openssl. Keys are ECDSA P-256 (cheap handshakes for connection
# benchmarks), certificates valid for 10 years.
#
#   ca.pem               test CA (self-signed; its key is not kept)
#   server.pem/.key      server certificate for 127.0.0.1, ::1 and localhost
#   client.pem/.key      client certificate (mutual TLS), CN ringmq-test-client
#   other-ca.pem         an unrelated CA that signed nothing here (negative tests)
set -euo pipefail
cd "$(dirname "$0")"
DAYS=3650
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 8)"; }

ca() { # ca NAME CN
    key "$tmp/$1.key"
    openssl req -x509 -new -key "$tmp/$1.key" -sha256 -days "$DAYS" -subj "/O=ringmq test/CN=$2" \
        -set_serial "$(serial)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$1.pem"
}

leaf() { # leaf NAME CN EXTENSIONS
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=ringmq test/CN=$2" -out "$tmp/$1.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "subjectKeyIdentifier=hash" \
        "authorityKeyIdentifier=keyid" "$3" > "$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey "$tmp/ca.key" -sha256 -days "$DAYS" \
        -set_serial "$(serial)" -extfile "$tmp/$1.ext" -out "$1.pem"
}

ca ca "ringmq test CA"
leaf server "localhost" "$(printf '%s\n' 'extendedKeyUsage=serverAuth' \
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost')"
leaf client "ringmq-test-client" "extendedKeyUsage=clientAuth"
ca other-ca "ringmq unrelated test CA"
chmod 644 ./*.pem ./*.key

openssl verify -CAfile ca.pem server.pem client.pem
