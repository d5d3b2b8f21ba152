package events

import (
	"errors"
	"fmt"
)

// Error codes. Each code names one kind of problem; the HTTP layer maps each
// to exactly one status and one problem+json type, in one table.
const (
	EMALFORMED      = "malformed"           // the request or input cannot be parsed
	EINVALID        = "invalid"             // parsed, but the design data or event is invalid
	ENOTFOUND       = "not_found"           // no such project, token, component, job, conflict
	EMETHOD         = "method_not_allowed"  // the resource exists but not with this method
	ECONFLICT       = "conflict"            // the request clashes with the current state
	EPRECONDITION   = "precondition_failed" // If-Match did not match the current revision
	ETOOLARGE       = "too_large"           // a size or count limit was exceeded
	EMEDIATYPE      = "unsupported_media"   // the body's media type is not accepted here
	EUNAUTHORIZED   = "unauthorized"        // no, invalid, expired or revoked key
	EFORBIDDEN      = "forbidden"           // the key lacks the scope
	ERATELIMITED    = "rate_limited"        // too many requests
	ENOTIMPLEMENTED = "not_implemented"     // a capability not built yet
	EUNAVAILABLE    = "unavailable"         // a dependency (store, bus) is not ready
	EINTERNAL       = "internal"            // anything else; details are logged, never shown
)

// Error is the domain error. Its Message is safe to show to a client; Err, when
// set, is the underlying cause and is kept for logs and errors.Is/As only.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error returns the message, with the cause appended when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with the given code and message that keeps err as its cause.
func WrapError(code, msg string, err error) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, and a generic text for any other error (whose details must not leak).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
