#!/usr/bin/env bash
# Runs the Dockerfile's own xcaddy command against this checkout (with
# Caddy's version from its ARG and its builder stage's ENV), then checks
# that the binary has the module and accepts deploy/Caddyfile, the
# configuration compose.yaml runs. No Docker needed: the recipe cannot rot
# unnoticed on machines without a container engine. scripts/test.sh runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
xcaddy_version=v0.4.5 # the README's

# The Dockerfile's instructions, continuation lines joined.
instructions=$(sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "$root/Dockerfile" | grep -v '^[[:space:]]*#')
caddy_version=$(sed -n 's/^ARG CADDY_VERSION=\(.*\)$/\1/p' <<<"$instructions" | head -1)
builder=$(awk '/^FROM .* AS builder/{b=1; next} /^FROM /{b=0} b' <<<"$instructions")
run=$(sed -n 's/^RUN \(xcaddy build .*\)$/\1/p' <<<"$builder")
if [ -z "$caddy_version" ] || [ -z "$run" ]; then
	echo "check-dockerfile: no ARG CADDY_VERSION=... or no 'RUN xcaddy build' in the builder stage of Dockerfile" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The builder stage's ENV lines (KEY=VALUE, optionally quoted).
while read -r key value; do
	[ -n "$key" ] && export "$key=$value"
done < <(sed -n 's/^ENV \([A-Za-z_][A-Za-z0-9_]*\)="\{0,1\}\([^"]*\)"\{0,1\}$/\1 \2/p' <<<"$builder")

# COPY . /src: a copy of the checkout without what .dockerignore leaves
# out stands for /src; the binary goes to $work.
excludes=()
while read -r pattern; do
	[ -n "$pattern" ] && excludes+=("--exclude=./$pattern")
done < <(grep -v '^[[:space:]]*#' "$root/.dockerignore")
mkdir "$work/src"
tar -C "$root" "${excludes[@]}" -cf - . | tar -C "$work/src" -xf -
cmd=${run//\$\{CADDY_VERSION\}/$caddy_version}
cmd=${cmd//=\/src/=$work/src}
cmd=$(sed "s#--output [^ ]*#--output $work/caddy#" <<<"$cmd")
read -ra args <<<"$cmd"

xcaddy=$(command -v xcaddy || true)
if [ -z "$xcaddy" ]; then
	GOBIN="$work/bin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version"
	xcaddy="$work/bin/xcaddy"
fi
echo "check-dockerfile: ${args[*]} (GOPROXY=${GOPROXY:-})"
(cd "$work" && "$xcaddy" "${args[@]:1}" >"$work/build.log" 2>&1) || {
	tail -n 40 "$work/build.log"
	echo "check-dockerfile: the Dockerfile's xcaddy command failed" >&2
	exit 1
}

"$work/caddy" list-modules | grep -qx 'http.handlers.device_flow' || {
	echo "check-dockerfile: the built caddy has no http.handlers.device_flow" >&2
	exit 1
}
# compose.yaml's configuration, with its variables as an operator sets them.
(cd "$work" && XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config" \
	DEVICE_FLOW_SITE=auth.example.com ISSUER=http://127.0.0.1:1/realms/demo \
	CLIENT_ID=tv CLIENT_SECRET=not-a-real-secret \
	"$work/caddy" validate --config "$root/deploy/Caddyfile" >"$work/validate.log" 2>&1) || {
	cat "$work/validate.log"
	echo "check-dockerfile: deploy/Caddyfile does not validate" >&2
	exit 1
}
if grep -q 'not formatted' "$work/validate.log"; then
	grep 'not formatted' "$work/validate.log"
	echo "check-dockerfile: deploy/Caddyfile is not as caddy fmt writes it" >&2
	exit 1
fi
echo "check-dockerfile: ok ($("$work/caddy" version | cut -d' ' -f1), device_flow listed, deploy/Caddyfile valid)"
