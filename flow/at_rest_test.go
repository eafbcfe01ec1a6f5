package flow_test

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testsecrets"
)

// A copy of the Badger folder yields no device code and no token: not
// while approved tokens wait for the device (sealed to a key only the
// device code derives), not after delivery. The folder is read whole,
// value log included, with the store closed as by a restart.
func TestNoSecretsAtRestInBadger(t *testing.T) {
	dir := t.TempDir()
	first := newHarness(t, harnessOptions{dir: dir, upstream: true})
	client := first.up.ClientID
	auth := first.newCode("192.0.2.1", client)
	if done := first.approve(personBrowser(), auth["user_code"].(string), nil); !done.isPage("success") {
		t.Fatalf("sign-in: %d\n%s", done.status, done.body)
	}
	first.stop()
	waiting := dirBytes(t, dir)
	if len(waiting) == 0 {
		t.Fatal("the Badger folder is empty")
	}

	second := newHarness(t, harnessOptions{dir: dir, clock: first.clock})
	deviceCode := auth["device_code"].(string)
	status, tokens := second.poll(deviceCode, client)
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	second.stop()
	secrets := map[string]string{"device code": deviceCode}
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		if secrets[name], _ = tokens[name].(string); secrets[name] == "" {
			t.Fatalf("no %s delivered", name)
		}
	}
	testsecrets.Absent(t, "Badger folder while the tokens waited", waiting, secrets)
	testsecrets.Absent(t, "Badger folder after delivery", dirBytes(t, dir), secrets)
}

// dirBytes reads every file under dir.
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}
