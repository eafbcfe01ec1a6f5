package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// Chaos on a Redis Cluster with replicas: a master is killed (SIGKILL)
// while records are created, polled and approved, and its replica takes
// over. What a device relies on must hold: a record whose CreateDevice
// returned nil is still there, an approval that returned nil stays
// approved, tokens are taken at most once (exactly once in the end), and
// every failure on the way is flow.ErrUnavailable (which the endpoints
// answer 503). Redis replicates asynchronously, so a write acknowledged
// in the very instant of the crash could in principle be lost; on
// loopback that window is microseconds.

// failoverFollowBound is how soon after the cluster has failed over the
// store must reach the killed master's slots again. go-redis learns the
// new topology only from a MOVED reply, or when its copy is older than
// ClusterStateReloadInterval (60 s); a store that waits for that leaves a
// third of the codes answering 503 for a minute after every failover.
const failoverFollowBound = 5 * time.Second

// failoverLedger is what the store acknowledged during a chaos test, and
// how it failed.
type failoverLedger struct {
	*redistest.Ledger[string] // acknowledgements and ErrUnavailable

	mu       sync.Mutex
	created  map[string]*flow.Device // CreateDevice returned nil
	approved map[string]bool         // an approval returned nil
	taken    map[string]int          // tokens taken, per user code
	wrong    []error                 // failures that are not ErrUnavailable
}

func newFailoverLedger() *failoverLedger {
	return &failoverLedger{
		Ledger:   redistest.NewLedger[string](),
		created:  make(map[string]*flow.Device),
		approved: make(map[string]bool),
		taken:    make(map[string]int),
	}
}

// failed notes an operation's error; it returns whether there was one.
// onVictim says whether its key is on the killed master's slots.
func (l *failoverLedger) failed(op string, onVictim bool, err error) bool {
	if err == nil {
		return false
	}
	if !errors.Is(err, flow.ErrUnavailable) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.wrong = append(l.wrong, fmt.Errorf("%s: %w", op, err))
		return true
	}
	l.Failed(op, onVictim)
	return true
}

// takeTokens is a device's poll: it takes the tokens of an approved
// record (deleting it) and notes the poll of a pending one.
func takeTokens(ctx context.Context, s flow.Store, userCode string) (took bool, err error) {
	err = s.UpdateDevice(ctx, userCode, func(rec *flow.Device) (flow.Verdict, error) {
		took = false
		switch {
		case rec == nil:
			return flow.Keep, nil
		case rec.Status == flow.Approved:
			if want := "tokens for " + userCode; string(rec.Sealed) != want {
				return flow.Keep, fmt.Errorf("approved record %s holds %q, want %q", userCode, rec.Sealed, want)
			}
			took = true
			return flow.Delete, nil
		}
		rec.LastPoll = time.Now()
		return flow.Save, nil
	})
	return took, err
}

// approveRecord is a person's approval coming back from the upstream.
func approveRecord(ctx context.Context, s flow.Store, userCode string) error {
	return s.UpdateDevice(ctx, userCode, func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil {
			return flow.Keep, fmt.Errorf("record %s is gone", userCode)
		}
		rec.Status = flow.Approved
		rec.Sealed = []byte("tokens for " + userCode)
		return flow.Save, nil
	})
}

func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a cluster master and waits for a replica to take over")
	}
	start := time.Now()
	cluster := redistest.StartCluster(t, 3, redistest.Replicas(1))

	// KeySlot, by which the test knows where a record is, agrees with
	// the server.
	for _, key := range []string{"df:0123:dev:{BCDFGHJK}", "no tag", "a{}b{c}", "{x", "x}{y}"} {
		want, err := redistest.Do(cluster.Addrs[0], "CLUSTER", "KEYSLOT", key)
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(redistest.KeySlot(key)); got != want {
			t.Fatalf("KeySlot(%q) = %s, CLUSTER KEYSLOT says %s", key, got, want)
		}
	}

	// The client as Caddy's storage module makes it (storage_redis.go).
	opts := redisstore.Options{
		Addrs:     cluster.Addrs,
		KeyPrefix: uniquePrefix(),
	}
	s := connect(t, opts).Store("h")
	ctx := context.Background()
	led := newFailoverLedger()

	// 300 pending records, about a third on each master.
	const records = 300
	var initial []string
	for range records {
		d := storetest.NewDevice(time.Hour)
		create(t, s, d)
		led.created[d.UserCode] = d
		initial = append(initial, d.UserCode)
	}
	victim, err := cluster.MasterOf("{" + initial[0] + "}")
	if err != nil {
		t.Fatal(err)
	}
	victimSlots, err := cluster.Slots(victim)
	if err != nil {
		t.Fatal(err)
	}
	onVictim := func(userCode string) bool { return redistest.InSlots(victimSlots, "{"+userCode+"}") }

	// What each initial record goes through, by its place in the list:
	//   held:    approved before the crash, not polled until after the
	//            failover: its tokens must have survived it
	//   early:   approved before the crash, polled throughout
	//   approve: approved during the crash, polled throughout
	//   pending: polled throughout, approved at the end
	// The records created during the chaos are approved at the end.
	role := func(i int) string {
		switch i % 10 {
		case 0:
			return "held"
		case 1:
			return "early"
		case 2, 3:
			return "approve"
		}
		return "pending"
	}
	victims := 0
	for i, uc := range initial {
		if onVictim(uc) {
			victims++
		}
		if r := role(i); r == "held" || r == "early" {
			if err := approveRecord(ctx, s, uc); err != nil {
				t.Fatal(err)
			}
			led.approved[uc] = true
		}
	}
	t.Logf("cluster of 3 masters and 3 replicas and %d records in %v; %d records on %s, the master to be killed",
		records, time.Since(start).Round(time.Millisecond), victims, victim.Addr)

	// The chaos: devices poll, people approve, new devices ask for codes.
	chaos := redistest.StartChaos(t)
	const pollers = 6
	for g := range pollers {
		chaos.Go(func() {
			for !chaos.Stopped() {
				for i := g; i < records && !chaos.Stopped(); i += pollers {
					uc := initial[i]
					if role(i) == "held" {
						continue
					}
					took, err := takeTokens(ctx, s, uc)
					if led.failed("poll", onVictim(uc), err) {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if took {
						led.mu.Lock()
						led.taken[uc]++
						led.mu.Unlock()
						led.Ack(uc)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
	}
	const approvers = 3
	for g := range approvers {
		chaos.Go(func() {
			for i := g; i < records; i += approvers {
				if role(i) != "approve" {
					continue
				}
				uc := initial[i]
				for !chaos.Stopped() {
					if !led.failed("approve", onVictim(uc), approveRecord(ctx, s, uc)) {
						led.mu.Lock()
						led.approved[uc] = true
						led.mu.Unlock()
						led.Ack(uc)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond) // people are slow
			}
		})
	}
	chaos.Go(func() {
		for !chaos.Stopped() {
			d := storetest.NewDevice(time.Hour)
			err := s.CreateDevice(ctx, d)
			for errors.Is(err, flow.ErrUserCodeTaken) {
				d.UserCode = codes.Base20.New()
				err = s.CreateDevice(ctx, d)
			}
			if led.failed("create", onVictim(d.UserCode), err) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			led.mu.Lock()
			led.created[d.UserCode] = d
			led.mu.Unlock()
			led.Ack(d.UserCode)
			time.Sleep(10 * time.Millisecond)
		}
	})

	time.Sleep(300 * time.Millisecond) // the chaos under way
	// Writes acknowledged after replicatedAt may be lost with the master:
	// they are checked less strictly below.
	replicatedAt, killed, promoted := cluster.FailOver(t, victim)
	failover := time.Since(killed)

	// The store follows the new master: a record on the killed master's
	// slots can be read again soon after the failover.
	probe := initial[0] // held: nobody takes it before the end
	var follow time.Duration
	for deadline := time.Now().Add(failoverFollowBound); ; time.Sleep(20 * time.Millisecond) {
		_, err := s.DeviceByUserCode(ctx, probe)
		if err == nil {
			follow = time.Since(killed)
			break
		}
		if !errors.Is(err, flow.ErrUnavailable) {
			t.Fatalf("reading a record on the killed master's slots after the failover: %v", err)
		}
		if time.Now().After(deadline) {
			t.Errorf("the store still fails on the killed master's slots %v after %s took over from %s (%v after the kill): %v",
				failoverFollowBound, promoted.Addr, victim.Addr, time.Since(killed).Round(time.Millisecond), err)
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // the chaos goes on a little on the new master
	chaos.Stop()

	led.mu.Lock()
	defer led.mu.Unlock()
	followed := "not within the test"
	if follow > 0 {
		followed = follow.Round(time.Millisecond).String()
	}
	t.Logf("SIGKILL of %s: %s took over after %v; the store read its slots again after %s",
		victim.Addr, promoted.Addr, failover.Round(time.Millisecond), followed)
	led.Report(t, killed)
	for _, err := range led.wrong {
		t.Errorf("a failure during the failover that is not ErrUnavailable: %v", err)
	}

	check := s
	if follow == 0 {
		// Check the data through a client that loads the topology anew.
		t.Logf("checking the records through a new client")
		check = connect(t, opts).Store("h")
	}

	// Every acknowledged record is there, as written, and every
	// acknowledged approval with it; taken ones are gone. Records written
	// in the last instant before the kill are left out (see replicatedAt).
	var approvedLeft []string
	inWindow := 0
	for uc := range led.created {
		if onVictim(uc) && led.Unreplicated(uc, replicatedAt, killed) {
			delete(led.created, uc)
			delete(led.approved, uc)
			delete(led.taken, uc)
			inWindow++
		}
	}
	t.Logf("%d records written on the killed master after its replica had confirmed everything before (%v before the kill) are not checked",
		inWindow, killed.Sub(replicatedAt).Round(time.Microsecond))
	for uc, d := range led.created {
		got, err := check.DeviceByUserCode(ctx, uc)
		if led.taken[uc] > 0 {
			if !errors.Is(err, flow.ErrNotFound) {
				t.Errorf("record %s, whose tokens were taken, is still there: %v %+v", uc, err, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("acknowledged record %s (on the killed master: %v) after the failover: %v", uc, onVictim(uc), err)
			continue
		}
		if !bytes.Equal(got.CodeHash, d.CodeHash) || !bytes.Equal(got.SealKey, d.SealKey) || got.ClientID != d.ClientID {
			t.Errorf("record %s changed over the failover: %+v, want %+v", uc, got, d)
		}
		switch {
		case got.Status == flow.Approved:
			// (An approval that failed may still have been applied.)
			led.approved[uc] = true
			approvedLeft = append(approvedLeft, uc)
		case led.approved[uc]:
			t.Errorf("record %s (on the killed master: %v) is %v after the failover, though its approval was acknowledged",
				uc, onVictim(uc), got.Status)
		}
	}
	// Every pending one is approved now, on the new master too.
	for uc := range led.created {
		if led.taken[uc] > 0 || led.approved[uc] {
			continue
		}
		if err := approveRecord(ctx, check, uc); err != nil {
			t.Errorf("approving %s after the failover: %v", uc, err)
			continue
		}
		led.approved[uc] = true
		approvedLeft = append(approvedLeft, uc)
	}

	// Take-once after the failover: four polls of each approved record at
	// once; exactly one gets the tokens, counting those taken before.
	var polls sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 64)
	for _, uc := range approvedLeft {
		for range 4 {
			sem <- struct{}{}
			polls.Go(func() {
				defer func() { <-sem }()
				took, err := takeTokens(ctx, check, uc)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("poll of %s after the failover: %v", uc, err)
				}
				if took {
					led.taken[uc]++
				}
			})
		}
	}
	polls.Wait()
	for uc := range led.approved {
		if n := led.taken[uc]; n != 1 {
			t.Errorf("approved record %s (on the killed master: %v): tokens taken %d times, want exactly once", uc, onVictim(uc), n)
		}
	}
	for uc, n := range led.taken {
		if !led.approved[uc] {
			t.Errorf("record %s: tokens taken %d times without an acknowledged approval", uc, n)
		}
	}
	t.Logf("%d records acknowledged (%d during the chaos), each approved and its tokens taken once; %v in all",
		len(led.created), len(led.created)-records, time.Since(start).Round(time.Millisecond))
}
