package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterTimeout bounds forming a cluster, and how long WaitFailover waits
// when given no timeout.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster: masters, each with the replicas that the
// option Replicas asks for (none by default).
type Cluster struct {
	// Nodes are every node: the masters first, in the order they were
	// started, then the replicas of the first master, those of the
	// second, and so on. A failover changes the roles (MasterOf and
	// WaitFailover know the current ones); it does not reorder Nodes.
	Nodes []*Server
	Addrs []string // host:port of every node, a seed list for cluster clients

	mu       sync.Mutex
	masterOf map[*Server]*Server // each replica's master, as last known
}

// StartCluster starts n (at least 3) cluster-enabled masters, joins them
// with redis-cli --cluster create, gives each the replicas that the option
// Replicas asks for (CLUSTER MEET, CLUSTER REPLICATE), and waits until the
// cluster is healthy: every node says cluster_state:ok and knows every
// other, and every replica is in sync with its master. Every node stops
// when the test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", n)
	}
	Require(t)
	require(t, cliBinary())
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.replicas < 0 {
		t.Fatalf("redistest: %d replicas per master", cfg.replicas)
	}
	opts = append(opts[:len(opts):len(opts)], clusterMode())
	c := &Cluster{masterOf: make(map[*Server]*Server)}
	for range n * (1 + cfg.replicas) {
		node := Start(t, opts...)
		c.Nodes = append(c.Nodes, node)
		c.Addrs = append(c.Addrs, node.Addr)
	}
	masters := c.Nodes[:n]
	for _, node := range c.Nodes {
		var err error
		if node.ID, err = Do(node.Addr, "CLUSTER", "MYID"); err != nil {
			t.Fatalf("redistest: CLUSTER MYID on %s: %v", node.Addr, err)
		}
	}
	for i, r := range c.Nodes[n:] {
		c.masterOf[r] = masters[i/cfg.replicas]
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--cluster", "create"}
	for _, m := range masters {
		args = append(args, m.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cliBinary(), args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: %s --cluster create: %v\n%s", cliBinary(), err, out)
	}
	// Each replica meets the others, then follows its master once it
	// knows it.
	for i, r := range c.Nodes[n:] {
		for _, other := range c.Nodes[:n+i] {
			if _, err := Do(r.Addr, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(other.Port)); err != nil {
				t.Fatalf("redistest: CLUSTER MEET from %s to %s: %v", r.Addr, other.Addr, err)
			}
		}
	}
	deadline := time.Now().Add(clusterTimeout)
	for _, r := range c.Nodes[n:] {
		m := c.masterOf[r]
		for {
			_, err := Do(r.Addr, "CLUSTER", "REPLICATE", m.ID)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: %s did not become a replica of %s within %v: %v", r.Addr, m.Addr, clusterTimeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	for {
		err := c.healthy()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster not healthy after %v: %v", clusterTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthy reports what is still wrong with a cluster that has just been
// formed: every node must be up.
func (c *Cluster) healthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	replicas := make(map[*Server]int)
	for _, m := range c.masterOf {
		replicas[m]++
	}
	for _, node := range c.Nodes {
		info, err := Do(node.Addr, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %v", node.Addr, err)
		}
		for field, want := range map[string]string{
			"cluster_state":       "ok",
			"cluster_slots_ok":    "16384",
			"cluster_known_nodes": strconv.Itoa(len(c.Nodes)),
		} {
			if got := infoField(info, field); got != want {
				return fmt.Errorf("%s says %s:%s, want %s", node.Addr, field, got, want)
			}
		}
		entries, err := clusterNodes(node.Addr)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.is("fail") || e.is("fail?") || e.is("handshake") || e.is("noaddr") {
				return fmt.Errorf("%s sees %s as %s", node.Addr, e.addr, strings.Join(e.flags, ","))
			}
			srv := c.byAddr(e.addr)
			if m, ok := c.masterOf[srv]; ok && (!e.is("slave") || e.master != m.ID) {
				return fmt.Errorf("%s does not yet see %s as a replica of %s", node.Addr, e.addr, m.Addr)
			}
		}
		repl, err := Do(node.Addr, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("INFO replication on %s: %v", node.Addr, err)
		}
		if _, isReplica := c.masterOf[node]; isReplica {
			if got := infoField(repl, "master_link_status"); got != "up" {
				return fmt.Errorf("replica %s: master_link_status:%s", node.Addr, got)
			}
		} else if online := strings.Count(repl, "state=online"); online != replicas[node] {
			return fmt.Errorf("master %s has %d replicas in sync, want %d", node.Addr, online, replicas[node])
		}
	}
	return nil
}

// MasterOf returns the node that serves key's hash slot as master now, as
// the first running node that answers sees it.
func (c *Cluster) MasterOf(key string) (*Server, error) {
	slot := KeySlot(key)
	var lastErr error
	for _, node := range c.Nodes {
		if !node.running() {
			continue
		}
		entries, err := clusterNodes(node.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		for _, e := range entries {
			if e.is("master") && e.serves(slot) {
				srv := c.byAddr(e.addr)
				if srv == nil {
					return nil, fmt.Errorf("slot %d is served by %s, which is not a node of this cluster", slot, e.addr)
				}
				if e.is("fail") || e.is("fail?") {
					return srv, fmt.Errorf("slot %d is served by %s, which %s sees as failing", slot, e.addr, node.Addr)
				}
				return srv, nil
			}
		}
		return nil, fmt.Errorf("%s sees no master for slot %d", node.Addr, slot)
	}
	return nil, fmt.Errorf("no running node answers CLUSTER NODES (%v)", lastErr)
}

// Slots returns the ranges of hash slots (first and last, inclusive) that
// node serves as master now, as the first running node that answers sees
// it.
func (c *Cluster) Slots(node *Server) ([][2]int, error) {
	var lastErr error
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		entries, err := clusterNodes(n.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		for _, e := range entries {
			if e.addr == node.Addr && e.is("master") {
				return e.slots, nil
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("no running node answers CLUSTER NODES (%v)", lastErr)
}

// FailOver kills master once what it has acknowledged until now has
// reached its replica, and waits for the replica to take over (20 s at
// most). Replication is asynchronous: what a master acknowledges in the
// instant before it dies may not reach its replica (Redis's documented
// behaviour, docs/multi-instance.md). Everything acknowledged before
// replicatedAt has; writes acknowledged between it and killed (a few
// milliseconds) are the ones Redis may lose.
func (c *Cluster) FailOver(t testing.TB, master *Server) (replicatedAt, killed time.Time, promoted *Server) {
	t.Helper()
	replicatedAt, err := c.Replicated(master, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	master.Kill()
	killed = time.Now()
	return replicatedAt, killed, c.WaitFailover(t, master, 20*time.Second)
}

// WaitFailover waits, at most timeout (30 s when zero), until a replica of
// the master dead has taken over: on every running node cluster_state is
// ok, all slots are served, and the slots dead had are served by one of
// its replicas. It returns that replica, the master now; dead's other
// replicas follow it, as dead does if it is restarted.
func (c *Cluster) WaitFailover(t testing.TB, dead *Server, timeout time.Duration) *Server {
	t.Helper()
	if timeout <= 0 {
		timeout = clusterTimeout
	}
	if dead.running() {
		t.Fatalf("redistest: WaitFailover: %s is still running; Kill or Stop it first", dead.Addr)
	}
	c.mu.Lock()
	var candidates []*Server
	for r, m := range c.masterOf {
		if m == dead {
			candidates = append(candidates, r)
		}
	}
	c.mu.Unlock()
	if len(candidates) == 0 {
		t.Fatalf("redistest: WaitFailover: %s has no replica to take over (start the cluster with Replicas)", dead.Addr)
	}
	deadline := time.Now().Add(timeout)
	for {
		promoted, err := c.failedOver(dead, candidates)
		if err == nil {
			c.mu.Lock()
			delete(c.masterOf, promoted)
			for _, r := range candidates {
				if r != promoted {
					c.masterOf[r] = promoted
				}
			}
			c.masterOf[dead] = promoted
			c.mu.Unlock()
			return promoted
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no replica of %s took over within %v: %v", dead.Addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failedOver returns the candidate that every running node sees serving
// slots as master, once dead serves none and the cluster is ok everywhere.
func (c *Cluster) failedOver(dead *Server, candidates []*Server) (*Server, error) {
	var promoted *Server
	for _, node := range c.Nodes {
		if !node.running() {
			continue
		}
		info, err := Do(node.Addr, "CLUSTER", "INFO")
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %v", node.Addr, err)
		}
		if state, ok := infoField(info, "cluster_state"), infoField(info, "cluster_slots_ok"); state != "ok" || ok != "16384" {
			return nil, fmt.Errorf("%s says cluster_state:%s, cluster_slots_ok:%s", node.Addr, state, ok)
		}
		entries, err := clusterNodes(node.Addr)
		if err != nil {
			return nil, err
		}
		var seen *Server
		for _, e := range entries {
			if len(e.slots) == 0 {
				continue
			}
			srv := c.byAddr(e.addr)
			if srv == dead {
				return nil, fmt.Errorf("%s still sees %s serving slots", node.Addr, dead.Addr)
			}
			if slices.Contains(candidates, srv) && e.is("master") {
				seen = srv
			}
		}
		if seen == nil {
			return nil, fmt.Errorf("%s sees no replica of %s as master", node.Addr, dead.Addr)
		}
		if promoted != nil && seen != promoted {
			return nil, fmt.Errorf("the nodes disagree on who took over from %s: %s and %s", dead.Addr, promoted.Addr, seen.Addr)
		}
		promoted = seen
	}
	if promoted == nil {
		return nil, fmt.Errorf("no node is running")
	}
	return promoted, nil
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id, addr string // addr without the bus port
	flags    []string
	master   string // the master's ID for a replica, "-" for a master
	slots    [][2]int
}

func (e nodeLine) is(flag string) bool { return slices.Contains(e.flags, flag) }

func (e nodeLine) serves(slot int) bool {
	for _, r := range e.slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// clusterNodes reads CLUSTER NODES from the node at addr.
func clusterNodes(addr string) ([]nodeLine, error) {
	out, err := Do(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %v", addr, err)
	}
	var entries []nodeLine
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES on %s: bad line %q", addr, line)
		}
		e := nodeLine{id: f[0], addr: f[1], flags: strings.Split(f[2], ","), master: f[3]}
		if i := strings.IndexAny(e.addr, "@,"); i >= 0 {
			e.addr = e.addr[:i]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot on the move
			}
			lo, hi, isRange := strings.Cut(r, "-")
			a, err := strconv.Atoi(lo)
			b := a
			if err == nil && isRange {
				b, err = strconv.Atoi(hi)
			}
			if err != nil {
				return nil, fmt.Errorf("CLUSTER NODES on %s: bad slots %q", addr, r)
			}
			e.slots = append(e.slots, [2]int{a, b})
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// infoField is the value of field in the text of INFO or CLUSTER INFO.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// KeySlot is the cluster hash slot of key, as CLUSTER KEYSLOT computes it:
// the CRC16 of the key, or of its hash tag (what is between the first {
// and the next }, when that is not empty), modulo 16384.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), Redis
// Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := range len(s) {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Replicated waits, at most timeout, until every replica of master has
// received everything master had written when Replicated was called, and
// returns that moment: writes acknowledged before it survive the master's
// death. (Replication is asynchronous: a write acknowledged after it may
// be lost with the master, which is Redis's documented behaviour.)
func (c *Cluster) Replicated(master *Server, timeout time.Duration) (time.Time, error) {
	mark := time.Now()
	info, err := Do(master.Addr, "INFO", "replication")
	if err != nil {
		return mark, err
	}
	offset, err := strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64)
	if err != nil {
		return mark, fmt.Errorf("master_repl_offset of %s: %v", master.Addr, err)
	}
	nodes, err := clusterNodes(master.Addr)
	if err != nil {
		return mark, err
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Millisecond) {
		behind := ""
		for _, e := range nodes {
			if e.master != master.ID || !e.is("slave") {
				continue
			}
			info, err := Do(e.addr, "INFO", "replication")
			if err != nil {
				return mark, err
			}
			if got, _ := strconv.ParseInt(infoField(info, "slave_repl_offset"), 10, 64); got < offset {
				behind = e.addr
			}
		}
		if behind == "" {
			return mark, nil
		}
		if time.Now().After(deadline) {
			return mark, fmt.Errorf("replica %s of %s did not reach offset %d in %v", behind, master.Addr, offset, timeout)
		}
	}
}
