package badgerstore

// pollTable is one stripe's share of the poll clock (pollclock.go): an
// open-addressing hash table with linear probing from a device's
// fingerprint to its pollEntry, 24 bytes a slot and nothing else. It
// grows by a quarter when it passes 7/8 full and is rebuilt to size when
// swept, so the clock costs ~30 bytes per device that polls.
//
// Its slots live outside the Go heap (pollmemory_unix.go): the garbage
// collector lets the heap grow to twice what is live before it collects,
// so ~30 MiB of slots at a million devices would cost up to twice that at
// its peaks, though the slots hold no pointers and are never garbage.
type pollTable struct {
	slots  []pollEntry
	n      int  // slots in use
	mapped bool // slots come from mapPollSlots, not make
}

// pollEntry is a device's entry; fp 0 marks a free slot.
type pollEntry struct {
	fp    uint64
	clock uint64 // LastPoll and Retried (clockValue), or noOverlay
	meta  uint64 // expiry and what a poll checks (pollMeta)
}

// home is the slot fp's probe starts at. The low half of fp picks it (the
// high byte picks the stripe), by multiplication rather than a mask, so
// the table can have any size.
func (t *pollTable) home(fp uint64) int {
	return int(uint64(uint32(fp)) * uint64(len(t.slots)) >> 32)
}

func (t *pollTable) find(fp uint64) (slot int, found bool) {
	if len(t.slots) == 0 {
		return -1, false
	}
	for i := t.home(fp); ; {
		switch t.slots[i].fp {
		case fp:
			return i, true
		case 0:
			return i, false
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// get returns fp's entry, if it has one.
func (t *pollTable) get(fp uint64) (pollEntry, bool) {
	if t.n == 0 {
		return pollEntry{}, false
	}
	i, ok := t.find(fp)
	if !ok {
		return pollEntry{}, false
	}
	return t.slots[i], true
}

// put sets fp's entry, adding it if it is new.
func (t *pollTable) put(e pollEntry) {
	i, ok := t.find(e.fp)
	if !ok && (t.n+1)*8 > len(t.slots)*7 {
		t.resize(max(len(t.slots)*5/4, (t.n+1)*8/7+1))
		i, _ = t.find(e.fp)
	}
	if !ok {
		t.n++
	}
	t.slots[i] = e
}

// remove drops fp's entry, moving back the entries after it that would
// otherwise no longer be found (no tombstones: a removal leaves the table
// as if the entry had never been there).
func (t *pollTable) remove(fp uint64) {
	i, ok := t.find(fp)
	if !ok {
		return
	}
	for j := i; ; {
		if j++; j == len(t.slots) {
			j = 0
		}
		if t.slots[j].fp == 0 {
			break
		}
		// The entry at j may move to i only if its probe passes i: its
		// home is not cyclically within (i, j].
		h := t.home(t.slots[j].fp)
		if i <= j && i < h && h <= j || i > j && (i < h || h <= j) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = pollEntry{}
	t.n--
	if t.n == 0 {
		t.resize(0) // an idle stripe gives its memory back
	}
}

// keepOnly drops the entries keep refuses and sizes the table to the rest.
func (t *pollTable) keepOnly(keep func(pollEntry) bool) {
	kept := 0
	for _, e := range t.slots {
		if e.fp != 0 && keep(e) {
			kept++
		}
	}
	if kept == t.n {
		return
	}
	old := *t
	*t = pollTable{}
	if kept > 0 {
		t.slots, t.mapped = allocPollSlots(kept*4/3 + 1)
	}
	for _, e := range old.slots {
		if e.fp != 0 && keep(e) {
			t.put(e)
		}
	}
	old.free()
}

// resize moves the entries to a table of at least size slots.
func (t *pollTable) resize(size int) {
	old := *t
	*t = pollTable{}
	if size > 0 {
		t.slots, t.mapped = allocPollSlots(size)
	}
	for _, e := range old.slots {
		if e.fp != 0 {
			t.put(e)
		}
	}
	old.free()
}

func (t *pollTable) free() {
	if t.mapped {
		unmapPollSlots(t.slots)
	}
	*t = pollTable{}
}
