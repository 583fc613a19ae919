# Helpers for the kwh tools' tests (sourced by test_helper.bash).

# secret_file NAME VALUE: writes VALUE (and a newline) to $TMP/NAME.
secret_file() {
	printf '%s\n' "$2" > "$TMP/$1"
	chmod 600 "$TMP/$1"
}

# http_status FILE: the status code of the HTTP response in FILE.
http_status() {
	head -n 1 "$1" | awk '{ print $2 }'
}

# http_body FILE: the body of the HTTP response in FILE.
http_body() {
	sed '1,/^\r$/d' "$1"
}

# respond_to ENVELOPE_FILE OUT: runs kwh-respond, response to OUT.
respond_to() {
	kwh-respond < "$1" > "$2" 2>/dev/null || true
}

# verify_and_respond REQUEST_FILE [verify options...]: runs
# kwh-verify < REQUEST | kwh-respond into $TMP/env, $TMP/resp, $TMP/log
# and sets STATUS (HTTP status) and MESSAGE (the body's message).
verify_and_respond() {
	local req=$1; shift
	kwh-verify "$@" < "$req" > "$TMP/env" 2> "$TMP/log" && VERIFY_RC=0 || VERIFY_RC=$?
	kwh-respond < "$TMP/env" > "$TMP/resp" 2>> "$TMP/log" || true
	STATUS=$(http_status "$TMP/resp")
	MESSAGE=$(http_body "$TMP/resp" | jq -r .message)
}

# sig_of FILE SECRETFILE: the sha256=… signature kwh-sign computes.
sig_of() {
	kwh-sign --secret-file "$2" "$1" | tr -d '\r' | sed -n 's/^X-Hub-Signature-256: //p'
}
