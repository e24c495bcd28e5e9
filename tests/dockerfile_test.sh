#!/usr/bin/env bash
# deploy/docker/Dockerfile without building it (the build machines reach no image registry):
# multi-stage onto debian:12-slim, numeric non-root user, SIGTERM, exec-form entrypoint and a
# health check through `boa-client health`; every package it installs exists in Debian 12;
# and the runtime stage installs the package of every shared library boad and boa-client
# load directly (ldd of the binaries just built).
set -euo pipefail
boad=$1 client=$2 dockerfile=$3
fail() { echo "Dockerfile: $*"; exit 1; }

froms=$(grep -c '^FROM ' "$dockerfile")
[ "$froms" -ge 2 ] || fail "expected a build stage and a runtime stage, found $froms FROM lines"
[ "$(grep '^FROM ' "$dockerfile" | tail -1 | awk '{print $2}')" = "debian:12-slim" ] || fail "the runtime stage must be debian:12-slim"
grep -Eq '^USER [0-9]+(:[0-9]+)?$' "$dockerfile" || fail "USER must be numeric (runAsNonRoot)"
grep -q '^STOPSIGNAL SIGTERM$' "$dockerfile" || fail "STOPSIGNAL SIGTERM missing"
grep -Eq '^ENTRYPOINT \[' "$dockerfile" || fail "ENTRYPOINT must be in exec form"
grep -A1 '^HEALTHCHECK' "$dockerfile" | grep -q 'CMD \[.*boa-client.*health' || fail "HEALTHCHECK must run boa-client health (exec form)"

# The packages of each stage: the words after "apt-get install ... " up to the next command.
packages() {
  awk -v stage="$1" '
    /^FROM / { n++ }
    n == stage && /apt-get install/ { on = 1 }
    n == stage && on { line = $0; sub(/.*--no-install-recommends/, "", line); sub(/&&.*/, "", line);
                       gsub(/\\/, "", line); print line; if ($0 ~ /&&/ && $0 !~ /apt-get install/) on = 0 }
  ' "$dockerfile" | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u
}
runtime=$(packages 2)
build=$(packages 1)
[ -n "$runtime" ] && [ -n "$build" ] || fail "no apt-get install list found"
for p in $runtime $build; do
  apt-cache show "$p" > /dev/null 2>&1 || fail "package '$p' is not in Debian 12's archive"
done

# Direct dependencies of the binaries, as packages.
base="libc6 libstdc++6 libgcc-s1"  # in debian:12-slim already
for bin in "$boad" "$client"; do
  libs=$(ldd "$bin")
  for so in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    case $so in ld-linux*) continue ;; esac  # the dynamic loader (libc6), named by the CUDA runtime's static library
    path=$(awk -v s="$so" '$1 == s && !found { print $3; found = 1 }' <<< "$libs")
    [ -n "$path" ] || fail "$so of $bin is not found by ldd"
    pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null ||
          dpkg -S "$(echo "$path" | sed 's#^/lib/#/usr/lib/#')" 2>/dev/null || true)
    pkg=${pkg%%:*}
    [ -n "$pkg" ] || fail "no package owns $path ($so)"
    if ! grep -qx "$pkg" <<< "$runtime" && ! grep -qw "$pkg" <<< "$base"; then
      fail "$(basename "$bin") loads $so from $pkg, which the runtime stage does not install"
    fi
  done
done
echo "Dockerfile: stages, user, signal, entrypoint and health check as required; runtime packages cover boad and boa-client"
