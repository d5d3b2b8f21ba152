package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"` // the request id
}

// ProblemTypeBase prefixes every problem type URI.
const ProblemTypeBase = "urn:dss-sync:problem:"

// problems maps each domain error code to one HTTP status and one problem
// type. It is the only place this mapping is made.
var problems = map[string]struct {
	status int
	title  string
}{
	events.EMALFORMED:      {http.StatusBadRequest, "Malformed request"},
	events.EUNAUTHORIZED:   {http.StatusUnauthorized, "Unauthorized"},
	events.EFORBIDDEN:      {http.StatusForbidden, "Forbidden"},
	events.ENOTFOUND:       {http.StatusNotFound, "Not found"},
	events.EMETHOD:         {http.StatusMethodNotAllowed, "Method not allowed"},
	events.ECONFLICT:       {http.StatusConflict, "Conflict with the current state"},
	events.EPRECONDITION:   {http.StatusPreconditionFailed, "Precondition failed"},
	events.ETOOLARGE:       {http.StatusRequestEntityTooLarge, "Too large"},
	events.EMEDIATYPE:      {http.StatusUnsupportedMediaType, "Unsupported media type"},
	events.EINVALID:        {http.StatusUnprocessableEntity, "Invalid design data"},
	events.ERATELIMITED:    {http.StatusTooManyRequests, "Too many requests"},
	events.EINTERNAL:       {http.StatusInternalServerError, "Internal error"},
	events.ENOTIMPLEMENTED: {http.StatusNotImplemented, "Not implemented"},
	events.EUNAVAILABLE:    {http.StatusServiceUnavailable, "Service unavailable"},
}

// ProblemFor returns the problem for an error. Errors that are not domain
// errors become an internal error whose detail is not shown.
func ProblemFor(err error) Problem {
	code := events.ErrorCode(err)
	if errors.Is(err, errBodyTooLarge) {
		code = events.ETOOLARGE
	}
	p, ok := problems[code]
	if !ok {
		code, p = events.EINTERNAL, problems[events.EINTERNAL]
	}
	detail := events.ErrorMessage(err)
	if code == events.ETOOLARGE && errors.Is(err, errBodyTooLarge) {
		detail = err.Error()
	}
	return Problem{Type: ProblemTypeBase + code, Title: p.title, Status: p.status, Detail: detail}
}

// Error writes err as problem+json. Internal errors are logged with their
// cause; nothing of it reaches the client. An error in err's chain with a
// ProblemExtras method adds members (an import's report) to a 4xx problem.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFor(err)
	p.Instance = requestID(r.Context())
	if p.Status >= 500 {
		logger(r.Context()).Error("request failed", "err", err, "status", p.Status)
	} else {
		logger(r.Context()).Debug("request refused", "err", err, "status", p.Status)
	}
	if p.Status == http.StatusTooManyRequests {
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.RetryAfter())))
		} else {
			w.Header().Set("Retry-After", "1")
		}
		var rl *RateLimitError
		if rec, ok := w.(*statusRecorder); ok && errors.As(err, &rl) {
			rec.limitedBy = rl.Reason
		}
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dss-sync"`)
	}
	var body any = p
	var ex interface{ ProblemExtras() map[string]any }
	if errors.As(err, &ex) && p.Status < 500 {
		m := ex.ProblemExtras()
		b, _ := json.Marshal(p)
		json.Unmarshal(b, &m)
		body = m
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
}

// JSON writes v as JSON with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}
