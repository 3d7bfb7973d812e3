package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// The multi-process test: two orchestrators, each in its own process (the
// test binary run again as TestHelperProcess), share one store and one
// provider. The parent serves a sim provider behind an HTTP shim and fires
// every authorisation 4 times at once, twice at each child. The provider
// must see exactly one charge per key.

// Environment of a child process.
const (
	envChild  = "PAYMUX_IT_CHILD"  // "redis" or "postgres": run as a child
	envShim   = "PAYMUX_IT_SHIM"   // URL of the provider shim
	envPrefix = "PAYMUX_IT_PREFIX" // store key or table prefix
)

// childReply is a child's answer to one authorisation.
type childReply struct {
	Outcome string `json:"outcome"` // "ok", "in_progress" or "error"
	Status  string `json:"status,omitempty"`
	Error   string `json:"error,omitempty"`
}

// TestHelperProcess is not a test: it is the child orchestrator process of
// TestMultiProcess*, and returns at once when run as a test.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envChild)
	if role == "" {
		return
	}
	if err := runChild(role); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// runChild serves POST /authorize?key=K with an orchestrator on the shared
// store until its stdin closes. Its first line on stdout is its address.
func runChild(role string) error {
	prefix, shim := os.Getenv(envPrefix), os.Getenv(envShim)
	var st paymux.Store
	switch role {
	case "redis":
		opts := &redis.Options{Addr: "127.0.0.1:6379"}
		if u := os.Getenv(envRedis); u != "" {
			var err error
			if opts, err = redis.ParseURL(u); err != nil {
				return err
			}
		}
		opts.PoolSize = 80
		c := redis.NewClient(opts)
		defer c.Close()
		st = redisstore.New(c, redisstore.Options{Prefix: prefix})
	case "postgres":
		dsn, _ := serverDSN(sqlstore.Postgres)
		db, err := sqlstore.OpenDB(sqlstore.Postgres, dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(24)
		s, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres, TablePrefix: prefix})
		if err != nil {
			return err
		}
		st = s
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{newShimClient(sim.DefaultName, shim)},
		Store:     st,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authorize", func(w http.ResponseWriter, r *http.Request) {
		p, err := o.Authorize(r.Context(), cardRequest(r.URL.Query().Get("key")))
		var rep childReply
		switch {
		case err == nil:
			rep = childReply{Outcome: "ok", Status: string(p.Status)}
		case errors.Is(err, paymux.ErrInProgress):
			rep = childReply{Outcome: "in_progress"}
		default:
			rep = childReply{Outcome: "error", Error: err.Error()}
		}
		_ = json.NewEncoder(w).Encode(&rep)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// child is a running child process.
type child struct {
	addr   string
	stderr *bytes.Buffer
}

// startChild runs the test binary as a child orchestrator and stops it when
// the test ends.
func startChild(t *testing.T, role, shim, prefix string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envChild+"="+role, envShim+"="+shim, envPrefix+"="+prefix)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{stderr: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("child %s: %v; stderr:\n%s", role, err, c.stderr)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("child %s did not stop; killed", role)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LISTEN ") {
		t.Fatalf("child %s did not start: %q %v; stderr:\n%s", role, line, err, c.stderr)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	c.addr = strings.TrimSpace(strings.TrimPrefix(line, "LISTEN "))
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestMultiProcessRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	runMultiProcess(t, "redis", prefix, redisstore.New(c, redisstore.Options{Prefix: prefix}))
}

func TestMultiProcessPostgres(t *testing.T) {
	t.Parallel()
	db := sqlDB(t, sqlstore.Postgres, nil)
	st, prefix := sqlStore(t, db, sqlstore.Postgres)
	runMultiProcess(t, "postgres", prefix, st)
}

// multiProcessKeys is the number of authorisations; each is sent 4 times.
const multiProcessKeys = 1000

func runMultiProcess(t *testing.T, role, prefix string, st paymux.Store) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	provider := sim.New(sim.Config{})
	shim := serveShim(t, provider)
	children := []*child{startChild(t, role, shim, prefix), startChild(t, role, shim, prefix)}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	run := randomName("")
	key := func(i int) string { return fmt.Sprintf("mp-%s-%d", run, i) }
	var ok, inProgress, failed atomic.Int64
	var firstErr sync.Once
	send := func(c *child, k string) {
		resp, err := hc.Post("http://"+c.addr+"/authorize?key="+url.QueryEscape(k), "", nil)
		if err != nil {
			failed.Add(1)
			firstErr.Do(func() { t.Errorf("post to child: %v", err) })
			return
		}
		defer resp.Body.Close()
		var rep childReply
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			failed.Add(1)
			firstErr.Do(func() { t.Errorf("child reply: %v", err) })
			return
		}
		switch rep.Outcome {
		case "ok":
			ok.Add(1)
			if rep.Status != string(paymux.StatusCaptured) {
				t.Errorf("key %s: status %s", k, rep.Status)
			}
		case "in_progress":
			inProgress.Add(1)
		default:
			failed.Add(1)
			firstErr.Do(func() { t.Errorf("key %s: %s", k, rep.Error) })
		}
	}

	// 16 workers, each firing the 4 sends of one key at once (2 per child):
	// 64 requests in flight, every key raced across both processes.
	start := time.Now()
	keys := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				var kw sync.WaitGroup
				for s := 0; s < 4; s++ {
					kw.Add(1)
					go func() { defer kw.Done(); send(children[s%2], key(i)) }()
				}
				kw.Wait()
			}
		}()
	}
	for i := 0; i < multiProcessKeys; i++ {
		keys <- i
	}
	close(keys)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%s: %d sends in %v: %d ok (first answers and replays), %d in progress, %d failed",
		role, 4*multiProcessKeys, elapsed.Round(time.Millisecond), ok.Load(), inProgress.Load(), failed.Load())

	if got := provider.TotalCharges(); got != multiProcessKeys {
		t.Errorf("provider saw %d charges, want exactly %d", got, multiProcessKeys)
	}
	if failed.Load() != 0 {
		t.Errorf("%d sends failed", failed.Load())
	}
	ctx := context.Background()
	notCaptured := 0
	for i := 0; i < multiProcessKeys; i++ {
		if n := provider.Charges(key(i)); n != 1 {
			t.Errorf("key %s: %d charges", key(i), n)
		}
		p, err := st.GetPayment(ctx, paymux.PaymentID(key(i)))
		if err != nil || p.Status != paymux.StatusCaptured {
			notCaptured++
			if notCaptured <= 5 {
				t.Errorf("key %s: payment %+v, %v", key(i), p, err)
			}
		}
	}
	if notCaptured > 0 {
		t.Errorf("%d keys did not end captured", notCaptured)
	}
}
