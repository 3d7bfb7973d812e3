package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
)

// The shim puts one sim.Provider behind HTTP, so that orchestrators in
// several processes charge the same simulated provider and the test can
// count its charges in one place. Only Authorize and Lookup cross the wire:
// they are all an authorisation (and its recovery) needs.

// wireError is a *paymux.ProviderError on the wire.
type wireError struct {
	Kind        string `json:"kind"`
	Code        string `json:"code,omitempty"`
	DeclineCode string `json:"decline_code,omitempty"`
	HTTPStatus  int    `json:"http_status,omitempty"`
	Message     string `json:"message,omitempty"`
	Reference   string `json:"reference,omitempty"`
}

type wireReply struct {
	Payment *paymux.ProviderPayment `json:"payment,omitempty"`
	Error   *wireError              `json:"error,omitempty"`
}

// serveShim serves p on 127.0.0.1:0 until the test ends and returns its URL.
func serveShim(tb testing.TB, p *sim.Provider) string {
	tb.Helper()
	reply := func(w http.ResponseWriter, res *paymux.ProviderPayment, err error) {
		var out wireReply
		if err != nil {
			var pe *paymux.ProviderError
			if !errors.As(err, &pe) {
				pe = &paymux.ProviderError{Kind: paymux.KindOutcomeUnknown, Message: err.Error()}
			}
			out.Error = &wireError{Kind: pe.Kind.String(), Code: pe.Code, DeclineCode: pe.DeclineCode, HTTPStatus: pe.HTTPStatus, Message: pe.Message, Reference: pe.Reference}
		} else {
			out.Payment = res
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&out)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authorize", func(w http.ResponseWriter, r *http.Request) {
		var req paymux.AuthorizeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := p.Authorize(r.Context(), &req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /lookup", func(w http.ResponseWriter, r *http.Request) {
		var req paymux.LookupRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := p.Lookup(r.Context(), &req)
		reply(w, res, err)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// shimClient is the paymux.Provider that calls a shim.
type shimClient struct {
	name string
	url  string
	hc   *http.Client
}

var _ paymux.Provider = (*shimClient)(nil)

func newShimClient(name, url string) *shimClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	return &shimClient{name: name, url: url, hc: &http.Client{Transport: tr}}
}

func (c *shimClient) Name() string                      { return c.name }
func (c *shimClient) Capabilities() paymux.Capabilities { return paymux.Capabilities{} }

func (c *shimClient) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	return c.call(ctx, paymux.OpAuthorize, "/authorize", req)
}

func (c *shimClient) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	return c.call(ctx, paymux.OpLookup, "/lookup", req)
}

func (c *shimClient) unimplemented(op paymux.Operation) error {
	return &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindUnimplemented, Code: "shim_unimplemented", Message: "the test shim only authorises and looks up"}
}

func (c *shimClient) Capture(context.Context, *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	return nil, c.unimplemented(paymux.OpCapture)
}

func (c *shimClient) Refund(context.Context, *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	return nil, c.unimplemented(paymux.OpRefund)
}

func (c *shimClient) Void(context.Context, *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	return nil, c.unimplemented(paymux.OpVoid)
}

func (c *shimClient) call(ctx context.Context, op paymux.Operation, path string, body any) (*paymux.ProviderPayment, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindInvalidRequest, Message: err.Error()}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(b))
	if err != nil {
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindInvalidRequest, Message: err.Error()}
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		// A refused connection never reached the provider; anything else
		// may have.
		kind := paymux.KindOutcomeUnknown
		var oe *net.OpError
		if errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &oe) && oe.Op == "dial") {
			kind = paymux.KindUnavailable
		}
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: kind, Code: "transport", Message: "shim call failed", Err: err}
	}
	defer resp.Body.Close()
	var out wireReply
	if resp.StatusCode != http.StatusOK {
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindOutcomeUnknown, HTTPStatus: resp.StatusCode, Code: "shim_status", Message: resp.Status}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "shim_decode", Message: err.Error()}
	}
	if out.Error != nil {
		kind, err := paymux.ParseKind(out.Error.Kind)
		if err != nil {
			kind = paymux.KindOutcomeUnknown
		}
		e := out.Error
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: kind, Code: e.Code, DeclineCode: e.DeclineCode, HTTPStatus: e.HTTPStatus, Message: e.Message, Reference: e.Reference}
	}
	if out.Payment == nil {
		return nil, &paymux.ProviderError{Provider: c.name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "shim_empty", Message: "empty reply"}
	}
	return out.Payment, nil
}

// countingSim is a sim.Provider that counts the Authorize calls made to it,
// in total and per paymux key (a call is counted whatever its outcome).
type countingSim struct {
	*sim.Provider
	calls atomic.Int64
	mu    sync.Mutex
	byKey map[string]int
}

func newCountingSim(cfg sim.Config) *countingSim {
	return &countingSim{Provider: sim.New(cfg), byKey: map[string]int{}}
}

func (c *countingSim) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	c.calls.Add(1)
	c.mu.Lock()
	c.byKey[req.PaymentKey]++
	c.mu.Unlock()
	return c.Provider.Authorize(ctx, req)
}

// Calls returns the number of Authorize calls so far.
func (c *countingSim) Calls() int64 { return c.calls.Load() }

// CallsFor returns the number of Authorize calls for a paymux key.
func (c *countingSim) CallsFor(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byKey[key]
}

func (c *countingSim) String() string { return fmt.Sprintf("%s: %d calls", c.Name(), c.Calls()) }
