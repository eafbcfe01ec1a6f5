package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// TestRedisTLS: Caddy reaches Redis over TLS, both as a rediss:// URL and
// as host:port with `tls`, checking the server's certificate against the
// trusted roots (here a private CA, given to the process by SSL_CERT_FILE
// as an operator might).
func TestRedisTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary")
	}
	redistest.Require(t)
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	tlsPort := freePort()
	srv := redistest.Start(t, redistest.Args(
		"--tls-port", fmt.Sprint(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no"))
	t.Setenv("SSL_CERT_FILE", ca) // inherited by the Caddy processes
	up := startUpstream(t)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)

	for _, tc := range []struct{ name, prefix, storage string }{
		{"rediss URL", "tls-url:", redisStorageWithPrefix("rediss://"+tlsAddr+"/0", "tls-url:")},
		{"address with tls", "tls-addr:", "redis " + tlsAddr + " {\n\t\t\ttls\n\t\t\tkey_prefix tls-addr:\n\t\t}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := fmt.Sprintf("http://127.0.0.1:%d", freePort())
			startCaddyProcess(t, instanceConfig(site, up, tc.storage), site+"/device")
			status, out := postFormTo(t, site, "/device/code", map[string]string{"client_id": up.Config().ClientID})
			if status != http.StatusOK {
				t.Fatalf("device code over TLS to Redis: %d %v", status, out)
			}
			// The code is in Redis: read through the plain port.
			keys, err := redistest.Do(srv.Addr, "KEYS", tc.prefix+"*")
			if err != nil || keys == "" {
				t.Fatalf("nothing under %s in Redis: %q %v", tc.prefix, keys, err)
			}
		})
	}
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed
// by it; it returns the paths of the CA, the certificate and its key.
func writeTestPKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "device-flow test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "PRIVATE KEY", keyDER)
}
