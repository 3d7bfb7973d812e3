package paymux

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// Rule is one routing rule. Every non-empty condition must match; empty
// conditions match anything. Rules are tried in order and the first match
// wins.
type Rule struct {
	Name       string            `json:"name" yaml:"name"`
	Countries  []string          `json:"countries,omitempty" yaml:"countries,omitempty"`
	Currencies []Currency        `json:"currencies,omitempty" yaml:"currencies,omitempty"`
	Campaigns  []string          `json:"campaigns,omitempty" yaml:"campaigns,omitempty"`
	Methods    []MethodType      `json:"methods,omitempty" yaml:"methods,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty" yaml:"metadata,omitempty"`
	// MinAmount and MaxAmount bound the amount in minor units, inclusive;
	// 0 means unbounded.
	MinAmount int64 `json:"min_amount,omitempty" yaml:"min_amount,omitempty"`
	MaxAmount int64 `json:"max_amount,omitempty" yaml:"max_amount,omitempty"`
	// Primaries are tried first. With weights, one primary is picked per
	// payment by a hash of its idempotency key (so a retry lands on the same
	// provider) and the others follow in listed order.
	Primaries []Target `json:"primaries" yaml:"primaries"`
	// Fallbacks follow the primaries, in order.
	Fallbacks []string `json:"fallbacks,omitempty" yaml:"fallbacks,omitempty"`
}

// Target is a provider in a rule, with an optional weight.
type Target struct {
	Provider string `json:"provider" yaml:"provider"`
	Weight   int    `json:"weight,omitempty" yaml:"weight,omitempty"`
}

// UnmarshalYAML accepts "stripe" as shorthand for {provider: stripe}.
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Provider = n.Value
		return nil
	}
	type plain Target
	return n.Decode((*plain)(t))
}

// UnmarshalJSON accepts "stripe" as shorthand for {"provider":"stripe"}.
func (t *Target) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &t.Provider)
	}
	type plain Target
	return json.Unmarshal(b, (*plain)(t))
}

// Route is the ordered list of providers to try for one request.
type Route struct {
	Rule      string
	Providers []string
}

// RoutingConfig is the file format of routes: {"rules": [...]}.
type RoutingConfig struct {
	Rules []Rule `json:"rules" yaml:"rules"`
}

// ErrInvalidRoute is wrapped by every rule validation error.
var ErrInvalidRoute = errors.New("paymux: invalid route")

// ParseRoutesJSON parses a RoutingConfig from JSON.
func ParseRoutesJSON(data []byte) ([]Rule, error) {
	var c RoutingConfig
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRoute, err)
	}
	return c.Rules, nil
}

// ParseRoutesYAML parses a RoutingConfig from YAML.
func ParseRoutesYAML(data []byte) ([]Rule, error) {
	var c RoutingConfig
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRoute, err)
	}
	return c.Rules, nil
}

// Router picks providers for requests. It is safe for concurrent use, and
// its rules can be swapped atomically while it serves.
type Router struct {
	known map[string]bool // nil: any provider name is accepted
	table atomic.Pointer[routeTable]
}

// NewRouter validates rules and builds a router. knownProviders, when not
// empty, is the set of provider names rules may use; anything else is an
// error naming the rule.
func NewRouter(rules []Rule, knownProviders ...string) (*Router, error) {
	r := &Router{}
	if len(knownProviders) > 0 {
		r.known = make(map[string]bool, len(knownProviders))
		for _, n := range knownProviders {
			r.known[n] = true
		}
	}
	if err := r.Swap(rules); err != nil {
		return nil, err
	}
	return r, nil
}

// Swap validates rules and replaces the router's rules atomically. On error
// the old rules stay in force.
func (r *Router) Swap(rules []Rule) error {
	t, err := buildRouteTable(rules, r.known)
	if err != nil {
		return err
	}
	r.table.Store(t)
	return nil
}

// Rules returns a copy of the rules in force.
func (r *Router) Rules() []Rule {
	t := r.table.Load()
	out := make([]Rule, len(t.rules))
	for i := range t.rules {
		out[i] = t.rules[i].Rule
	}
	return out
}

// Route returns the providers to try for req, in order, or ErrNoRoute. The
// returned slice is shared and must not be modified.
func (r *Router) Route(req *PaymentRequest) (Route, error) {
	t := r.table.Load()
	cr := t.match(req)
	if cr == nil {
		return Route{}, fmt.Errorf("%w: %s %s from %q", ErrNoRoute, req.Amount.Currency, req.Method.Type, req.Country)
	}
	order := cr.orders[0]
	if cr.totalWeight > 0 {
		w := int(keyHash(req.IdempotencyKey) % uint64(cr.totalWeight))
		for i, p := range cr.Primaries {
			if w < p.Weight {
				order = cr.orders[i]
				break
			}
			w -= p.Weight
		}
	}
	return Route{Rule: cr.Name, Providers: order}, nil
}

// keyHash is FNV-1a, inlined so routing does not allocate.
func keyHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	// Finalise (from splitmix64) so that keys differing only in their last
	// characters spread evenly over the weights.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

type compiledRule struct {
	Rule
	totalWeight int
	// orders[i] is the provider order when primary i is picked.
	orders [][]string
}

// routeTable indexes rules by (currency, country) so that a decision looks at
// a handful of candidate rules however many there are. Each bucket holds rule
// indexes in ascending order; "" stands for "any".
type routeTable struct {
	rules   []compiledRule
	buckets map[bucketKey][]int32
	// used[m] says whether any rule fixes exactly the dimensions in mask m
	// (bit 0 currency, 1 country, 2 campaign); unused shapes are not looked up.
	used [8]bool
}

type bucketKey struct {
	currency Currency
	country  string
	campaign string
}

func buildRouteTable(rules []Rule, known map[string]bool) (*routeTable, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("%w: no rules", ErrInvalidRoute)
	}
	t := &routeTable{rules: make([]compiledRule, len(rules)), buckets: make(map[bucketKey][]int32)}
	names := make(map[string]bool, len(rules))
	for i, rule := range rules {
		name := rule.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		if names[name] {
			return nil, fmt.Errorf("%w: rule %q: duplicate rule name", ErrInvalidRoute, name)
		}
		names[name] = true
		cr, err := compileRule(rule, known)
		if err != nil {
			return nil, fmt.Errorf("%w: rule %q: %v", ErrInvalidRoute, name, err)
		}
		cr.Name = name
		t.rules[i] = cr
		currencies := rule.Currencies
		if len(currencies) == 0 {
			currencies = []Currency{""}
		}
		countries := rule.Countries
		if len(countries) == 0 {
			countries = []string{""}
		}
		campaigns := rule.Campaigns
		if len(campaigns) == 0 {
			campaigns = []string{""}
		}
		for _, cur := range currencies {
			for _, c := range countries {
				for _, camp := range campaigns {
					k := bucketKey{Currency(strings.ToUpper(string(cur))), strings.ToUpper(c), camp}
					t.buckets[k] = append(t.buckets[k], int32(i))
					t.used[shapeMask(k)] = true
				}
			}
		}
	}
	return t, nil
}

func compileRule(rule Rule, known map[string]bool) (compiledRule, error) {
	cr := compiledRule{Rule: rule}
	if len(rule.Primaries) == 0 {
		return cr, errors.New("empty route: no primaries")
	}
	if rule.MinAmount < 0 || rule.MaxAmount < 0 || (rule.MaxAmount > 0 && rule.MinAmount > rule.MaxAmount) {
		return cr, fmt.Errorf("bad amount range %d..%d", rule.MinAmount, rule.MaxAmount)
	}
	for _, c := range rule.Currencies {
		if !Currency(strings.ToUpper(string(c))).Valid() {
			return cr, fmt.Errorf("unknown currency %q", string(c))
		}
	}
	seen := map[string]bool{}
	weighted := 0
	for _, p := range rule.Primaries {
		if err := checkProvider(p.Provider, known, seen); err != nil {
			return cr, err
		}
		if p.Weight < 0 {
			return cr, fmt.Errorf("negative weight for %q", p.Provider)
		}
		if p.Weight > 0 {
			weighted++
			cr.totalWeight += p.Weight
		}
	}
	if weighted > 0 && weighted != len(rule.Primaries) {
		return cr, errors.New("overlapping weights: either every primary has a weight or none has")
	}
	for _, f := range rule.Fallbacks {
		if err := checkProvider(f, known, seen); err != nil {
			return cr, err
		}
	}
	n := len(rule.Primaries)
	cr.orders = make([][]string, n)
	for i := 0; i < n; i++ {
		order := make([]string, 0, n+len(rule.Fallbacks))
		order = append(order, rule.Primaries[i].Provider)
		for j, p := range rule.Primaries {
			if j != i {
				order = append(order, p.Provider)
			}
		}
		cr.orders[i] = append(order, rule.Fallbacks...)
	}
	return cr, nil
}

func checkProvider(name string, known, seen map[string]bool) error {
	switch {
	case name == "":
		return errors.New("empty provider name")
	case known != nil && !known[name]:
		return fmt.Errorf("unknown provider %q", name)
	case seen[name]:
		return fmt.Errorf("provider %q listed twice", name)
	}
	seen[name] = true
	return nil
}

func shapeMask(k bucketKey) int {
	m := 0
	if k.currency != "" {
		m |= 1
	}
	if k.country != "" {
		m |= 2
	}
	if k.campaign != "" {
		m |= 4
	}
	return m
}

func (t *routeTable) match(req *PaymentRequest) *compiledRule {
	var lists [8][]int32
	for m := 0; m < 8; m++ {
		if !t.used[m] {
			continue
		}
		var k bucketKey
		if m&1 != 0 {
			k.currency = req.Amount.Currency
		}
		if m&2 != 0 {
			k.country = req.Country
		}
		if m&4 != 0 {
			k.campaign = req.Campaign
		}
		lists[m] = t.buckets[k]
	}
	// Merge the ascending lists, lowest index first, so the first rule in
	// file order that matches wins.
	var pos [8]int
	for {
		best := int32(-1)
		bi := -1
		for i := range lists {
			if pos[i] < len(lists[i]) {
				v := lists[i][pos[i]]
				if best < 0 || v < best {
					best, bi = v, i
				}
			}
		}
		if bi < 0 {
			return nil
		}
		pos[bi]++
		cr := &t.rules[best]
		if cr.matchesRest(req) {
			return cr
		}
	}
}

func (cr *compiledRule) matchesRest(req *PaymentRequest) bool {
	if len(cr.Campaigns) > 0 && !slices.Contains(cr.Campaigns, req.Campaign) {
		return false
	}
	if len(cr.Methods) > 0 && !slices.Contains(cr.Methods, req.Method.Type) {
		return false
	}
	a := req.Amount.Amount
	if (cr.MinAmount > 0 && a < cr.MinAmount) || (cr.MaxAmount > 0 && a > cr.MaxAmount) {
		return false
	}
	for k, v := range cr.Metadata {
		if req.Metadata[k] != v {
			return false
		}
	}
	return true
}
