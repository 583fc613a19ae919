#!/bin/sh
# replay-saved.sh PORT SECRET-FILE PAYLOAD... — sends saved payloads (as
# GitHub shows them under "Recent Deliveries", or from tests/fixtures) to
# a listening kwh on 127.0.0.1:PORT, each signed afresh by kwh-sign, and
# prints each answer's status line.  The event is taken from the file name
# when it starts with one (push-*.json, delete-*.json), else push.
set -eu
[ $# -ge 3 ] || { echo "usage: replay-saved.sh PORT SECRET-FILE PAYLOAD..." >&2; exit 100; }
port=$1 secret=$2
shift 2
for f in "$@"; do
	event=$(basename "$f" | sed -n 's/^\([a-z_]*\)-.*/\1/p')
	kwh-sign --secret-file "$secret" --event "${event:-push}" "$f" |
		socat -t 10 - "TCP:127.0.0.1:$port" | head -n 1 | tr -d '\r' |
		sed "s|^|$f: |"
done
