package app

import (
	"html/template"
	"net/http"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/order"
)

// handlePage serves the shop's one page, rendered on the server; a little
// script keeps stock, cart and order status live. "/?c=<campaign>" records
// the campaign link the buyer arrived by.
func (a *App) handlePage(w http.ResponseWriter, r *http.Request) {
	if c := r.URL.Query().Get("c"); c != "" && len(c) <= 64 {
		http.SetCookie(w, &http.Cookie{Name: order.CampaignCookie, Value: c, Path: "/", MaxAge: 7 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: !a.cfg.Dev})
	}
	a.Sessions.EnsureCSRF(w, r)
	products, err := a.Orders.Products(r.Context())
	if err != nil {
		http.Error(w, "the shop is busy; try again", http.StatusServiceUnavailable)
		return
	}
	data := map[string]any{"Products": products, "Now": time.Now().UnixMilli()}
	if who, err := a.Sessions.Authenticate(r); err == nil {
		data["User"] = who
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'")
	if err := pageTmpl.Execute(w, data); err != nil {
		a.log.Warn("shop: rendering the page failed", "err", err)
	}
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"price": func(p order.Product, c string) string {
		return paymux.NewMoney(p.Prices[paymux.Currency(c)], paymux.Currency(c)).String()
	},
	"ms": func(t time.Time) int64 { return t.UnixMilli() },
}).Parse(pageSource))

const pageSource = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Nova Drop — paymux reference shop</title>
<style>
body{font:16px system-ui,sans-serif;max-width:960px;margin:1.5rem auto;padding:0 1rem;color:#1d1d1f}
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.8rem}
.grid{display:grid;grid-template-columns:2fr 1fr;gap:1.5rem;margin-top:1.2rem}
.card{border:1px solid #ddd;border-radius:10px;padding:1rem;margin-bottom:1rem}
.stock{font-weight:600}.countdown{color:#b00;font-variant-numeric:tabular-nums}
button{font:inherit;padding:.45rem .9rem;border-radius:6px;border:1px solid #333;background:#111;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#111}input,select{font:inherit;padding:.35rem;margin:.15rem 0}
#order-status{font-size:1.2rem;font-weight:700}.muted{color:#666;font-size:.9rem}
</style></head><body>
<header><h1>Nova Drop</h1>
<div id="account">{{if .User}}Signed in as <b id="who">{{.User.Email}}</b> <button class="secondary" id="signout">Sign out</button>
{{else}}<form id="signin-form"><input id="email" type="email" placeholder="email" value="ana@example.com" autocomplete="username">
<input id="password" type="password" placeholder="password" autocomplete="current-password"> <button id="signin" type="submit">Sign in</button></form>{{end}}</div></header>
<p id="message" class="muted" role="status"></p>
<div class="grid"><main>
{{range .Products}}<div class="card" data-product="{{.ID}}" data-start="{{ms .SaleStart}}" data-end="{{ms .SaleEnd}}">
<h2>{{.Name}}</h2><p>{{.Description}}</p>
<p>{{price . "EUR"}} · {{price . "USD"}} · {{price . "GBP"}}</p>
<p>Stock left: <span class="stock" id="stock-{{.ID}}">{{.Stock}}</span> · <span class="countdown" id="countdown-{{.ID}}"></span></p>
<button id="add-{{.ID}}" data-add="{{.ID}}">Add to cart</button></div>{{end}}
</main><aside>
<div class="card"><h3>Cart</h3><p id="cart-empty" class="muted">Your cart is empty.</p><ul id="cart"></ul>
<label>Country <select id="country"><option>DE</option><option>FR</option><option>US</option><option>GB</option><option>JP</option></select></label><br>
<label>Test card <select id="token"><option value="sim_ok">approves</option><option value="sim_decline_hard">declines (stolen card)</option>
<option value="sim_decline_soft">issuer unavailable (fails over)</option><option value="sim_3ds">asks for 3-D Secure</option></select></label><br>
<button id="checkout">Checkout</button></div>
<div class="card"><h3>Order</h3><p id="order-status">—</p><p id="order-detail" class="muted"></p><a id="order-action" hidden>Complete 3-D Secure</a></div>
<div class="card"><h3>History</h3><ul id="history" class="muted"></ul></div>
</aside></div>
<p class="muted">paymux reference platform · <a href="/admin/providers">providers</a></p>
<script>
"use strict";
const $ = (s) => document.querySelector(s);
const csrf = () => (document.cookie.match(/(?:^|; )shop_csrf=([^;]*)/) || [])[1] || "";
const say = (m) => { $("#message").textContent = m; };
async function api(method, path, body, headers) {
  const h = Object.assign({"Content-Type": "application/json", "X-CSRF-Token": csrf()}, headers || {});
  const r = await fetch(path, {method, headers: h, body: body ? JSON.stringify(body) : undefined, credentials: "same-origin"});
  let data = {}; try { data = await r.json(); } catch (e) {}
  if (!r.ok && r.status === 401 && path !== "/api/session/refresh" && path !== "/api/session/login") {
    const rr = await fetch("/api/session/refresh", {method: "POST", headers: {"X-CSRF-Token": csrf()}, credentials: "same-origin"});
    if (rr.ok) return api(method, path, body, headers);
  }
  return {ok: r.ok, status: r.status, data};
}
const signin = $("#signin-form");
if (signin) signin.addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/session/login", {email: $("#email").value, password: $("#password").value});
  if (r.ok) location.reload(); else say(r.data.error || "sign-in failed");
});
const signout = $("#signout");
if (signout) signout.addEventListener("click", async () => { await api("POST", "/api/session/logout"); location.reload(); });
async function refreshCart() {
  const r = await api("GET", "/api/cart");
  const ul = $("#cart"); ul.innerHTML = "";
  for (const it of (r.data.items || [])) { const li = document.createElement("li"); li.textContent = it.quantity + " × " + it.product_id; ul.appendChild(li); }
  $("#cart-empty").hidden = ul.children.length > 0;
}
document.querySelectorAll("[data-add]").forEach((b) => b.addEventListener("click", async () => {
  const cart = (await api("GET", "/api/cart")).data.items || [];
  const cur = cart.find((i) => i.product_id === b.dataset.add);
  const r = await api("POST", "/api/cart/items", {product_id: b.dataset.add, quantity: (cur ? cur.quantity : 0) + 1});
  if (!r.ok) say(r.data.error || "could not add"); else { say("Added to cart."); refreshCart(); }
}));
let attemptKey = null;
$("#checkout").addEventListener("click", async () => {
  // One key per checkout attempt: a double-click or a retry after a time-out
  // finds the same order instead of making a second one.
  attemptKey = attemptKey || crypto.randomUUID();
  const r = await api("POST", "/api/checkout", {payment_method: {type: "card", token: $("#token").value}, country: $("#country").value}, {"Idempotency-Key": attemptKey});
  if (!r.ok) { say(r.data.error || "checkout failed"); if (r.status < 500) attemptKey = null; return; }
  attemptKey = null;
  say("Order placed: you are in the queue.");
  follow(r.data.order);
  refreshCart(); refreshStock();
});
// money formats minor units with the currency's own number of decimals
// (JPY has none, KWD three), as the server's paymux.Money does.
function money(m) {
  const exp = {JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, HUF: 2, KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3}[m.currency];
  const e = exp === undefined ? 2 : exp;
  return (m.amount / Math.pow(10, e)).toFixed(e) + " " + m.currency;
}
function show(o) {
  $("#order-status").textContent = o.status;
  $("#order-status").dataset.status = o.status;
  $("#order-detail").textContent = o.id + " · " + money(o.amount) + (o.provider ? " · via " + o.provider : "") + (o.failure_reason ? " · " + o.failure_reason : "");
  const a = $("#order-action");
  if (o.status === "requires_action" && o.next_action_url) { a.href = o.next_action_url; a.hidden = false; } else { a.hidden = true; }
}
function follow(o) {
  show(o);
  const es = new EventSource("/api/orders/" + encodeURIComponent(o.id) + "/events");
  es.addEventListener("status", (e) => { const o = JSON.parse(e.data); show(o); if (["paid","captured","refunded","failed","expired","cancelled"].includes(o.status)) { es.close(); loadHistory(); refreshStock(); } });
  es.onerror = () => { /* the browser reconnects by itself */ };
}
async function loadHistory() {
  const r = await api("GET", "/api/orders");
  const ul = $("#history"); ul.innerHTML = "";
  for (const o of (r.data.orders || []).slice(0, 5)) { const li = document.createElement("li"); li.textContent = o.id.slice(0, 12) + "… " + o.status; ul.appendChild(li); }
}
async function refreshStock() {
  const r = await api("GET", "/api/products");
  for (const p of (r.data.products || [])) { const el = document.getElementById("stock-" + p.id); if (el) el.textContent = p.stock; }
}
function tick() {
  const now = Date.now();
  document.querySelectorAll("[data-product]").forEach((c) => {
    const start = +c.dataset.start, end = +c.dataset.end, el = document.getElementById("countdown-" + c.dataset.product);
    const fmt = (ms) => { const s = Math.max(0, Math.floor(ms / 1000)); return Math.floor(s / 86400) + "d " + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + ":" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0"); };
    el.textContent = now < start ? "opens in " + fmt(start - now) : now < end ? "closes in " + fmt(end - now) : "sale closed";
  });
}
refreshCart(); loadHistory(); tick();
setInterval(tick, 1000); setInterval(refreshStock, 2000);
</script></body></html>`
