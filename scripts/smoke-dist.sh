#!/usr/bin/env bash
# Smoke test of the single binary: dist/svp starts, prints its version and help, and
# `dist/svp socks` carries real curl requests (SOCKS5 with remote DNS, and HTTP proxy) to a
# local HTTP server. Loopback only; every wait is bounded; every child is killed on exit.
# Usage: scripts/smoke-dist.sh [BINARY]   (default dist/svp; e.g. "node dist/svp.cjs" also works)
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a SVP <<<"${1:-dist/svp}"

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "smoke-dist: FAIL: $*" >&2
  for f in "$tmp"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

# Wait (at most 10 s) until FILE has a line matching REGEX; print the first match.
wait_line() {
  local file=$1 regex=$2 i
  for ((i = 0; i < 100; i++)); do
    if grep -m1 -E "$regex" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

command -v curl >/dev/null || fail "curl is not installed (make test-deps installs it)"
[ -x "${SVP[0]}" ] || command -v "${SVP[0]}" >/dev/null || fail "${SVP[0]} not found (run make dist)"

# 1. It starts and knows who it is.
version=$("${SVP[@]}" --version) || fail "--version exited with $?"
[[ $version =~ ^svp[/\ ][0-9] ]] || fail "--version printed '$version'"
help=$("${SVP[@]}" --help) || fail "--help exited with $?"
[[ $help == *Usage:* ]] || fail "--help printed no usage"
echo "smoke-dist: ${SVP[*]} --version: $version"

# 2. A local HTTP target on an ephemeral loopback port.
node -e '
const http = require("node:http");
const s = http.createServer((req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end("svp smoke " + req.method + " " + req.url + "\n");
});
s.listen(0, "127.0.0.1", () => console.error("target listening on 127.0.0.1:" + s.address().port));
setTimeout(() => process.exit(0), 60000).unref?.();
' 2>"$tmp/target.err" &
pids+=($!)
target=$(wait_line "$tmp/target.err" 'listening on') || fail "HTTP target did not start"
target_port=${target##*:}

# 3. The proxy, on a port it picks; it prints the bound address on stderr.
"${SVP[@]}" socks --listen 127.0.0.1:0 2>"$tmp/svp.err" &
pids+=($!)
line=$(wait_line "$tmp/svp.err" 'listening on [0-9.]+:[0-9]+') || fail "svp socks printed no 'listening on' line"
proxy=$(sed -nE 's/.*listening on ([0-9.]+:[0-9]+).*/\1/p' <<<"$line")
echo "smoke-dist: svp socks listening on $proxy, target on 127.0.0.1:$target_port"

expect="svp smoke GET /hello"
curl_opts=(--silent --show-error --fail --max-time 10 --noproxy '')
body=$(curl "${curl_opts[@]}" --socks5-hostname "$proxy" "http://localhost:$target_port/hello") || fail "curl --socks5-hostname failed"
[[ $body == "$expect" ]] || fail "SOCKS5: expected '$expect', got '$body'"
body=$(curl "${curl_opts[@]}" -x "http://$proxy" "http://127.0.0.1:$target_port/hello") || fail "curl -x http:// failed"
[[ $body == "$expect" ]] || fail "HTTP proxy: expected '$expect', got '$body'"
body=$(curl "${curl_opts[@]}" -p -x "http://$proxy" "http://127.0.0.1:$target_port/hello") || fail "curl -p -x http:// (CONNECT) failed"
[[ $body == "$expect" ]] || fail "HTTP CONNECT: expected '$expect', got '$body'"

# 4. SIGTERM stops it cleanly (exit 0).
kill -TERM "${pids[1]}"
rc=0
for ((i = 0; i < 100; i++)); do kill -0 "${pids[1]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${pids[1]}" 2>/dev/null && fail "svp socks still running 10 s after SIGTERM"
wait "${pids[1]}" || rc=$?
[ "$rc" -eq 0 ] || fail "svp socks exited with $rc after SIGTERM"

echo "smoke-dist: ok (version, help, SOCKS5, HTTP proxy, CONNECT, SIGTERM)"
