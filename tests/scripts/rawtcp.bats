#!/usr/bin/env bats
# The failure drill's raw TCP proof (scripts/lib/rawtcp.sh), against real listeners on loopback:
# each tool reads the status line of a server that answers, and none of them takes a server that
# accepts the connection and closes it without a word (what Docker's port proxy does when nothing
# listens behind it) for an answer: curl's "000" is no answer.

load ../e2e/helpers

setup() {
  # shellcheck source=scripts/lib/common.sh
  source "$REPO/scripts/lib/common.sh"
  # shellcheck source=scripts/lib/rawtcp.sh
  source "$REPO/scripts/lib/rawtcp.sh"
}

teardown() { kill "$SERVER" 2>/dev/null || true; }

# Serves connections on a free port, each answered with REPLY ("" closes it without a word).
serve() {
  python3 - "$1" >"$BATS_TEST_TMPDIR/port" <<'PY' &
import socket, sys
reply = sys.argv[1].encode()
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    if reply:
        conn.recv(4096)
        conn.sendall(reply)
    conn.close()
PY
  SERVER=$!
  eventually 5 "[ -s '$BATS_TEST_TMPDIR/port' ]"
  PORT=$(<"$BATS_TEST_TMPDIR/port")
}

@test "every tool reads the status line of a server that answers" {
  serve $'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'
  for TOOL in nc devtcp curl; do
    tool_usable "$TOOL"
    [ "$(http_code /ready)" = 503 ] || { echo "$TOOL"; return 1; }
  done
}

@test "no tool takes a connection closed without a word for an answer (curl's 000 included)" {
  serve ""
  for TOOL in nc devtcp curl; do
    [ -z "$(status_line /health)" ] || { echo "$TOOL: $(status_line /health)"; return 1; }
    [ "$(http_code /health)" = none ] || { echo "$TOOL"; return 1; }
  done
}
