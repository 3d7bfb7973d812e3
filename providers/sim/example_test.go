package sim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
)

// The test token decides the outcome, as a test card number would.
func Example() {
	ctx := context.Background()
	p := sim.New(sim.Config{Name: "sim-a"})

	for _, token := range []string{sim.TokenApprove, sim.TokenInsufficientFunds, sim.TokenThreeDS} {
		res, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
			PaymentKey:  "order-" + token,
			ProviderKey: "order-" + token + "-attempt-1",
			Amount:      paymux.NewMoney(4999, "EUR"),
			Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: token},
			Capture:     paymux.CaptureManual,
		})
		var pe *paymux.ProviderError
		switch {
		case errors.As(err, &pe):
			fmt.Printf("%s: %s (%s)\n", token, pe.Kind, pe.DeclineCode)
		case err != nil:
			fmt.Println(token, err)
		default:
			fmt.Printf("%s: %s\n", token, res.Status)
		}
	}
	fmt.Println("charges:", p.TotalCharges())
	// Output:
	// sim_ok: authorized
	// sim_decline_insufficient: soft_decline (insufficient_funds)
	// sim_3ds: requires_action
	// charges: 1
}

// A time-out after commit: the money moved but the answer was lost. Lookup
// by the attempt's provider key finds it, and a retry with the same key
// replays it instead of charging again.
func Example_timeoutAfterCommit() {
	ctx := context.Background()
	p := sim.New(sim.Config{})
	p.Faults().Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})

	req := &paymux.AuthorizeRequest{
		PaymentKey: "order-1001", ProviderKey: "order-1001-attempt-1",
		Amount: paymux.NewMoney(4999, "EUR"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
	}
	_, err := p.Authorize(ctx, req)
	fmt.Println("outcome unknown:", errors.Is(err, paymux.ErrOutcomeUnknown))

	found, _ := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey})
	fmt.Println("lookup:", found.Status)

	again, _ := p.Authorize(ctx, req)
	fmt.Println("same payment:", again.Reference == found.Reference, "charges:", p.Charges("order-1001"))
	// Output:
	// outcome unknown: true
	// lookup: captured
	// same payment: true charges: 1
}

// Signed webhooks: the sim sends one per state change through OnEvent, and
// SignWebhook signs bodies for a shop's own tests.
func Example_webhooks() {
	ctx := context.Background()
	secret := paymux.Secret("simsec_example")
	var sent [][]byte
	var headers []http.Header
	p := sim.New(sim.Config{
		WebhookSecret: secret,
		OnEvent: func(h http.Header, body []byte) {
			headers, sent = append(headers, h), append(sent, body)
		},
	})
	_, _ = p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: "order-1", ProviderKey: "order-1-attempt-1",
		Amount: paymux.NewMoney(1500, "JPY"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
	})
	for i, body := range sent {
		evs, err := p.ParseWebhook(ctx, headers[i], body)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(evs[0].Type, evs[0].Amount)
	}

	// A body signed with another secret, or too long ago, is refused.
	forged := sim.SignWebhook("simsec_guess", sent[0], time.Now())
	_, err := p.ParseWebhook(ctx, forged, sent[0])
	fmt.Println(errors.Is(err, paymux.ErrWebhookBadSignature))
	old := sim.SignWebhook(secret, sent[0], time.Now().Add(-time.Hour))
	_, err = p.ParseWebhook(ctx, old, sent[0])
	fmt.Println(errors.Is(err, paymux.ErrWebhookTooOld))
	// Output:
	// authorized 1500 JPY
	// captured 1500 JPY
	// true
	// true
}
