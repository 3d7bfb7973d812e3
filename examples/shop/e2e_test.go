package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/paymux/paymux/examples/shop/app"
)

const chromiumPath = "/usr/bin/chromium"

// TestBrowserCheckout drives the real page in headless Chromium: sign in,
// add the sneaker to the cart, check out, and see the order become paid
// over the live status stream.
func TestBrowserCheckout(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "headless browser test needs Debian's chromium at " + chromiumPath + " (apt-get install chromium)"
		if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{Store: "memory", Dev: true, BcryptCost: bcrypt.MinCost,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(ctx)
	srv := httptest.NewServer(a.Handler) // 127.0.0.1: Dev relaxes Secure cookies there only
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(sctx)
	})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first run starts the browser and must not carry a time-out.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}
	shot := func() {
		if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(os.TempDir(), "shop.png"), png, 0o644)
		}
	}
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			shot()
			t.Fatalf("%s: %v (page message %q, order status %q)", what, err, text("#message"), text("#order-status"))
		}
	}
	step("open the shop", chromedp.Navigate(srv.URL+"/?c=drop-nova"), chromedp.WaitVisible(css("#email")))
	step("sign in",
		chromedp.SetValue(css("#email"), "ana@example.com"),
		chromedp.SetValue(css("#password"), "drop-2026"),
		chromedp.Click(css("#signin")),
		chromedp.WaitVisible(css("#who"))) // the page reloads signed in
	who := text("#who")
	step("add the sneaker", chromedp.Click(css("#add-nova-sneaker")), chromedp.WaitVisible(css("#cart li")))
	cart := text("#cart")
	step("check out and see it paid", chromedp.Click(css("#checkout")), chromedp.WaitVisible(css(`#order-status[data-status="paid"]`)))
	status, detail := text("#order-status"), text("#order-detail")
	step("see the history", chromedp.WaitVisible(css("#history li")))
	// The page refreshes the stock once the order settles.
	for deadline := time.Now().Add(10 * time.Second); text("#stock-nova-sneaker") != "499"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			shot()
			t.Fatalf("stock shows %s after one sale, want 499", text("#stock-nova-sneaker"))
		}
	}
	shot()
	if who != "ana@example.com" || !strings.Contains(cart, "nova-sneaker") || status != "paid" || !strings.Contains(detail, "189.00 EUR") {
		t.Fatalf("page shows who %q, cart %q, status %q, detail %q", who, cart, status, detail)
	}
}
