# Caddy with the device_flow module, on Caddy's official images.
#   docker build -t caddy-device-flow .
# compose.yaml runs it. scripts/check-dockerfile.sh runs this file's xcaddy
# command against a checkout, so that the recipe is tested without Docker.
ARG CADDY_VERSION=2.11.9

FROM caddy:${CADDY_VERSION}-builder AS builder
ARG CADDY_VERSION
COPY . /src
# The module path is not published: xcaddy points it at the copied source,
# and "|off" makes the go command use that replacement when the module
# proxy refuses the unpublished path.
ENV GOPROXY="https://proxy.golang.org|off"
RUN xcaddy build v${CADDY_VERSION} \
	--with github.com/caddy-device-flow/caddy-device-flow=/src \
	--output /usr/bin/caddy

FROM caddy:${CADDY_VERSION}
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
