// Package testproxy is a TCP proxy for tests that put a network fault
// between a client and a real server: a cut of every connection, or one
// command that reaches the server but whose reply never comes back.
package testproxy

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards loopback connections to a target.
type Proxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	marker   []byte
	loseNext bool // the next marked command loses its reply
	wg       sync.WaitGroup

	marked atomic.Int32
}

// Start listens on a loopback port and forwards to target until the test
// ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.addr }

// LoseReplyAfter arms the proxy: the next command whose bytes contain
// marker reaches the target, which is given time to run it, and then its
// client's connection closes before the reply. That is the failure after
// which a client may send a command again. From now on Marked counts the
// commands carrying marker that reached the target.
func (p *Proxy) LoseReplyAfter(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.loseNext = []byte(marker), true
	p.marked.Store(0)
}

// Marked is how many commands carrying LoseReplyAfter's marker reached the
// target since it was called.
func (p *Proxy) Marked() int { return int(p.marked.Load()) }

// Cut closes the listener and every open connection: new connections are
// refused and requests in flight lose their connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Restore listens on the same address again.
func (p *Proxy) Restore(t testing.TB) {
	t.Helper()
	var err error
	for try := 0; try < 50; try++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.forward(c) }()
		}
	}()
}

// track registers c, or closes it and reports false when the proxy is cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// observe counts a chunk bound for the target and says whether its reply
// is to be lost.
func (p *Proxy) observe(chunk []byte) (loseReply bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil || !bytes.Contains(chunk, p.marker) {
		return false
	}
	p.marked.Add(1)
	loseReply, p.loseNext = p.loseNext, false
	return loseReply
}

func (p *Proxy) forward(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var replyLost atomic.Bool
	done := make(chan struct{}, 2)
	go func() { // replies
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && !replyLost.Load() {
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // commands
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				lose := p.observe(buf[:n])
				if lose {
					replyLost.Store(true) // before the target can answer
				}
				if _, err := server.Write(buf[:n]); err != nil {
					return
				}
				if lose {
					time.Sleep(100 * time.Millisecond) // the target runs it
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	<-done // either side ending ends both
}
