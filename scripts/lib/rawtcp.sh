# shellcheck shell=bash
# Raw TCP proof for the failure drill: the proof must carry bytes back from the api process.
# A published port accepts connections through Docker's proxy even when nothing listens behind
# it, so every probe sends an HTTP request and reads the status line the api answers with.
#   source scripts/lib/rawtcp.sh; PORT=<port>; pick_tool nc devtcp curl; http_code /x
# Tested without nodes in tests/scripts/rawtcp.bats (a real listener that answers, and one that
# accepts and closes without a word).

# Usable means it runs here and reaches the port (a name on the PATH is not enough).
tool_usable() {
  case $1 in
    nc) nc -z -w 3 127.0.0.1 "$PORT" >/dev/null 2>&1 ;;
    devtcp) (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null ;;
    curl) curl --version >/dev/null 2>&1 ;;
    *) die "unknown tool '$1' in DRILL_TCP_TOOLS (use nc, devtcp, curl)" ;;
  esac
}

# Sets TOOL to the first usable of the tools given.
pick_tool() {
  local tool
  for tool in "$@"; do
    if tool_usable "$tool"; then
      TOOL=$tool
      return 0
    fi
  done
  die "none of the TCP tools ($*) is usable on this host"
}

# Prints the HTTP status line the api sends for PATH, over one raw connection.
status_line() {
  local path=$1 request
  # printf -v keeps the final CRLF that ends the headers ($(...) would strip it).
  printf -v request 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path"
  case $TOOL in
    # No -N: a half-closed connection makes Docker's port proxies drop the answer.
    nc) printf '%s' "$request" | nc -w 3 127.0.0.1 "$PORT" 2>/dev/null | head -n 1 | tr -d '\r' ;;
    devtcp)
      local line=''
      {
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf '%s' "$request" >&3 &&
          IFS= read -r -t 3 line <&3
        exec 3>&-
      } 2>/dev/null || true
      printf '%s\n' "${line%$'\r'}"
      ;;
    curl)
      # curl writes "000" when nothing answered: that is no status line.
      local written
      written="$(curl -s -o /dev/null --max-time 3 -w 'HTTP/%{http_version} %{http_code}' \
        "http://127.0.0.1:$PORT$path" 2>/dev/null || true)"
      [[ $written == *" 000" ]] || printf '%s\n' "$written"
      ;;
  esac
}

http_code() {
  local line
  line="$(status_line "$1")"
  [[ $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && printf '%s\n' "${BASH_REMATCH[1]}" || printf 'none\n'
}

