package redistest

import (
	"sync"
	"testing"
)

// Chaos runs the load of a failover test: workers started with Go run
// until Stop (called at the test's end at the latest, also when it fails
// midway) and ask Stopped whether to go on.
type Chaos struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// StartChaos returns a Chaos that stops when t ends.
func StartChaos(t testing.TB) *Chaos {
	c := &Chaos{stop: make(chan struct{})}
	t.Cleanup(c.Stop)
	return c
}

// Go runs fn as a worker.
func (c *Chaos) Go(fn func()) { c.wg.Go(fn) }

// Stopped reports whether Stop was called.
func (c *Chaos) Stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// Stop tells the workers to stop and waits for them.
func (c *Chaos) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}
