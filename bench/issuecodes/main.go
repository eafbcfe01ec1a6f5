// Command issuecodes asks a running device_flow endpoint for n device codes
// and prints them one per line: the pool that bench/run.sh's poll scenarios
// poll. It is a load-test helper, so it prints device codes (secrets) on purpose; never point it
// at a production server.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

func main() {
	endpoint := flag.String("url", "http://127.0.0.1:8080/device/code", "the device authorization endpoint")
	n := flag.Int("n", 10000, "how many codes to issue")
	clientID := flag.String("client", "bench", "client_id to ask as")
	workers := flag.Int("c", 32, "concurrent connections")
	flag.Parse()

	codes := make(chan string, 1024)
	var left atomic.Int64
	left.Store(int64(*n))
	var failed atomic.Value
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	body := url.Values{"client_id": {*clientID}}.Encode()

	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				code, err := issue(client, *endpoint, body)
				if err != nil {
					failed.Store(err)
					return
				}
				codes <- code
			}
		}()
	}
	go func() { wg.Wait(); close(codes) }()

	out := bufio.NewWriter(os.Stdout)
	for c := range codes {
		out.WriteString(c)
		out.WriteByte('\n')
	}
	out.Flush()
	if err, _ := failed.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "issuecodes:", err)
		os.Exit(1)
	}
}

func issue(client *http.Client, endpoint, body string) (string, error) {
	resp, err := client.Post(endpoint, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	var da struct {
		DeviceCode string `json:"device_code"`
	}
	if err := json.Unmarshal(b, &da); err != nil || da.DeviceCode == "" {
		return "", fmt.Errorf("no device_code in %q", b)
	}
	return da.DeviceCode, nil
}
