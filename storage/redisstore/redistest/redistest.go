// Package redistest starts throw-away redis-server processes (one server or
// a small Redis Cluster, with replicas if asked) on loopback ports for
// tests.
//
// When redis-server (or, for a cluster, redis-cli) is not on PATH, the
// helpers skip the test, unless the environment variable CI is set: then
// they fail it, because CI must run these tests. REDISTEST_SERVER and
// REDISTEST_CLI name other binaries (valkey-server, valkey-cli, say).
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

func serverBinary() string {
	if b := os.Getenv("REDISTEST_SERVER"); b != "" {
		return b
	}
	return "redis-server"
}

func cliBinary() string {
	if b := os.Getenv("REDISTEST_CLI"); b != "" {
		return b
	}
	return "redis-cli"
}

// Require skips the test when redis-server is missing, or fails it when
// the environment variable CI is set.
func Require(t testing.TB) {
	t.Helper()
	require(t, serverBinary())
}

func require(t testing.TB, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found on PATH, and CI is set so this test must run: install it (apt-get install -y redis-server): %v", bin, err)
		}
		t.Skipf("%s not found on PATH; skipping (install it with apt-get install -y redis-server; with CI set this fails instead)", bin)
	}
}

// Option changes how Start runs the server.
type Option func(*config)

type config struct {
	appendOnly  bool
	cluster     bool
	replicas    int           // StartCluster: replicas per master
	nodeTimeout time.Duration // cluster-node-timeout; 0: the default
	args        []string
}

// AppendOnly turns on the append-only file with fsync on every write, so
// that data survives Stop, Kill and Restart.
func AppendOnly() Option { return func(c *config) { c.appendOnly = true } }

// Args adds command-line arguments for redis-server, e.g.
// Args("--requirepass", "secret").
func Args(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Replicas gives every master of StartCluster n replicas, so that a master
// may fail over (Server.Kill, Cluster.WaitFailover). Start ignores it.
func Replicas(n int) Option { return func(c *config) { c.replicas = n } }

// NodeTimeout sets cluster-node-timeout: how long a cluster node may not
// answer before it is taken for failed. The default is 5 s, or 1 s for a
// cluster with replicas, so that a replica takes over within a few seconds
// of its master's crash.
func NodeTimeout(d time.Duration) Option { return func(c *config) { c.nodeTimeout = d } }

func clusterMode() Option { return func(c *config) { c.cluster = true } }

func (c config) clusterNodeTimeout() time.Duration {
	switch {
	case c.nodeTimeout > 0:
		return c.nodeTimeout
	case c.replicas > 0:
		return time.Second
	}
	return 5 * time.Second
}

// Server is one redis-server process. Its data directory is a temporary
// directory of the test, kept across Stop and Restart.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0
	Port int
	Dir  string
	ID   string // the cluster node ID, for the nodes of StartCluster

	t   testing.TB
	cfg config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a redis-server on a free loopback port, waits until it
// answers PING, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	Require(t)
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{t: t, cfg: cfg, Dir: t.TempDir()}
	t.Cleanup(s.Kill)
	var lastErr error
	for range 5 { // another process may grab the port we picked
		port, err := freePort(cfg.cluster)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr + "/0"
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.Port),
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", "",
	}
	if s.cfg.appendOnly {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.cfg.cluster {
		a = append(a,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.Dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(s.cfg.clusterNodeTimeout().Milliseconds(), 10),
			// A replica may always take over, however long it has been
			// apart from its master, and a replica's first sync starts
			// at once rather than after the default 5 s.
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0",
		)
	}
	return append(a, s.cfg.args...)
}

// start runs the process and waits for PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redis-server on %s is already running", s.Addr)
	}
	logPath := filepath.Join(s.Dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(serverBinary(), s.args()...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", serverBinary(), err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := Do(s.Addr, "PING")
		if err == nil && reply == "PONG" {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited while starting: %s", s.Addr, tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s did not answer PING within %v (last: %q, %v): %s", s.Addr, startTimeout, reply, err, tail(logPath))
		}
	}
	s.cmd, s.done = cmd, done
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
// It does nothing when the server is not running.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server at once (SIGKILL), like a crash.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart starts a stopped server again on the same port and directory.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 10 { // the port may linger a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// freePort picks a loopback port that is free now; for cluster nodes the
// cluster bus port (port+10000) must be free too.
func freePort(cluster bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !cluster {
			l.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port found")
}

// Do sends one command to the server at addr on a fresh connection and
// returns the reply as text: simple strings, bulk strings and integers as
// they are, arrays joined by newlines. An error reply is returned as an
// error.
func Do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
