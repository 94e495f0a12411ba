#!/usr/bin/env bash
# The import-layer rules of DESIGN.md section 2, as greps. Prints each violation; exit 1 if any.
set -u
cd "$(dirname "$0")/.."
fail=0
report() { echo "layer violation: $1"; echo "$2" | sed 's/^/  /'; fail=1; }

out=$(grep -rnE "from ['\"]node:|\bBuffer\.[A-Za-z]|\bprocess\.[A-Za-z]|\bDeno\.[A-Za-z]|\brequire\(" src --include='*.ts' | grep -v '^src/platform/')
[ -n "$out" ] && report "node:/Buffer/process/Deno/require outside src/platform/" "$out"

out=$(grep -rnE "from ['\"](kleur|cac)['\"]|console\.(log|error|warn|info)" src --include='*.ts')
[ -n "$out" ] && report "kleur/cac/console in src/ (they belong in cli/)" "$out"

# cli/ stands on src/index.ts alone, never on deep paths: the svp command is built from what
# the package exports. Inside src/ nothing imports index.ts (it would be a cycle), and the
# tests and benchmarks import the modules they test (test/api/ tests the surface itself).
out=$(grep -rnE "(from|import\()\s*['\"]\.\./src/" cli --include='*.ts' | grep -vE "['\"]\.\./src/index\.ts['\"]")
[ -n "$out" ] && report "cli/ imports a deep path of src/ (import it from src/index.ts)" "$out"
out=$(grep -rnE "(from|import\()\s*['\"](\.\./)+(src/)?index\.ts['\"]|from ['\"]\./index\.ts['\"]" src test bench scripts --include='*.ts' | grep -v '^test/api/')
[ -n "$out" ] && report "imports src/index.ts outside cli/ and test/api/ (import the module itself)" "$out"

# Downward-only imports between src/ layers: each layer lists what it may import besides
# itself and the top-level modules (errors, clock, emitter, options). Only platform/ sees
# everything: it holds the composition (open-session.ts, socks-proxy.ts, mesh.ts) that
# hands platform adapters to the layers; index.ts re-exports the public part.
declare -A allowed=(
  [bytes]=""
  [mesh]="bytes"
  [stream]="bytes"
  [mdp]="bytes mesh"
  [msp]="bytes mesh mdp stream"
  [socks]="bytes mesh stream"
  [relay]="stream"
  [status]="bytes mesh"
  # mesh services: listen/connect/discover logic and the socks mesh dialer, over any MdpTransport
  [service]="bytes mesh stream mdp msp relay socks status"
  [node]="bytes mesh stream mdp msp status"
  [servald]="bytes mesh stream mdp msp status"
  # platform implements interfaces declared by the layers above and wires them in.
  [platform]="bytes mesh stream mdp msp socks relay status node servald service"
)
for layer in "${!allowed[@]}"; do
  [ -d "src/$layer" ] || continue
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    target=$(echo "$line" | sed -nE "s/.*from ['\"]\.\.\/([a-z-]+)\/.*/\1/p")
    [ -z "$target" ] && continue
    case " ${allowed[$layer]} " in *" $target "*) ;; *) report "src/$layer imports src/$target" "$line" ;; esac
  done < <(grep -rnE "from ['\"]\.\./[a-z-]+/" "src/$layer" --include='*.ts')
done
[ $fail -eq 0 ] && echo "layers: ok"
exit $fail
