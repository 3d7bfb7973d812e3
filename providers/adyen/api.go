package adyen

import (
	"encoding/json"
)

// The Checkout API v71 shapes paymux sends and reads. Only the fields paymux
// uses are declared; unknown response fields are ignored, so newer API
// versions keep decoding.

// Amount is Adyen's amount object: value in minor units.
type Amount struct {
	Currency string `json:"currency"`
	Value    int64  `json:"value"`
}

// PaymentRequest is the body of POST /payments.
type PaymentRequest struct {
	MerchantAccount string          `json:"merchantAccount"`
	Reference       string          `json:"reference"`
	Amount          Amount          `json:"amount"`
	PaymentMethod   json.RawMessage `json:"paymentMethod"`
	ReturnURL       string          `json:"returnUrl,omitempty"`
	CountryCode     string          `json:"countryCode,omitempty"`
	ShopperEmail    string          `json:"shopperEmail,omitempty"`
	ShopperIP       string          `json:"shopperIP,omitempty"`
	ShopperRef      string          `json:"shopperReference,omitempty"`
	// ShopperInteraction and RecurringProcessingModel are required when the
	// method is a stored card (storedPaymentMethodId).
	ShopperInteraction       string `json:"shopperInteraction,omitempty"`
	RecurringProcessingModel string `json:"recurringProcessingModel,omitempty"`
	// CaptureDelayHours 0 captures at once whatever the account's default.
	CaptureDelayHours  *int                `json:"captureDelayHours,omitempty"`
	AdditionalData     map[string]string   `json:"additionalData,omitempty"`
	Metadata           map[string]string   `json:"metadata,omitempty"`
	AuthenticationData *AuthenticationData `json:"authenticationData,omitempty"`
	Channel            string              `json:"channel,omitempty"`
}

// AuthenticationData asks for 3-D Secure.
type AuthenticationData struct {
	// AttemptAuthentication "always" forces 3-D Secure, "never" skips it.
	AttemptAuthentication string `json:"attemptAuthentication,omitempty"`
}

// PaymentResponse is the body of a 200 answer to POST /payments.
type PaymentResponse struct {
	PSPReference      string            `json:"pspReference,omitempty"`
	ResultCode        string            `json:"resultCode"`
	Amount            *Amount           `json:"amount,omitempty"`
	MerchantReference string            `json:"merchantReference,omitempty"`
	RefusalReason     string            `json:"refusalReason,omitempty"`
	RefusalReasonCode string            `json:"refusalReasonCode,omitempty"`
	Action            *Action           `json:"action,omitempty"`
	AdditionalData    map[string]string `json:"additionalData,omitempty"`
}

// Action is what the shopper must do next (redirect, threeDS2, ...).
type Action struct {
	Type              string `json:"type"`
	Subtype           string `json:"subtype,omitempty"`
	URL               string `json:"url,omitempty"`
	Method            string `json:"method,omitempty"`
	PaymentMethodType string `json:"paymentMethodType,omitempty"`
	Token             string `json:"token,omitempty"`
	PaymentData       string `json:"paymentData,omitempty"`
}

// ModificationRequest is the body of the captures, refunds and cancels calls.
type ModificationRequest struct {
	MerchantAccount string  `json:"merchantAccount"`
	Reference       string  `json:"reference,omitempty"`
	Amount          *Amount `json:"amount,omitempty"`
}

// ModificationResponse answers captures, refunds and cancels. Status is
// "received": Adyen accepted the request and reports the outcome by webhook.
type ModificationResponse struct {
	MerchantAccount     string  `json:"merchantAccount,omitempty"`
	PaymentPSPReference string  `json:"paymentPspReference"`
	PSPReference        string  `json:"pspReference"`
	Reference           string  `json:"reference,omitempty"`
	Status              string  `json:"status"`
	Amount              *Amount `json:"amount,omitempty"`
}

// ServiceError is the body of a non-200 answer.
type ServiceError struct {
	Status       int    `json:"status"`
	ErrorCode    string `json:"errorCode"`
	Message      string `json:"message"`
	ErrorType    string `json:"errorType"`
	PSPReference string `json:"pspReference,omitempty"`
}
