package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dss-sync/dss-sync/api"
)

// TestClientRetriesRateLimited: a 429 with Retry-After is retried with the
// same body, up to Retries times; a body that cannot be sent again is not
// retried; the last refusal is the error.
func TestClientRetriesRateLimited(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0") // read as the 1 s minimum
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"type":"rate-limited","title":"Too many requests","status":429}`)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	c := api.NewClient(srv.URL, "k")
	var out struct{ OK bool }
	if _, err := c.JSON(context.Background(), "POST", "/x", nil, map[string]int{"a": 1}, &out); err != nil || !out.OK {
		t.Fatalf("after two 429s: %v %+v", err, out)
	}
	if calls.Load() != 3 || bodies[0] != bodies[2] || bodies[2] != `{"a":1}` {
		t.Fatalf("%d calls, bodies %q", calls.Load(), bodies)
	}

	calls.Store(0)
	c.Retries = 1
	if _, err := c.JSON(context.Background(), "GET", "/x", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "Too many") {
		t.Fatalf("with one retry, two 429s: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls with Retries 1", calls.Load())
	}

	calls.Store(0)
	c.Retries = 3
	// A streamed body (an import) cannot be sent again: no retry.
	if _, err := c.Do(context.Background(), "POST", "/x", nil, "application/zip", io.MultiReader(strings.NewReader("zip"))); err == nil {
		t.Fatal("a streamed body got past a 429")
	}
	if calls.Load() != 1 {
		t.Fatalf("a streamed body was sent %d times", calls.Load())
	}
}
