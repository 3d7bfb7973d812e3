package order

import (
	"context"
	"errors"
	"time"

	"github.com/paymux/paymux"
)

// Product is something on sale, with a flash-sale window and limited stock.
type Product struct {
	ID          string                    `json:"id"`
	Name        string                    `json:"name"`
	Description string                    `json:"description"`
	Prices      map[paymux.Currency]int64 `json:"prices"` // minor units per currency
	Stock       int                       `json:"stock"`  // initial stock when seeded; stock left when read
	SaleStart   time.Time                 `json:"sale_start"`
	SaleEnd     time.Time                 `json:"sale_end"`
}

// Item is one line of an order.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// Status is where an order is.
type Status string

const (
	StatusQueued         Status = "queued"          // accepted, waiting for a payment worker
	StatusProcessing     Status = "processing"      // a worker is paying it
	StatusRequiresAction Status = "requires_action" // the buyer must complete 3-D Secure or approve
	StatusPaymentPending Status = "payment_pending" // the provider's answer is not known yet
	StatusPaid           Status = "paid"            // authorised; stock is the buyer's
	StatusCaptured       Status = "captured"        // fulfilled and captured
	StatusRefunded       Status = "refunded"
	StatusFailed         Status = "failed" // payment failed; stock released
	StatusExpired        Status = "expired"
	StatusCancelled      Status = "cancelled"
)

// rank orders statuses so that an order only moves forward, whatever order
// worker results and webhooks arrive in.
func (s Status) rank() int {
	switch s {
	case StatusQueued:
		return 0
	case StatusProcessing:
		return 1
	case StatusRequiresAction, StatusPaymentPending:
		return 2
	case StatusPaid:
		return 3
	case StatusCaptured:
		return 4
	case StatusRefunded:
		return 5
	case StatusFailed, StatusExpired, StatusCancelled:
		return 6
	}
	return -1
}

// Final reports whether the order will not change any more by itself.
func (s Status) Final() bool {
	switch s {
	case StatusCaptured, StatusRefunded, StatusFailed, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// CanMove reports whether an order may go from s to next.
func (s Status) CanMove(next Status) bool {
	if s == next {
		return true
	}
	switch {
	case s == StatusFailed || s == StatusExpired || s == StatusCancelled || s == StatusRefunded:
		return false
	case next == StatusFailed || next == StatusExpired || next == StatusCancelled:
		// Money that moved cannot be failed away.
		return s.rank() < StatusPaid.rank()
	case s == StatusRequiresAction && next == StatusPaymentPending, s == StatusPaymentPending && next == StatusRequiresAction:
		return true
	}
	return next.rank() > s.rank()
}

// Order is one checkout.
type Order struct {
	ID            string               `json:"id"`
	UserID        string               `json:"user_id,omitempty"`
	Email         string               `json:"email,omitempty"`
	Items         []Item               `json:"items"`
	Amount        paymux.Money         `json:"amount"`
	Country       string               `json:"country"`
	Campaign      string               `json:"campaign,omitempty"`
	Method        paymux.PaymentMethod `json:"-"`
	MethodType    paymux.MethodType    `json:"method_type"`
	Status        Status               `json:"status"`
	PaymentID     string               `json:"payment_id,omitempty"`
	Provider      string               `json:"provider,omitempty"`
	NextActionURL string               `json:"next_action_url,omitempty"`
	FailureReason string               `json:"failure_reason,omitempty"`
	Attempts      int                  `json:"-"` // worker attempts, for the retry bound
	ReservedUntil time.Time            `json:"reserved_until"`
	CreatedAt     time.Time            `json:"created_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
	Version       int64                `json:"-"`
}

// storedOrder is an Order with the payment token, which the API never shows.
type storedOrder struct {
	Order
	Token string `json:"token"`
}

// Errors.
var (
	ErrNotFound = errors.New("order: not found")
	ErrSoldOut  = errors.New("order: sold out")
	ErrConflict = errors.New("order: concurrent update")
)

// Store keeps products, stock reservations and orders. Implementations:
// memory (tests), SQL (UPDATE ... WHERE stock >= n) and Redis (Lua).
type Store interface {
	// SeedProduct creates p with its stock, or leaves an existing product's
	// stock alone (a restart must not refill a sold-out drop).
	SeedProduct(ctx context.Context, p Product) error
	// Products lists products with their stock left.
	Products(ctx context.Context) ([]Product, error)
	Product(ctx context.Context, id string) (Product, error)

	// Reserve takes the items' stock for orderID until the given time, all or
	// nothing: ErrSoldOut and nothing taken if any item lacks stock. It is
	// idempotent per order: reserving again for the same order takes nothing.
	Reserve(ctx context.Context, orderID string, items []Item, until time.Time) error
	// Release returns an order's held stock; idempotent; a committed
	// reservation is not released.
	Release(ctx context.Context, orderID string) error
	// Commit makes an order's reservation permanent (it was paid).
	Commit(ctx context.Context, orderID string) error
	// ExpiredReservations lists orders whose held (uncommitted) reservation
	// ended before now.
	ExpiredReservations(ctx context.Context, now time.Time, limit int) ([]string, error)

	// CreateOrder inserts o unless an order with its id exists, in which case
	// it returns that one and created = false.
	CreateOrder(ctx context.Context, o *Order) (stored *Order, created bool, err error)
	// PlaceOrder is checkout's one store step: unless an order with o's id
	// exists, it reserves o.Items for o until the given time and creates o,
	// both or neither. An existing order is returned with created = false
	// and nothing is taken; ErrSoldOut means no order and no stock taken.
	PlaceOrder(ctx context.Context, o *Order, until time.Time) (stored *Order, created bool, err error)
	GetOrder(ctx context.Context, id string) (*Order, error)
	// UpdateOrder applies fn to the current order and saves it with
	// compare-and-set, retrying on conflicts; fn returns false to change
	// nothing.
	UpdateOrder(ctx context.Context, id string, fn func(*Order) bool) (*Order, error)
	OrdersByUser(ctx context.Context, userID string, limit int) ([]*Order, error)
	// OrdersInStatus lists orders in status s last updated before the given
	// time, oldest first (recovery of queued work after a crash).
	OrdersInStatus(ctx context.Context, s Status, updatedBefore time.Time, limit int) ([]*Order, error)
	// Sold returns how many units of a product were committed (paid), for
	// the oversell check.
	Sold(ctx context.Context, productID string) (int, error)
}

// orderUpdaterFrom is a Store that can start a compare-and-set update from an
// order the caller has just read, saving the read that UpdateOrder begins
// with. The order must be as read (its Version is the one compared).
type orderUpdaterFrom interface {
	updateOrderFrom(ctx context.Context, o *Order, fn func(*Order) bool) (*Order, error)
}

// commitSaver is a Store that can commit an order's reservation and save the
// order's new state in one step, so a paid order costs one write instead of
// two. next is the order as it should be saved; before and old are the
// version and status it was read at. ErrConflict: the order moved since (nothing changed); ErrNotFound:
// its reservation is not held or committed (nothing changed).
type commitSaver interface {
	commitAndSave(ctx context.Context, next *Order, before int64, old Status) error
}

// updateOrderFrom updates o's order with fn, starting from o when st can.
func updateOrderFrom(ctx context.Context, st Store, o *Order, fn func(*Order) bool) (*Order, error) {
	if u, ok := st.(orderUpdaterFrom); ok {
		c := *o
		return u.updateOrderFrom(ctx, &c, fn)
	}
	return st.UpdateOrder(ctx, o.ID, fn)
}

// casUpdate is the read-modify-write loop of the stores' UpdateOrder: apply
// fn to the order (first, when not nil, is the order as just read) and save
// it; save reports false when the stored version moved meanwhile, and the
// loop reads again.
func casUpdate(ctx context.Context, id string, first *Order, get func(context.Context, string) (*Order, error),
	fn func(*Order) bool, save func(o *Order, before int64, old Status) (bool, error)) (*Order, error) {
	for tries := 0; tries < 32; tries++ {
		o := first
		first = nil
		if o == nil {
			var err error
			if o, err = get(ctx, id); err != nil {
				return nil, err
			}
		}
		before, old := o.Version, o.Status
		if !fn(o) {
			return o, nil
		}
		ok, err := save(o, before, old)
		if err != nil {
			return nil, err
		}
		if ok {
			return o, nil
		}
	}
	return nil, ErrConflict
}
