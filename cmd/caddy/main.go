// Command caddy is Caddy with the device_flow module, for those without
// xcaddy: go build -o caddy ./cmd/caddy
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, and ours.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-device-flow/caddy-device-flow"
)

func main() {
	caddycmd.Main()
}
