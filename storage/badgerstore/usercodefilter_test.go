package badgerstore

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// The filter never calls a taken user code free: not for codes stored
// before the store opened, nor for codes stored since, across the
// rebuilds that many codes cause, and it does call most free codes free.
func TestUserCodeFilterKnowsEveryStoredCode(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		stored []string
	)
	create := func(s *Store, n int) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / 8 {
					d := storetest.NewDevice(time.Hour)
					err := s.CreateDevice(t.Context(), d)
					if errors.Is(err, flow.ErrUserCodeTaken) {
						continue // drawn twice: the store said so
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					stored = append(stored, d.UserCode)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	create(s, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Dir: dir}) // built from the database
	create(s, filterMinCodes*5/8)  // past a rebuild (due at half the capacity)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.codes.mu.Lock()
		builds, busy := s.codes.builds, s.codes.rebuilding
		s.codes.mu.Unlock()
		if builds >= 2 && !busy { // at Open, and once more
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d builds, rebuilding %v: the filter was not rebuilt", builds, busy)
		}
	}
	create(s, 80)
	for _, uc := range stored {
		if !s.codes.mayBeTaken(uc) {
			t.Fatalf("the filter calls the stored user code %s free", uc)
		}
	}
	falsePositives := 0
	for range 10000 {
		if s.codes.mayBeTaken(flow.Base20.New()) {
			falsePositives++
		}
	}
	if falsePositives > 300 {
		t.Errorf("%d of 10,000 free codes called taken", falsePositives)
	}
}

// A code stored while a rebuild scans is in the rebuilt filter even when
// the scan did not see it.
func TestUserCodeFilterKeepsCodesStoredDuringARebuild(t *testing.T) {
	s := open(t, Options{InMemory: true})
	s.codes.mu.Lock()
	s.codes.rebuilding = true
	s.codes.mu.Unlock()
	// Stored in Badger behind the scan's back, and reported as a batch
	// would; the scan below (a fresh view) sees only what is in Badger
	// under the user code prefix, so the aside list must carry "LATE".
	s.codes.add([]string{"LATE"})
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(userCodeKey("EARLY"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.codes.build(s.db); err != nil {
		t.Fatal(err)
	}
	for _, uc := range []string{"LATE", "EARLY"} {
		if !s.codes.mayBeTaken(uc) {
			t.Errorf("%s is missing from the rebuilt filter", uc)
		}
	}
}
