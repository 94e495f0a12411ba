#!/usr/bin/env bash
# `make demo`: the whole Serval use case on one machine, step by step. Two embedded mesh
# nodes (A and B) with temporary homes find each other over loopback; B offers a web page
# on the mesh; A reaches it through `svp socks` (SOCKS5, HTTP proxy, PAC file) and through
# `svp connect`; `svp discover` finds the service. Loopback only; every wait is bounded;
# every process started here is stopped on exit.
# Usage: scripts/demo.sh [SVP-COMMAND]   (default: node dist/svp.cjs)
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a SVP <<<"${1:-node dist/svp.cjs}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svp-demo.XXXXXX")
A=$tmp/node-a
B=$tmp/node-b
# A private same-host discovery directory: these two nodes find each other and no other.
export SVP_DISCOVERY_DIR=$tmp/discovery SVP_MESH=embedded NO_COLOR=1
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "${SVP[@]}" daemon stop --home "$A" >/dev/null 2>&1 || true
  "${SVP[@]}" daemon stop --home "$B" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[ -t 1 ] || { bold='' dim='' off=''; }
n=0
step() { n=$((n + 1)); printf '\n%s%d. %s%s\n' "$bold" "$n" "$*" "$off"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }
fail() {
  echo "demo: FAIL: $*" >&2
  for f in "$tmp"/*.log; do [ -s "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}
# fetch_page WHAT CURL-ARGS...: fetch B's page with curl (loopback proxy only), print it, check it.
fetch_page() {
  local what=$1 out
  shift
  out=$(curl -sS --noproxy '' --max-time 20 "$@") || fail "$what failed"
  echo "$out"
  [[ $out == *"Hello from node B"* ]] || fail "unexpected page"
}
# Wait (at most 15 s) until FILE has a line matching REGEX; print the first match.
wait_line() {
  local i
  for ((i = 0; i < 150; i++)); do
    grep -m1 -oE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
command -v curl >/dev/null || fail "curl is not installed (make test-deps installs it)"

step "Start two embedded mesh nodes, A and B (temporary homes, loopback only)"
show "svp daemon start --home $A"
"${SVP[@]}" daemon start --home "$A" || fail "node A did not start"
show "svp daemon start --home $B"
"${SVP[@]}" daemon start --home "$B" || fail "node B did not start"
SID_A=$("${SVP[@]}" id --home "$A")
SID_B=$("${SVP[@]}" id --home "$B")
echo "A is $SID_A"
echo "B is $SID_B"
printf 'waiting until A sees B as a peer'
for ((i = 0; i < 100; i++)); do
  "${SVP[@]}" status --home "$A" --json | grep -q "\"sid\": \"$SID_B\"" && break
  printf '.'
  sleep 0.1
done
"${SVP[@]}" status --home "$A" --json | grep -q "\"sid\": \"$SID_B\"" || fail "A does not see B"
echo " ok"

step "On B: a small web server on a local port, offered on the mesh as port 80, service \"http\""
node -e '
const http = require("node:http");
const s = http.createServer((req, res) => {
  res.setHeader("content-type", "text/html; charset=utf-8");
  res.end("<h1>Hello from node B</h1>\n<p>served over the Serval mesh to " + req.headers.host + req.url + "</p>\n");
});
s.listen(0, "127.0.0.1", () => console.error("web server listening on 127.0.0.1:" + s.address().port));
setTimeout(() => process.exit(0), 600000).unref?.();
' 2>"$tmp/web.log" &
pids+=($!)
web=$(wait_line "$tmp/web.log" '127\.0\.0\.1:[0-9]+') || fail "the web server did not start"
show "svp listen --home $B --forward ${web##*:} 80 --service http"
"${SVP[@]}" listen --home "$B" --forward "${web##*:}" 80 --service http 2>"$tmp/listen.log" &
pids+=($!)
wait_line "$tmp/listen.log" 'listening on [0-9A-F]+:80' >/dev/null || fail "svp listen did not start"
sed -n 1p "$tmp/listen.log"

step "On A: the local proxy"
show "svp socks --home $A --listen 127.0.0.1:0"
"${SVP[@]}" socks --home "$A" --listen 127.0.0.1:0 2>"$tmp/socks.log" &
pids+=($!)
proxy=$(wait_line "$tmp/socks.log" '127\.0\.0\.1:[0-9]+') || fail "svp socks did not start"
echo "svp socks listens on $proxy"

step "curl through SOCKS5 with remote name resolution fetches B's page"
show "curl --socks5-hostname $proxy http://$SID_B.serval/"
fetch_page "SOCKS5 fetch" --socks5-hostname "$proxy" "http://$SID_B.serval/"

step "The same page through the HTTP proxy interface"
show "curl -x http://$proxy http://$SID_B.serval/"
fetch_page "HTTP proxy fetch" -x "http://$proxy" "http://$SID_B.serval/"

step "The same page the way a browser configured with the PAC file gets it"
show "curl http://$proxy/proxy.pac"
pac=$(curl -sS --noproxy '' --max-time 10 "http://$proxy/proxy.pac") || fail "no PAC file"
echo "$pac"
route=$(PAC="$pac" node -e '
const dnsDomainIs = (h, d) => h.endsWith(d);
const FindProxyForURL = new Function("dnsDomainIs", process.env.PAC + "; return FindProxyForURL;")(dnsDomainIs);
const host = process.argv[1];
console.log(FindProxyForURL("http://" + host + "/", host));
' "$SID_B.serval")
echo "FindProxyForURL(\"http://$SID_B.serval/\") = $route"
[[ $route == "PROXY "* ]] || fail "the PAC file does not send mesh names to the proxy"
show "curl -x http://${route#PROXY } http://$SID_B.serval/"
fetch_page "PAC route fetch" -x "http://${route#PROXY }" "http://$SID_B.serval/"

step "svp connect: netcat to B's port 80 with a hand-written request"
show "printf 'GET /by-hand HTTP/1.0\\r\\nHost: $SID_B.serval\\r\\n\\r\\n' | svp connect --home $A $SID_B 80"
out=$(printf 'GET /by-hand HTTP/1.0\r\nHost: %s.serval\r\n\r\n' "$SID_B" | "${SVP[@]}" connect --home "$A" "$SID_B" 80) || fail "svp connect failed (exit $?)"
echo "$out"
[[ $out == "HTTP/1."*"Hello from node B"* ]] || fail "unexpected answer"

step "svp discover finds the service"
show "svp discover --home $A"
out=$("${SVP[@]}" discover --home "$A") || fail "svp discover failed"
echo "$out"
[[ $out == *"$SID_B  http"*"80"* ]] || fail "the http service of B was not found"

step "What the proxy and the listener logged"
grep -E 'via mesh|→' "$tmp/socks.log" "$tmp/listen.log" | sed "s|$tmp/||" || true

printf '\n%sdemo: ok%s (stopping everything)\n' "$bold" "$off"
