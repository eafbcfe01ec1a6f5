// Command livecodes measures the Badger store with many live codes: it
// fills a store with n pending codes through the store API (as fast as the
// store takes them), then polls random ones for a while as the token
// endpoint does (read, check, write LastPoll back), and reports throughput,
// latency, memory and disk. Run it at two sizes to see whether a poll gets
// dearer as codes pile up:
//
//	go run ./bench/livecodes -n 10000
//	go run ./bench/livecodes -n 1000000
//
// With -reclaim it then waits until every code has expired and shows the
// store giving its disk and memory back (docs/performance.md).
//
// It measures this process: the store and the Go runtime, not Caddy's own
// ~40 MiB (see bench/run.sh's baseline row for that).
package main

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

func main() {
	n := flag.Int("n", 100_000, "live codes to hold")
	workers := flag.Int("c", 8, "concurrent writers and pollers")
	pollFor := flag.Duration("poll", 5*time.Second, "how long to poll")
	dir := flag.String("dir", "", "database folder (default: a new temporary one, removed at the end)")
	ttl := flag.Duration("ttl", 10*time.Minute, "lifetime of the codes (expires_in)")
	reclaim := flag.Bool("reclaim", false, "after polling, wait for every code to expire and show what is given back")
	grace := flag.Duration("grace", badgerstore.DefaultGrace, "how long the store keeps expired records")
	noClock := flag.Bool("noclock", false, "badgerstore.Options.NoPollClock: every poll reads and writes Badger")
	client := flag.String("client", "tv", "client_id of the codes")
	interval := flag.Duration("interval", 5*time.Second, "polling interval of the codes")
	codesOut := flag.String("codes", "", "write the device codes of the first -codes-n codes to this file, one a line (for wrk: bench/scenario.lua)")
	codesN := flag.Int("codes-n", 200_000, "how many device codes -codes writes")
	settle := flag.Bool("settle", true, "before polling, wait until the fill's compactions are done")
	levels := flag.Bool("levels", false, "after polling, print the tables on each level of Badger's tree")
	first := flag.Bool("first", true, "before the timed polls, poll every code once, as its device does on its first poll")
	quiet := flag.Duration("quiet", 0, "badgerstore.Options.QuietFlatten with -reclaim (default: ttl + grace + 2s, so that\n"+
		"everything has expired when the store compacts, as 30 minutes ensures in production)")
	gcEvery := flag.Duration("gc", 2*time.Second, "badgerstore.Options.GCInterval (with -reclaim)")
	traffic := flag.Bool("traffic", true, "with -reclaim, end with 200k new codes, as traffic goes on")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the polls to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile after the polls to this file")
	flag.Parse()
	log.SetFlags(0)

	if *dir == "" {
		d, err := os.MkdirTemp("", "livecodes-*")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	opts := badgerstore.Options{Dir: *dir, Grace: *grace, NoPollClock: *noClock}
	if *reclaim {
		if *quiet == 0 {
			*quiet = *ttl + *grace + 2*time.Second
		}
		opts.GCInterval, opts.QuietFlatten = *gcEvery, *quiet
	}
	store, err := badgerstore.Open(opts)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()

	report("open", *dir)

	// ---- fill ----
	// Code i's ID is made from i alone, so that the tool holds no list of
	// a million IDs, which would count as the store's memory: its user
	// code is i scrambled over the base20 codes (distinct for distinct
	// i), and its hash (flow.UserCodeID) 128 bits mixed from i. The store
	// takes IDs as they come. The codes written for Caddy (-codes) are
	// real ones, made as the device endpoint makes them under the store's
	// server secret so that Caddy takes them, and their records are kept
	// under their real IDs; the timed polls leave them out, as making
	// their IDs again (an HMAC and two hashes) would cost this tool more
	// than the store's poll.
	secret, err := store.Secret(ctx, flow.ServerSecret, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := crand.Read(b)
		return b, err
	})
	if err != nil {
		log.Fatal(err)
	}
	codes := flow.NewDeviceCodes(secret)
	userCode := func(i int) string { return base20(uint64(i)*2654435761 + 12345) }
	realCodes := 0
	if *codesOut != "" {
		realCodes = min(*codesN, *n)
	}
	code := func(i int) (code, id string) {
		h := sha256.Sum256([]byte("livecodes-" + strconv.Itoa(i)))
		return codes.NewFrom([24]byte(h[:24]), userCode(i))
	}
	id := func(i int) string {
		if i < realCodes {
			_, id := code(i)
			return id
		}
		var hash [16]byte
		binary.LittleEndian.PutUint64(hash[:], mix(uint64(i)))
		binary.LittleEndian.PutUint64(hash[8:], mix(^uint64(i)))
		return flow.UserCodeID(userCode(i), hash[:])
	}
	if *codesOut != "" {
		var b strings.Builder
		for i := range min(*codesN, *n) {
			c, _ := code(i)
			b.WriteString(c + "\n")
		}
		if err := os.WriteFile(*codesOut, []byte(b.String()), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	expires := start.Add(*ttl)
	var next atomic.Int64
	parallel(*workers, func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= *n {
				return
			}
			if err := store.CreateDevice(ctx, newDevice(id(i), userCode(i), *client, *interval, expires)); err != nil {
				log.Fatal(err)
			}
		}
	})
	took := time.Since(start)
	fmt.Printf("filled %d codes in %s (%.0f/s)\n", *n, took.Round(time.Millisecond), float64(*n)/took.Seconds())
	report("fill", *dir)

	// ---- settle ----
	// Filling at full speed leaves Badger compacting for a while; that is
	// the cost of issuing, not of polling, so the polls wait for it.
	if *settle {
		t0 := time.Now()
		for idle := 0; idle < 2 && time.Since(t0) < time.Minute; {
			c0 := cpuTime()
			time.Sleep(500 * time.Millisecond)
			if cpuTime()-c0 < 25*time.Millisecond { // under 5% of a core
				idle++
			} else {
				idle = 0
			}
		}
		fmt.Printf("compactions settled in %s\n", time.Since(t0).Round(100*time.Millisecond))
		report("settled", *dir)
	}

	// ---- poll ----
	if *memProfile != "" {
		f, err := os.Create(*memProfile + ".fill")
		if err != nil {
			log.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	// A device's first poll reads its record from Badger (and in
	// production stores its seal key); from then on its polls are
	// answered from the poll clock. Devices poll every few seconds for
	// minutes, so the timed polls below are what nearly all polls cost;
	// the first ones are timed apart.
	pollOnce := func(id string) error {
		t0 := time.Now()
		return store.UpdateDevice(ctx, id, func(d *flow.Device) (flow.Verdict, error) {
			if d == nil || d.Status != flow.Pending {
				return flow.Keep, errors.New("a live code is missing")
			}
			d.LastPoll = t0
			return flow.Save, nil
		})
	}
	if *first {
		cpu0, t0 := cpuTime(), time.Now()
		next.Store(0)
		parallel(*workers, func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				if err := pollOnce(id(i)); err != nil {
					log.Fatal(err)
				}
			}
		})
		fmt.Printf("first polls of %d codes in %s: CPU %.1f µs/poll\n", *n, time.Since(t0).Round(time.Millisecond),
			float64((cpuTime()-cpu0).Microseconds())/float64(*n))
		report("first polls", *dir)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
	}
	lat := make([]histogram, *workers)
	polled := realCodes // the timed polls leave the real codes out (see the fill)
	if polled == *n {
		polled = 0
	}
	cpu0 := cpuTime()
	deadline := time.Now().Add(*pollFor)
	var w atomic.Int64
	parallel(*workers, func() {
		me := int(w.Add(1) - 1)
		rnd := rand.New(rand.NewPCG(uint64(me), uint64(time.Now().UnixNano())))
		for time.Now().Before(deadline) {
			id := id(polled + rnd.IntN(*n-polled))
			t0 := time.Now()
			if err := pollOnce(id); err != nil {
				log.Fatal(err)
			}
			lat[me].add(time.Since(t0))
		}
	})
	cpuUsed := cpuTime() - cpu0
	lastWrite := time.Now()
	pprof.StopCPUProfile()
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	var all histogram
	for _, h := range lat {
		all.merge(&h)
	}
	// CPU time per poll (the whole process: the store's compactions
	// included) is the figure to compare across sizes: it does not depend
	// on what else the machine runs, as polls/s does.
	fmt.Printf("polled %d times in %s by %d workers: %.0f polls/s, p50 %s, p99 %s, CPU %.2f µs/poll\n", all.n, *pollFor, *workers,
		float64(all.n)/pollFor.Seconds(), all.percentile(50), all.percentile(99),
		float64(cpuUsed.Nanoseconds())/1000/float64(all.n))
	report("polls", *dir)
	if *levels {
		for _, l := range store.DB().Levels() {
			fmt.Printf("   L%d tables %d size %d MiB target %d MiB\n", l.Level, l.NumTables, l.Size>>20, l.TargetSize>>20)
		}
	}

	if !*reclaim {
		return
	}
	// ---- expiry ----
	gone := time.Until(expires.Add(*grace)) + 2*time.Second
	fmt.Printf("waiting %s for every code to expire\n", gone.Round(time.Second))
	time.Sleep(gone)
	report("after expiry", *dir)
	expiredDisk := du(*dir)
	// The store compacts itself once nothing has been written for
	// -quiet (30 minutes in production; shorter here to see it happen).
	// The quiet spell began with the last poll.
	wait := time.Until(lastWrite.Add(*quiet + 2**gcEvery + time.Second))
	fmt.Printf("waiting %s more without writes, for the store to compact\n", wait.Round(time.Second))
	time.Sleep(wait)
	// On a busy machine the compaction may still be running: wait until
	// the disk has moved and then held still for 2 s (at most 20 s more).
	before, still := du(*dir), 0
	for t0 := time.Now(); time.Since(t0) < 20*time.Second && (before == expiredDisk || still < 4); {
		time.Sleep(500 * time.Millisecond)
		now := du(*dir)
		if now == before {
			still++
		} else {
			still = 0
		}
		before = now
	}
	report("after the quiet compaction", *dir)
	if !*traffic {
		return
	}
	// A server keeps getting requests: new codes flow through the memtable
	// and compactions drop what has expired on their way.
	fresh := min(*n, 200_000)
	next.Store(0)
	parallel(*workers, func() {
		for next.Add(1) <= int64(fresh) {
			uc := flow.Base20.New()
			_, id := codes.New(uc)
			if err := store.CreateDevice(ctx, newDevice(id, uc, *client, *interval, time.Now().Add(time.Minute))); err != nil && !errors.Is(err, flow.ErrUserCodeTaken) {
				log.Fatal(err)
			}
		}
	})
	time.Sleep(5 * time.Second)
	report(fmt.Sprintf("after %d new codes more (traffic goes on)", fresh), *dir)
}

// newDevice is a pending code like the one the device endpoint creates.
// Its seal key is random bytes: the store cannot tell, and deriving 1M
// X25519 keys would time the key derivation, not the store.
func newDevice(id, userCode, client string, interval time.Duration, expires time.Time) *flow.Device {
	key := make([]byte, 32)
	crand.Read(key)
	return &flow.Device{
		ID:        id,
		UserCode:  userCode,
		ClientID:  client,
		Scope:     "openid profile",
		Status:    flow.Pending,
		CreatedAt: time.Now(),
		ExpiresAt: expires,
		Interval:  interval,
		SealKey:   key,
	}
}

// mix is splitmix64's finalizer: distinct inputs, distinct outputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// base20 writes v (mod 20^8) as a base20 user code: a bijection there.
func base20(v uint64) string {
	var b [8]byte
	for i := range b {
		b[i] = flow.Base20.Alphabet[v%20]
		v /= 20
	}
	return string(b[:])
}

func parallel(n int, f func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
}

// peaks follows the highest anonymous and file-backed RSS since the last
// report: VmHWM has only their sum, and the file-backed part (Badger's
// memory-mapped tables, which the kernel may drop at any time) grows with
// the data while the anonymous part should not.
var peaks struct {
	sync.Mutex
	anon, file int64
}

func init() {
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			st := procStatus()
			peaks.Lock()
			peaks.anon = max(peaks.anon, st["RssAnon"])
			peaks.file = max(peaks.file, st["RssFile"])
			peaks.Unlock()
		}
	}()
}

// report prints the process's memory since the last report, now and at
// its peak, and the database's disk use.
func report(when, dir string) {
	st := procStatus()
	peaks.Lock()
	anon, file := max(peaks.anon, st["RssAnon"]), max(peaks.file, st["RssFile"])
	peaks.anon, peaks.file = 0, 0
	peaks.Unlock()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st = procStatus()
	fmt.Printf("  %-34s peak RSS %4d MiB (anon %d + file %d); now RSS %d MiB (anon %d + file %d), Go heap %d MiB; disk %d MiB\n",
		when, st["VmHWM"]>>10, anon>>10, file>>10, st["VmRSS"]>>10, st["RssAnon"]>>10, st["RssFile"]>>10, ms.HeapInuse>>20, du(dir)>>20)
	resetPeak()
}

// procStatus reads the kB figures of /proc/self/status.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		var k string
		var v int64
		if _, err := fmt.Sscanf(strings.Replace(line, ":", " ", 1), "%s %d", &k, &v); err == nil {
			out[k] = v
		}
	}
	return out
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeak makes VmHWM start again from the current RSS.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// du is the disk the folder takes (allocated blocks, as du(1) counts:
// Badger's files are sparse until written).
func du(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					total += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return total
}

// histogram counts latencies in buckets 5% apart (so that recording
// millions of polls costs no memory to speak of).
type histogram struct {
	buckets [500]int64
	n       int64
}

const bucketsPerE = 20 // buckets per factor of e: 5% apart

func (h *histogram) add(d time.Duration) {
	i := 0
	if d > 1 {
		i = min(int(math.Log(float64(d))*bucketsPerE), len(h.buckets)-1)
	}
	h.buckets[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	h.n += o.n
}

// percentile is the upper bound of the bucket holding the p-th percentile.
func (h *histogram) percentile(p float64) time.Duration {
	want := int64(math.Ceil(float64(h.n) * p / 100))
	var seen int64
	for i, c := range h.buckets {
		seen += c
		if seen >= want {
			return time.Duration(math.Exp(float64(i+1) / bucketsPerE)).Round(time.Microsecond)
		}
	}
	return 0
}
