package deviceflow

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

func TestBadgerCaddyfile(t *testing.T) {
	var b BadgerStorage
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser("badger /var/lib/df {\n min_free 128MiB\n}")); err != nil {
		t.Fatal(err)
	}
	if b.Dir != "/var/lib/df" || b.MinFree != 128<<20 {
		t.Fatalf("parsed %+v", b)
	}
	for input, want := range map[string]string{
		"badger {\n min_free\n}":          "wrong argument count",
		"badger {\n min_free 1GB 2GB\n}":  "wrong argument count",
		"badger {\n min_free lots\n}":     `min_free must be a size such as 64MiB or 1GB, not "lots"`,
		"badger {\n min_free 0\n}":        "min_free must be a size",
		"badger /a {\n min_fre 1GB\n}":    "unrecognized subdirective min_fre of storage badger",
		"badger /a /b":                    "wrong argument count",
		"badger {\n dir /var/lib/x\n}":    "the folder goes on the line",
		"badger {\n min_free -64MiB\n}":   "min_free must be a size",
		"badger {\n min_free 1EiB\n}\n":   "", // large, but a size
		"badger {\n min_free 64mib\n}\n":  "",
		"badger {\n min_free 1000000\n}":  "",
		"badger {\n min_free 16EiB\n}\n":  "min_free must be a size",
		"badger {\n min_free 64 MiB\n}\n": "wrong argument count",
	} {
		var b BadgerStorage
		err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", input, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %v, want %q with file and line", input, err, want)
		}
	}
}

// validateConfig runs what `caddy validate` runs on a config with one
// device_flow handler whose Badger folder is dir.
func validateConfig(t *testing.T, dir string) error {
	t.Helper()
	raw := fmt.Sprintf(`{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{
		"handler":"device_flow",
		"authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token",
		"storage":{"backend":"badger","dir":%q}}]}]}}}}}`, dir)
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(cfg)
}

// caddy validate neither makes the folder nor needs the database's lock,
// which the Caddy running the same config holds.
func TestValidateLeavesTheFolderAlone(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "a", "db")
	if err := validateConfig(t, missing); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatalf("validating made the folder: %v", err)
	}

	inUse := t.TempDir()
	db, err := badgerstore.Open(badgerstore.Options{Dir: inUse})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := validateConfig(t, inUse); err != nil {
		t.Fatalf("validating a config whose database is open elsewhere: %v", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := validateConfig(t, filepath.Join(file, "db")); err == nil || !strings.Contains(err.Error(), "badger storage folder") {
		t.Fatalf("a folder under a file: %v, want an error", err)
	}
}
