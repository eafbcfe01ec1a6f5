package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// createTogether has every device created by concurrent CreateDevice
// calls that are all queued before the first commits, so that they form
// one batch, and returns each call's error and how many transactions the
// batch took.
func createTogether(t *testing.T, s *Store, devs []*flow.Device) (errs []error, commits uint64) {
	t.Helper()
	q := &s.creates
	q.mu.Lock()
	q.busy = true // as if a leader were committing
	q.mu.Unlock()
	errs = make([]error, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() { errs[i] = s.CreateDevice(context.Background(), d) })
	}
	for {
		q.mu.Lock()
		n := len(q.pending)
		q.mu.Unlock()
		if n == len(devs) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	before := s.writes.Load()
	q.mu.Lock()
	q.pending[0].lead = true // hand over, as a leader does
	close(q.pending[0].wake)
	q.mu.Unlock()
	wg.Wait()
	return errs, s.writes.Load() - before
}

// Concurrent creates commit together, and each gets its own answer: a
// user code taken by a live device or by another record of the batch is
// refused and stores nothing; the rest are stored.
func TestCreateBatch(t *testing.T) {
	s := open(t, Options{InMemory: true})
	live := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(context.Background(), live); err != nil {
		t.Fatal(err)
	}
	devs := make([]*flow.Device, 40)
	for i := range devs {
		devs[i] = storetest.NewDevice(time.Hour)
	}
	storetest.SetUserCode(devs[5], live.UserCode)
	storetest.SetUserCode(devs[9], devs[7].UserCode) // the earlier one wins
	storetest.SetUserCode(devs[30], devs[7].UserCode)
	// The order in which the goroutines queue up is theirs; which of the
	// three with devs[7]'s code wins is the first queued.
	errs, commits := createTogether(t, s, devs)
	if commits != 1 {
		t.Errorf("%d concurrent creates took %d transactions, want 1", len(devs), commits)
	}
	winners := map[string]int{}
	for i, d := range devs {
		stored := inBadger(t, s, d.ID) != nil
		switch {
		case i == 5:
			if !errors.Is(errs[i], flow.ErrUserCodeTaken) || stored {
				t.Errorf("a live device's user code: %v, stored %v", errs[i], stored)
			}
		case d.UserCode == devs[7].UserCode:
			if errs[i] == nil {
				winners[d.UserCode]++
			} else if !errors.Is(errs[i], flow.ErrUserCodeTaken) || stored {
				t.Errorf("a user code repeated in the batch: %v, stored %v", errs[i], stored)
			}
		default:
			if errs[i] != nil || !stored {
				t.Errorf("device %d: %v, stored %v", i, errs[i], stored)
			}
		}
	}
	if winners[devs[7].UserCode] != 1 {
		t.Errorf("%d devices got the repeated user code, want 1", winners[devs[7].UserCode])
	}
	got, err := s.DeviceByUserCode(context.Background(), live.UserCode)
	if err != nil || got.ID != live.ID {
		t.Errorf("the live device's user code now leads to %+v, %v", got, err)
	}
}

// A conflict (here: another writer claims a user code the batch read as
// free, before it commits) retries the whole batch, which then refuses
// that code. (Only CreateDevice writes user codes, one batch at a time,
// so in use a read of a user code meets no conflict; the filter of user
// codes is told of the intruder's code so that the batch reads it.)
func TestCreateBatchRetriesConflicts(t *testing.T) {
	s := open(t, Options{InMemory: true})
	devs := []*flow.Device{storetest.NewDevice(time.Hour), storetest.NewDevice(time.Hour), storetest.NewDevice(time.Hour)}
	intruder := storetest.NewDevice(time.Hour)
	storetest.SetUserCode(intruder, devs[1].UserCode)
	s.codes.add([]string{intruder.UserCode})
	var once sync.Once
	testHookCreateRead = func(uc string) {
		if uc != intruder.UserCode {
			return
		}
		once.Do(func() {
			err := s.db.Update(func(txn *badger.Txn) error {
				return txn.Set(userCodeKey(uc), idRef(intruder.ID))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() { testHookCreateRead = nil })
	errs, commits := createTogether(t, s, devs)
	if commits != 1 {
		t.Errorf("batch committed %d times", commits)
	}
	for i, d := range devs {
		wantTaken := i == 1
		if taken := errors.Is(errs[i], flow.ErrUserCodeTaken); taken != wantTaken || (!taken && errs[i] != nil) {
			t.Errorf("device %d: %v, want taken %v", i, errs[i], wantTaken)
		}
		if stored := inBadger(t, s, d.ID) != nil; stored == wantTaken {
			t.Errorf("device %d stored %v", i, stored)
		}
	}
}

// A batch too big for one transaction is split, and every record stored.
func TestCreateBatchSplitsWhatIsTooBig(t *testing.T) {
	s := open(t, Options{InMemory: true})
	devs := make([]*flow.Device, 80)
	for i := range devs {
		devs[i] = storetest.NewDevice(time.Hour)
		devs[i].Sealed = bytes.Repeat([]byte{byte(i)}, 16<<10) // 80 × 16 KiB: over Badger's limit
	}
	errs, commits := createTogether(t, s, devs)
	if commits < 2 {
		t.Errorf("%d commits, want the batch split", commits)
	}
	for i, d := range devs {
		if errs[i] != nil || inBadger(t, s, d.ID) == nil {
			t.Errorf("device %d: %v", i, errs[i])
		}
	}
}
