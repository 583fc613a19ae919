#!/bin/sh
# mkcerts.sh DIR — test PKI for tests/k8s-apiserver, made with the openssl CLI.
#
# Writes into DIR (created if missing):
#   ca.crt ca.key            the CA that signs the server and client certificates
#   server.crt server.key    server certificate, SANs IP:127.0.0.1 and DNS:localhost
#   client.crt client.key    client certificate, CN=kwh-client, O=kwh
#   other-ca.crt other-ca.key  an unrelated CA, for "wrong CA" tests
#   other-client.crt other-client.key  a client certificate signed by other-ca
# EC P-256 keys (fast). Idempotent: files that already exist are kept.
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=3650

key() { [ -s "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # ca NAME CN
	[ -s "$1.crt" ] && return 0
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days "$days" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$1.crt.tmp" 2>/dev/null
	mv "$1.crt.tmp" "$1.crt"
}

leaf() { # leaf NAME CA SUBJECT EXTFILE-CONTENT
	[ -s "$1.crt" ] && return 0
	key "$1.key"
	openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
	printf '%s\n' "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
		-days "$days" -extfile "$1.ext" -out "$1.crt.tmp" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
	mv "$1.crt.tmp" "$1.crt"
}

ca ca "kwh test CA"
ca other-ca "unrelated test CA"
leaf server ca "/CN=kwh-test-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
leaf client ca "/O=kwh/CN=kwh-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
leaf other-client other-ca "/O=kwh/CN=kwh-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
