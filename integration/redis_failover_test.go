package integration

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testupstream"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// Chaos on the real thing: two Caddy processes share a Redis Cluster of
// three masters with a replica each. A master is killed with SIGKILL while
// devices poll, people approve and new devices ask for codes; its replica
// takes over. Then:
//
//   - every code that was acknowledged (200 with a device_code) is still
//     there: it can be approved, and its tokens are delivered;
//   - no code's tokens are delivered twice: every approved code is polled
//     by several devices over both instances at once, and exactly one gets
//     the tokens, counting deliveries during the failover;
//   - every answer during the failover was a proper one: 200, 400 with an
//     RFC 6749 error, or 503 with Retry-After; never a 500 or a dropped
//     connection;
//   - the instances reach the killed master's codes again soon after the
//     cluster has failed over (failoverFollowBound).

// failoverFollowBound is how soon after the cluster has failed over both
// instances must answer for the killed master's codes again.
const failoverFollowBound = 5 * time.Second

// oauthErrorCodes are the error codes a device endpoint may answer 400
// with (RFC 6749 §5.2, RFC 8628 §3.5).
var oauthErrorCodes = []string{
	"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "authorization_pending", "slow_down",
	"access_denied", "expired_token",
}

// failoverHTTP is the devices' and people's client: a request that hangs
// is a failure too.
var failoverHTTP = &http.Client{Timeout: 20 * time.Second}

// deviceAnswer is one answer of a device endpoint.
type deviceAnswer struct {
	status int
	out    map[string]any
}

func (a deviceAnswer) err() string { s, _ := a.out["error"].(string); return s }

// deviceRequest posts a device's form; the error says what was improper
// about the answer, if anything.
func deviceRequest(site, path string, form url.Values) (deviceAnswer, error) {
	resp, err := failoverHTTP.PostForm(site+path, form)
	if err != nil {
		return deviceAnswer{}, fmt.Errorf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return deviceAnswer{}, fmt.Errorf("POST %s: reading the answer: %v", path, err)
	}
	a := deviceAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(body, &a.out); err != nil {
		return a, fmt.Errorf("POST %s: %d with a body that is not JSON: %q", path, resp.StatusCode, body)
	}
	switch {
	case a.status == http.StatusOK,
		a.status == http.StatusBadRequest && slices.Contains(oauthErrorCodes, a.err()),
		a.status == http.StatusServiceUnavailable && a.err() == "temporarily_unavailable" && resp.Header.Get("Retry-After") != "":
		return a, nil
	}
	return a, fmt.Errorf("POST %s: improper answer %d %s (Retry-After %q)", path, a.status, body, resp.Header.Get("Retry-After"))
}

func pollAt(site, clientID, deviceCode string) (deviceAnswer, error) {
	a, err := deviceRequest(site, "/device/token", url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {clientID},
	})
	if err == nil && a.status == http.StatusOK && a.out["access_token"] == nil {
		err = fmt.Errorf("POST /device/token: 200 without an access_token: %v", a.out)
	}
	return a, err
}

// person is someone approving codes, one after another, in a browser of
// their own (a sign-in replaces the browser's session).
type person struct{ client *http.Client }

func newPerson() *person {
	jar, _ := cookiejar.New(nil)
	return &person{client: &http.Client{Jar: jar, Timeout: failoverHTTP.Timeout}}
}

// open requests a page, following redirects (to the upstream and back);
// the error says what was improper about the answer, if anything.
func (p *person) open(method, u string, form url.Values) (page, error) {
	var (
		resp *http.Response
		err  error
	)
	if method == http.MethodGet {
		resp, err = p.client.Get(u)
	} else {
		resp, err = p.client.PostForm(u, form)
	}
	if err != nil {
		return page{}, fmt.Errorf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, fmt.Errorf("%s %s: reading the page: %v", method, u, err)
	}
	pg := page{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(body)}
	switch {
	case pg.status == http.StatusServiceUnavailable && (resp.Header.Get("Retry-After") == "" || !pg.is("error")):
		return pg, fmt.Errorf("%s %s: 503 without Retry-After or the error page (ended at %s)", method, u, pg.url)
	case pg.status >= 500 && pg.status != http.StatusServiceUnavailable:
		return pg, fmt.Errorf("%s %s: improper answer %d (ended at %s):\n%.500s", method, u, pg.status, pg.url, pg.body)
	}
	return pg, nil
}

// approval is how an attempt to approve a code ended.
type approval int

const (
	approvalDone        approval = iota // the success page
	approvalUnavailable                 // 503 with Retry-After: try again
	approvalNotPending                  // the code is unknown, used or approved already
)

// approve walks through the confirmation page, the upstream and back.
func (p *person) approve(site, userCode string) (approval, error) {
	confirm, err := p.open(http.MethodGet, site+"/device?code="+url.QueryEscape(userCode), nil)
	switch {
	case err != nil:
		return 0, err
	case confirm.status == http.StatusServiceUnavailable:
		return approvalUnavailable, nil
	case confirm.status == http.StatusBadRequest && confirm.is("enter"):
		return approvalNotPending, nil
	case confirm.status != http.StatusOK || !confirm.is("confirm"):
		return 0, fmt.Errorf("confirmation page for %s at %s: %d\n%.500s", userCode, site, confirm.status, confirm.body)
	}
	m := csrfField.FindStringSubmatch(confirm.body)
	if m == nil {
		return 0, fmt.Errorf("no CSRF field on the confirmation page for %s at %s", userCode, site)
	}
	done, err := p.open(http.MethodPost, site+"/device", url.Values{
		"csrf": {html.UnescapeString(m[1] + m[2])}, "user_code": {userCode}, "action": {"approve"},
	})
	switch {
	case err != nil:
		return 0, err
	case done.status == http.StatusOK && done.is("success"):
		return approvalDone, nil
	case done.status == http.StatusServiceUnavailable:
		return approvalUnavailable, nil
	case done.status == http.StatusBadRequest && done.is("enter"):
		return approvalNotPending, nil
	}
	return 0, fmt.Errorf("approving %s at %s: %d at %s\n%.500s", userCode, site, done.status, done.url, done.body)
}

// failoverCode is one acknowledged device code.
type failoverCode struct {
	device, user string
	victim       bool   // on the killed master's slots
	role         string // see TestRedisClusterFailover
}

// failoverLog is what happened during the test.
type failoverLog struct {
	*redistest.Ledger[*failoverCode] // acknowledgements and 503s

	mu        sync.Mutex
	codes     []*failoverCode
	approved  map[*failoverCode]bool   // the person saw the success page
	unsure    map[*failoverCode]bool   // a 503 during approval, then not pending: approved or lost
	delivered map[*failoverCode]int    // 200 with tokens
	improper  []string                 // improper answers and failed requests
	lost      map[*failoverCode]string // a code not delivered that the instances no longer know
}

// unreplicated says whether a write of c on the killed master was
// acknowledged between from and to: one that Redis's asynchronous
// replication may lose with the master (see replicatedAt).
func (l *failoverLog) unreplicated(c *failoverCode, from, to time.Time) bool {
	return c.victim && l.Unreplicated(c, from, to)
}

func (l *failoverLog) noteImproper(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.improper = append(l.improper, time.Now().Format("15:04:05.000")+" "+err.Error())
}

func (l *failoverLog) deliveries(c *failoverCode) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered[c]
}

func TestRedisClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary, kills a Redis Cluster master")
	}
	buildCaddy(t) // before the clock below starts
	start := time.Now()
	cluster := redistest.StartCluster(t, 3, redistest.Replicas(1))
	// mockoidc is not safe for concurrent use (its sessions are a plain
	// map), and people approve here at once: one request at a time.
	up := testupstream.New(t)
	var upMu sync.Mutex
	if err := up.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			upMu.Lock()
			defer upMu.Unlock()
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	up.Listen(t, "127.0.0.1:0")
	clientID := up.Config().ClientID
	prefix := newKeyPrefix()
	// limits off: the test approves a few hundred codes from one address,
	// past the approval limit. (With limits on, the requests also count in
	// the handler's counters, which share one slot: when its master dies,
	// every request that counts answers 503 until the failover.)
	storage := "redis " + strings.Join(cluster.Addrs, " ") + " {\n\t\t\tkey_prefix " + prefix + "\n\t\t}"
	startInstance := func() (string, *caddyProcess) {
		site := fmt.Sprintf("http://127.0.0.1:%d", freePort())
		config := instanceConfig(site, up, storage)
		if limited := strings.Replace(config, "guess_limit 2 per 15m", "limits off", 1); limited != config {
			config = limited
		} else {
			t.Fatalf("instanceConfig changed: no guess_limit to replace with limits off:\n%s", config)
		}
		return site, startCaddyProcess(t, config, site+"/device")
	}
	siteA, procA := startInstance()
	siteB, procB := startInstance()
	sites := []string{siteA, siteB}

	led := &failoverLog{
		Ledger:    redistest.NewLedger[*failoverCode](),
		approved:  make(map[*failoverCode]bool),
		unsure:    make(map[*failoverCode]bool),
		delivered: make(map[*failoverCode]int),
		lost:      make(map[*failoverCode]string),
	}
	issue := func(site string) (*failoverCode, deviceAnswer, error) {
		a, err := deviceRequest(site, "/device/code", url.Values{"client_id": {clientID}, "scope": {"openid profile"}})
		if err != nil || a.status != http.StatusOK {
			return nil, a, err
		}
		device, _ := a.out["device_code"].(string)
		user, _ := a.out["user_code"].(string)
		if device == "" || user == "" {
			return nil, a, fmt.Errorf("POST /device/code: 200 without the codes: %v", a.out)
		}
		return &failoverCode{device: device, user: user}, a, nil
	}

	// 200 codes from both instances; their keys hash by user code, so they
	// spread over the masters.
	const codes = 200
	var initial []*failoverCode
	var issueMu sync.Mutex
	var issueWG sync.WaitGroup
	for w := range 8 {
		issueWG.Go(func() {
			for i := w; i < codes; i += 8 {
				c, a, err := issue(sites[i%2])
				if err != nil || c == nil {
					t.Errorf("device code before the failover: %v %d %v", err, a.status, a.out)
					return
				}
				issueMu.Lock()
				initial = append(initial, c)
				issueMu.Unlock()
			}
		})
	}
	issueWG.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// The record's key has the normalized user code as its hash tag.
	tag := func(c *failoverCode) string { return "{" + strings.ReplaceAll(c.user, "-", "") + "}" }
	victim, err := cluster.MasterOf(tag(initial[0]))
	if err != nil {
		t.Fatal(err)
	}
	victimSlots, err := cluster.Slots(victim)
	if err != nil {
		t.Fatal(err)
	}
	onVictim := func(c *failoverCode) bool { return redistest.InSlots(victimSlots, tag(c)) }

	// What each code goes through, by its place:
	//   held:      approved before the crash, not polled until after the
	//              failover: its tokens must have survived it
	//   early:     approved before the crash, polled throughout
	//   delivered: approved and delivered before the crash, polled
	//              throughout: never delivered again
	//   approve:   approved during the crash, polled throughout
	//   pending:   polled throughout, approved at the end
	// Codes issued during the chaos are approved at the end ("late").
	victims := 0
	for i, c := range initial {
		c.victim = onVictim(c)
		if c.victim {
			victims++
		}
		switch i % 10 {
		case 0:
			c.role = "held"
		case 1:
			c.role = "early"
		case 2:
			c.role = "delivered"
		case 3, 4:
			c.role = "approve"
		default:
			c.role = "pending"
		}
	}
	led.codes = append(led.codes, initial...)
	// A pending code on the master to be killed: its confirmation page
	// tells when an instance reaches that master's slots again.
	var probeCode *failoverCode
	for _, c := range initial {
		if c.victim && c.role == "pending" {
			probeCode = c
			break
		}
	}
	if probeCode == nil {
		t.Fatal("no pending code on the master to be killed")
	}
	var before []*failoverCode
	for _, c := range initial {
		if c.role == "held" || c.role == "early" || c.role == "delivered" {
			before = append(before, c)
		}
	}
	var approveWG sync.WaitGroup
	for w := range 8 {
		approveWG.Go(func() {
			p := newPerson()
			for i := w; i < len(before); i += 8 {
				c := before[i]
				if got, err := p.approve(sites[i%2], c.user); err != nil || got != approvalDone {
					t.Errorf("approving %s before the failover: %v %v", c.user, got, err)
					continue
				}
				led.mu.Lock()
				led.approved[c] = true
				led.mu.Unlock()
				if c.role != "delivered" {
					continue
				}
				a, err := pollAt(sites[(i+1)%2], clientID, c.device)
				if err != nil || a.status != http.StatusOK {
					t.Errorf("delivering %s before the failover: %v %d %v", c.user, err, a.status, a.out)
					continue
				}
				led.mu.Lock()
				led.delivered[c]++
				led.mu.Unlock()
			}
		})
	}
	approveWG.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%v: cluster, upstream, two instances, %d codes (%d on %s, the master to be killed), %d approved",
		time.Since(start).Round(time.Millisecond), codes, victims, victim.Addr, len(before))

	// The chaos.
	chaos := redistest.StartChaos(t)

	// Devices poll about every 1.2 s (the interval is 1 s), each of them
	// at either instance.
	const pollers = 8
	for g := range pollers {
		chaos.Go(func() {
			var mine []*failoverCode
			for i, c := range initial {
				if i%pollers == g && c.role != "held" {
					mine = append(mine, c)
				}
			}
			last := make(map[*failoverCode]time.Time)
			for n := 0; !chaos.Stopped(); n++ {
				for _, c := range mine {
					if chaos.Stopped() || time.Since(last[c]) < 1200*time.Millisecond {
						continue
					}
					last[c] = time.Now()
					a, err := pollAt(sites[n%2], clientID, c.device)
					switch {
					case err != nil:
						led.noteImproper(fmt.Errorf("poll of %s (%s, on the killed master: %v): %w", c.user, c.role, c.victim, err))
					case a.status == http.StatusServiceUnavailable:
						led.Failed("poll", c.victim)
					case a.status == http.StatusOK:
						led.mu.Lock()
						led.delivered[c]++
						led.mu.Unlock()
						led.Ack(c)
					case a.err() == "invalid_grant" && led.deliveries(c) == 0:
						led.mu.Lock()
						led.lost[c] = fmt.Sprintf("%s (%s, on the killed master: %v): poll at %s answered invalid_grant before any delivery",
							c.user, c.role, c.victim, sites[n%2])
						led.mu.Unlock()
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	// People approve, each in a browser of their own, trying again while
	// the answer is 503.
	var toApprove []*failoverCode
	for _, c := range initial {
		if c.role == "approve" {
			toApprove = append(toApprove, c)
		}
	}
	const approvers = 4
	for g := range approvers {
		chaos.Go(func() {
			p := newPerson()
			for i := g; i < len(toApprove); i += approvers {
				c := toApprove[i]
				uncertain := false // an attempt failed: it may have approved the code all the same
				for n := 0; !chaos.Stopped(); n++ {
					site := sites[(i+n)%2]
					got, err := p.approve(site, c.user)
					if err != nil {
						led.noteImproper(fmt.Errorf("approval of %s (on the killed master: %v): %w", c.user, c.victim, err))
						uncertain = true
						time.Sleep(200 * time.Millisecond)
						continue
					}
					led.mu.Lock()
					switch got {
					case approvalDone:
						led.approved[c] = true
						led.Ack(c)
					case approvalNotPending:
						if uncertain {
							// The end tells whether it was approved.
							led.unsure[c] = true
						} else {
							led.lost[c] = fmt.Sprintf("%s (approve, on the killed master: %v): not pending when first approved at %s",
								c.user, c.victim, site)
						}
					}
					led.mu.Unlock()
					if got != approvalUnavailable {
						break
					}
					uncertain = true
					led.Failed("approval", c.victim)
					time.Sleep(200 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond) // people are slow
			}
		})
	}
	// New devices keep asking for codes; those acknowledged must survive.
	chaos.Go(func() {
		for n := 0; !chaos.Stopped(); n++ {
			c, a, err := issue(sites[n%2])
			switch {
			case err != nil:
				led.noteImproper(fmt.Errorf("device code during the failover: %w", err))
			case c != nil:
				c.role, c.victim = "late", onVictim(c)
				led.mu.Lock()
				led.codes = append(led.codes, c)
				led.mu.Unlock()
				led.Ack(c)
			case a.status == http.StatusServiceUnavailable:
				led.FailedSomewhere("device code") // for a user code, and so a slot, unknown
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	time.Sleep(500 * time.Millisecond) // the chaos under way
	// Codes acknowledged after replicatedAt may be lost with the master:
	// they are left out of the checks below.
	replicatedAt, killed, promoted := cluster.FailOver(t, victim)
	failover := time.Since(killed)

	// Both instances reach the killed master's codes again: a pending
	// code's confirmation page (a read; nothing changes).
	followed := make(map[string]time.Duration)
	probe := newPerson()
	deadline := time.Now().Add(failoverFollowBound)
	for _, site := range sites {
		for {
			got, err := probe.open(http.MethodGet, site+"/device?code="+url.QueryEscape(probeCode.user), nil)
			if err != nil {
				led.noteImproper(fmt.Errorf("follow probe: %w", err))
			} else if got.status == http.StatusOK && got.is("confirm") {
				followed[site] = time.Since(killed)
				break
			} else if got.status != http.StatusServiceUnavailable {
				t.Errorf("confirmation page of the pending code %s at %s after the failover: %d\n%.300s", probeCode.user, site, got.status, got.body)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s still answers 503 for the killed master's codes %v after %s took over from %s (%v after the kill)",
					site, failoverFollowBound, promoted.Addr, victim.Addr, time.Since(killed).Round(time.Millisecond))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // the chaos goes on a little on the new master
	chaos.Stop()

	t.Logf("SIGKILL of %s: %s took over after %v", victim.Addr, promoted.Addr, failover.Round(time.Millisecond))
	for _, site := range sites {
		if d, ok := followed[site]; ok {
			t.Logf("%s answered for the killed master's codes again %v after the kill", site, d.Round(time.Millisecond))
		}
	}
	led.Report(t, killed) // the failures are 503s
	for i, s := range led.improper {
		if i == 20 {
			t.Errorf("... and %d more improper answers", len(led.improper)-i)
			break
		}
		t.Errorf("improper answer during the failover: %s", s)
	}
	if len(led.improper) > 0 {
		for _, p := range []*caddyProcess{procA, procB} {
			out, _ := os.ReadFile(p.log)
			t.Logf("%s:\n%s", p.log, tailLines(string(out), 30))
		}
	}
	kept := led.codes[:0]
	for _, c := range led.codes {
		if !led.unreplicated(c, replicatedAt, killed) {
			kept = append(kept, c)
		}
	}
	t.Logf("%d codes written on the killed master in the %v between its replica's confirmation and the kill are not checked",
		len(led.codes)-len(kept), killed.Sub(replicatedAt).Round(time.Microsecond))
	led.codes = kept
	for c, s := range led.lost {
		if !led.unreplicated(c, replicatedAt, killed) {
			t.Errorf("acknowledged code lost during the failover: %s", s)
		}
	}

	// The checks go to the same two instances, which followed the
	// failover (or the test has failed above).
	final := sites

	// Every acknowledged code not yet approved is approved now.
	var rest []*failoverCode
	for _, c := range led.codes {
		if !led.approved[c] && !led.unsure[c] && led.delivered[c] == 0 {
			rest = append(rest, c)
		}
	}
	var late503 sync.Map
	var finalWG sync.WaitGroup
	for w := range 8 {
		finalWG.Go(func() {
			p := newPerson()
			for i := w; i < len(rest); i += 8 {
				c := rest[i]
				for until := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					got, err := p.approve(final[i%2], c.user)
					if err != nil {
						t.Errorf("approving %s (%s, on the killed master: %v) after the failover: %v", c.user, c.role, c.victim, err)
						break
					}
					if got == approvalUnavailable && time.Now().Before(until) {
						late503.Store(c, true)
						continue
					}
					switch got {
					case approvalDone:
						led.mu.Lock()
						led.approved[c] = true
						led.mu.Unlock()
					case approvalNotPending:
						t.Errorf("acknowledged code %s (%s, on the killed master: %v) is not pending after the failover", c.user, c.role, c.victim)
					default:
						t.Errorf("approving %s (%s, on the killed master: %v) after the failover: still 503", c.user, c.role, c.victim)
					}
					break
				}
			}
		})
	}
	finalWG.Wait()
	n503 := 0
	late503.Range(func(any, any) bool { n503++; return true })
	if n503 > 0 {
		t.Logf("%d approvals after the failover met a 503 first", n503)
	}

	// Four devices poll each code at once, two at each instance: a code
	// not delivered yet is delivered exactly once; any other answer is
	// invalid_grant.
	var polls sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, c := range led.codes {
		for k := range 4 {
			sem <- struct{}{}
			polls.Go(func() {
				defer func() { <-sem }()
				a, err := pollAt(final[k%2], clientID, c.device)
				led.mu.Lock()
				defer led.mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("final poll of %s (%s, on the killed master: %v): %v", c.user, c.role, c.victim, err)
				case a.status == http.StatusOK:
					led.delivered[c]++
				case a.err() != "invalid_grant":
					t.Errorf("final poll of %s (%s, on the killed master: %v): %d %v, want the tokens or invalid_grant",
						c.user, c.role, c.victim, a.status, a.out)
				}
			})
		}
	}
	polls.Wait()
	byRole := make(map[string]int)
	for _, c := range led.codes {
		byRole[c.role]++
		if n := led.delivered[c]; n != 1 {
			t.Errorf("code %s (%s, on the killed master: %v, approval seen: %v): tokens delivered %d times, want exactly once",
				c.user, c.role, c.victim, led.approved[c], n)
		}
	}
	t.Logf("%d acknowledged codes %v, each delivered exactly once; %v in all after the build",
		len(led.codes), byRole, time.Since(start).Round(time.Millisecond))
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
