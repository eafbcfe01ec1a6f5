package badgerstore

import (
	"testing"
	"time"
)

// The whole tree is compacted once per quiet spell: after QuietFlatten
// without writes, and again only after writes came and went.
func TestQuietnessFlattensOncePerQuietSpell(t *testing.T) {
	const after = 30 * time.Minute
	t0 := time.Now()
	steps := []struct {
		writes uint64
		at     time.Duration
		want   bool
	}{
		{0, 0, false},                           // first look
		{0, 10 * time.Minute, false},            // quiet, not long enough
		{5, 20 * time.Minute, false},            // writes: the spell starts again
		{5, 45 * time.Minute, false},            // 25 minutes quiet
		{5, 50 * time.Minute, true},             // 30 minutes quiet
		{5, 55 * time.Minute, false},            // done for this spell
		{5, 5 * time.Hour, false},               // still the same spell
		{6, 5*time.Hour + time.Minute, false},   // a write
		{6, 5*time.Hour + 31*time.Minute, true}, // the next spell
	}
	var q quietness
	for _, s := range steps {
		if got := q.due(s.writes, t0.Add(s.at), after); got != s.want {
			t.Errorf("writes %d at %v: due = %v, want %v", s.writes, s.at, got, s.want)
		}
	}
	var never quietness
	for _, at := range []time.Duration{0, time.Hour, 10 * time.Hour} {
		if never.due(0, t0.Add(at), -1) {
			t.Errorf("QuietFlatten < 0 flattened at %v", at)
		}
	}
}
