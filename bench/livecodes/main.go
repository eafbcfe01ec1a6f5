// Command livecodes measures the Badger store with many live codes: it
// fills a store with n pending codes through the store API (as fast as the
// store takes them), polls each once (a device's first poll), then polls
// random ones for a while as the token endpoint does (read, check, save
// LastPoll), and reports throughput, CPU, latency, memory and disk. Run it
// at two sizes to see whether a poll gets dearer as codes pile up:
//
//	go run ./bench/livecodes -n 10000
//	go run ./bench/livecodes -n 1000000
//
// With -writes every timed poll also changes the record, so that it is
// written to Badger as a slow_down is: what every pending poll would cost
// without the store's poll memory. With -reclaim it then waits until
// every code has expired, and then for 200k new codes (a server's traffic
// goes on), and shows what the store gives back: Badger drops expired
// records as the compactions that new writes cause rewrite their tables.
//
// It measures this process: the store and the Go runtime, not Caddy's own
// ~40 MiB (see bench/run.sh's baseline row for that).
package main

import (
	"context"
	crand "crypto/rand"
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

func main() {
	n := flag.Int("n", 100_000, "live codes to hold")
	workers := flag.Int("c", 8, "concurrent writers and pollers")
	pollFor := flag.Duration("poll", 5*time.Second, "how long to poll")
	dir := flag.String("dir", "", "database folder (default: a new temporary one, removed at the end)")
	namespace := flag.String("namespace", "livecodes", "the store's namespace (with -codes: the one Caddy gives the handler that is to take the codes)")
	ttl := flag.Duration("ttl", 10*time.Minute, "lifetime of the codes (expires_in)")
	reclaim := flag.Bool("reclaim", false, "after polling, wait for every code to expire and show what is given back")
	grace := flag.Duration("grace", badgerstore.DefaultGrace, "how long the store keeps expired records")
	writes := flag.Bool("writes", false, "every timed poll also changes the record, which is then written to Badger")
	client := flag.String("client", "tv", "client_id of the codes")
	interval := flag.Duration("interval", 5*time.Second, "polling interval of the codes")
	codesOut := flag.String("codes", "", "write the device codes of the first -codes-n codes to this file, one a line (for wrk: bench/scenario.lua)")
	codesN := flag.Int("codes-n", 200_000, "how many device codes -codes writes")
	settle := flag.Bool("settle", true, "before polling, wait until the fill's compactions are done")
	levels := flag.Bool("levels", false, "after polling, print the tables on each level of Badger's tree")
	first := flag.Bool("first", true, "before the timed polls, poll every code once, as its device does on its first poll")
	gcEvery := flag.Duration("gc", 0, "badgerstore.Options.GCInterval (0: the default)")
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
	db, err := badgerstore.Open(badgerstore.Options{Dir: *dir, Grace: *grace, GCInterval: *gcEvery})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := db.Store(*namespace)
	ctx := context.Background()

	report("open", *dir)

	// ---- fill ----
	// Code i is made from i alone, so that the tool holds no list of a
	// million codes, which would count as the store's memory: its user
	// code is i scrambled over the base20 codes (distinct for distinct
	// i), its code hash 128 bits mixed from i. The codes written for
	// Caddy (-codes) are real ones, made as the device endpoint makes
	// them under the namespace's server secret, so that Caddy takes them.
	secret, err := store.Secret(ctx, flow.ServerSecret, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := crand.Read(b)
		return b, err
	})
	if err != nil {
		log.Fatal(err)
	}
	deviceCodes := codes.NewDeviceCodes(secret)
	userCode := func(i int) string { return base20(uint64(i)*2654435761 + 12345) }
	realCodes := 0
	if *codesOut != "" {
		realCodes = min(*codesN, *n)
	}
	realOut := make([]string, realCodes)
	codeHash := func(i int) []byte {
		if i < realCodes {
			code, hash := deviceCodes.New(userCode(i))
			realOut[i] = code
			return hash
		}
		hash := make([]byte, 16)
		binary.LittleEndian.PutUint64(hash, mix(uint64(i)))
		binary.LittleEndian.PutUint64(hash[8:], mix(^uint64(i)))
		return hash
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
			if err := store.CreateDevice(ctx, newDevice(userCode(i), codeHash(i), *client, *interval, expires)); err != nil {
				log.Fatal(err)
			}
		}
	})
	took := time.Since(start)
	fmt.Printf("filled %d codes in %s (%.0f/s)\n", *n, took.Round(time.Millisecond), float64(*n)/took.Seconds())
	if *codesOut != "" {
		if err := os.WriteFile(*codesOut, []byte(strings.Join(realOut, "\n")+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
		realOut = nil
	}
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
	// A pending poll as the token endpoint makes it: the record must be
	// there and pending, and the poll time is saved. With -writes, the
	// record changes too (as the interval does on slow_down).
	pollOnce := func(userCode string, write bool) error {
		now := time.Now()
		return store.UpdateDevice(ctx, userCode, func(d *flow.Device) (flow.Verdict, error) {
			if d == nil || d.Status != flow.Pending {
				return flow.Keep, errors.New("a live code is missing")
			}
			d.LastPoll = now
			if write {
				d.Interval ^= 1
			}
			return flow.Save, nil
		})
	}
	// Each device's first poll puts it in the poll memory; devices poll
	// for minutes, so the timed polls after are what nearly all polls
	// cost, and the first ones are timed apart.
	if *first {
		cpu0, t0 := cpuTime(), time.Now()
		next.Store(0)
		parallel(*workers, func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				if err := pollOnce(userCode(i), false); err != nil {
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
	cpu0 := cpuTime()
	deadline := time.Now().Add(*pollFor)
	var w atomic.Int64
	parallel(*workers, func() {
		me := int(w.Add(1) - 1)
		rnd := rand.New(rand.NewPCG(uint64(me), uint64(time.Now().UnixNano())))
		for time.Now().Before(deadline) {
			uc := userCode(rnd.IntN(*n))
			t0 := time.Now()
			if err := pollOnce(uc, *writes); err != nil {
				log.Fatal(err)
			}
			lat[me].add(time.Since(t0))
		}
	})
	cpuUsed := cpuTime() - cpu0
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
		for _, l := range db.Badger().Levels() {
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
	fresh := min(*n, 200_000)
	next.Store(0)
	parallel(*workers, func() {
		for next.Add(1) <= int64(fresh) {
			uc := codes.Base20.New()
			_, hash := deviceCodes.New(uc)
			if err := store.CreateDevice(ctx, newDevice(uc, hash, *client, *interval, time.Now().Add(time.Minute))); err != nil && !errors.Is(err, flow.ErrUserCodeTaken) {
				log.Fatal(err)
			}
		}
	})
	time.Sleep(5 * time.Second)
	report(fmt.Sprintf("after %d new codes", fresh), *dir)
}

// newDevice is a pending code like the one the device endpoint creates.
// Its seal key is random bytes: the store cannot tell, and deriving 1M
// X25519 keys would time the key derivation, not the store.
func newDevice(userCode string, codeHash []byte, client string, interval time.Duration, expires time.Time) *flow.Device {
	key := make([]byte, 32)
	crand.Read(key)
	return &flow.Device{
		UserCode:  userCode,
		CodeHash:  codeHash,
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
		b[i] = codes.Base20.Alphabet[v%20]
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
