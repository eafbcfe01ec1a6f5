// Package clock is the device_flow handlers' time source. Production never
// changes it; the in-process integration tests set Now to their own clock
// (internal/testclock) before loading a config, to move time by hand
// instead of sleeping. Being internal, nothing outside this module can.
package clock

import "time"

// Now is read once per handler, when it is provisioned.
var Now = time.Now
