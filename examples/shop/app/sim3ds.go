package app

import (
	"html/template"
	"net/http"
	"strings"
)

// simActionPath is where the simulated providers send a buyer for 3-D
// Secure: a stand-in for the issuer's page, so the step-up flow can be
// tried end to end in a browser or with curl. It exists only when the shop
// runs on the sims.
const simActionPath = "/sim/3ds/"

var simActionTmpl = template.Must(template.New("3ds").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Simulated 3-D Secure</title>
<style>body{font:16px system-ui,sans-serif;max-width:480px;margin:3rem auto;padding:0 1rem}button{font:inherit;padding:.45rem .9rem;margin-right:.5rem}</style></head>
<body><h1>Simulated 3-D Secure</h1><p>Payment <code>{{.Ref}}</code> at {{.Provider}} asks you to confirm it.</p>
<form method="post"><button id="approve" name="result" value="approve">Approve</button><button id="fail" name="result" value="fail">Fail</button></form>
</body></html>`))

// simActionURL is the ActionURL prefix for the sim named name.
func simActionURL(name string) string { return simActionPath + name + "/" }

func (a *App) handleSimAction(w http.ResponseWriter, r *http.Request) {
	name, ref := r.PathValue("provider"), r.PathValue("ref")
	var found bool
	for _, s := range a.Sims {
		if s.Name() != name {
			continue
		}
		found = true
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = simActionTmpl.Execute(w, map[string]string{"Provider": name, "Ref": ref})
			return
		}
		var err error
		if strings.EqualFold(r.FormValue("result"), "fail") {
			err = s.FailAction(r.Context(), ref)
		} else {
			err = s.CompleteAction(r.Context(), ref)
		}
		if err != nil {
			http.Error(w, "no such payment awaiting 3-D Secure", http.StatusNotFound)
			return
		}
		// Back to the shop, as a real issuer would; the webhook moves the order.
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
	if !found {
		http.NotFound(w, r)
	}
}
