#!/usr/bin/env bash
# A self-signed TLS pair for running the compose stack locally: deploy/certs/tls.crt and tls.key.
# For a real host, put its certificate and key in that folder under the same names instead.
# Usage: deploy/make-certs.sh [OUT_DIR] [HOSTNAME]
set -euo pipefail

out="${1:-$(dirname "$0")/certs}"
name="${2:-localhost}"
san="DNS:localhost,IP:127.0.0.1"
[ "$name" = localhost ] || san="DNS:$name,$san"
mkdir -p "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 365 -subj "/CN=$name" \
    -addext "subjectAltName=$san" \
    -keyout "$out/tls.key" -out "$out/tls.crt" 2>/dev/null
chmod 644 "$out/tls.crt"
echo "wrote $out/tls.crt and $out/tls.key (self-signed for $name, 365 days)"
