package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a site's REST API: what the CLI's client commands use.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // API key
	HTTP    *http.Client
	// Retries is how many times a request refused with 429 is sent again,
	// after the Retry-After the site gave (at most MaxRetryWait). Only
	// requests whose body can be sent again are (a refused request changed
	// nothing). NewClient sets 3.
	Retries int
}

// MaxRetryWait bounds the wait before a retry, whatever Retry-After says.
const MaxRetryWait = 30 * time.Second

// NewClient returns a client of the site at base.
func NewClient(base, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{}, Retries: 3}
}

// ClientError is a refusal by the site: its status and problem detail.
type ClientError struct {
	Status  int
	Problem Problem
	// Body is the problem document as received (it may carry more, such as
	// an import's report).
	Body json.RawMessage
}

func (e *ClientError) Error() string {
	if e.Problem.Detail != "" {
		return fmt.Sprintf("%s (%d): %s", e.Problem.Title, e.Status, e.Problem.Detail)
	}
	return fmt.Sprintf("the site answered %d", e.Status)
}

// Do sends a request and returns the response when its status is 2xx; any
// other answer is a *ClientError (the body consumed). The caller closes the
// body of a returned response.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, contentType string, body io.Reader) (*http.Response, error) {
	u := c.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.HTTP.Do(req)
	for attempt := 0; err == nil && res.StatusCode == http.StatusTooManyRequests && attempt < c.Retries &&
		(req.Body == nil || req.GetBody != nil); attempt++ {
		wait := retryAfter(res.Header.Get("Retry-After"))
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		res, err = c.HTTP.Do(req)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the site at %s: %w", c.BaseURL, err)
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	ce := &ClientError{Status: res.StatusCode, Body: b}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/problem+json" {
		_ = json.Unmarshal(b, &ce.Problem)
	}
	return nil, ce
}

// JSON sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) JSON(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	res, err := c.Do(ctx, method, path, q, ct, body)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return res.StatusCode, fmt.Errorf("read the answer: %w", err)
		}
	}
	return res.StatusCode, nil
}

// Download streams a GET's body into w, calling progress (when not nil)
// with the bytes received so far.
func (c *Client) Download(ctx context.Context, path string, q url.Values, w io.Writer, progress func(int64)) error {
	res, err := c.Do(ctx, "GET", path, q, "", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, err = io.Copy(w, &counting{r: res.Body, fn: progress})
	return err
}

// Job is a long operation's state as GET /v1/jobs/{id} returns it.
type Job struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Project  string          `json:"project"`
	State    string          `json:"state"` // queued, running, succeeded, failed
	Progress JobProgress     `json:"progress"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Created  time.Time       `json:"createdAt"`
	Updated  time.Time       `json:"updatedAt"`
}

// JobProgress counts a job's work done and in all.
type JobProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Finished reports whether the job is over.
func (j *Job) Finished() bool { return j.State == "succeeded" || j.State == "failed" }

// WaitJob polls a job until it finishes, calling progress after each poll.
func (c *Client) WaitJob(ctx context.Context, id string, progress func(*Job)) (*Job, error) {
	for {
		var j Job
		if _, err := c.JSON(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, nil, &j); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(&j)
		}
		if j.Finished() {
			return &j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type counting struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && n > 0 {
		c.fn(c.n)
	}
	return n, err
}

// CountingReader wraps r, calling fn with the bytes read so far.
func CountingReader(r io.Reader, fn func(int64)) io.Reader { return &counting{r: r, fn: fn} }

// ListKeys returns every API key of the site (GET /v1/admin/keys).
func (c *Client) ListKeys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	if _, err := c.JSON(ctx, "GET", "/v1/admin/keys", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// CreateKey mints a key (POST /v1/admin/keys); the answer holds its token.
func (c *Client) CreateKey(ctx context.Context, spec KeySpec) (*KeyToken, error) {
	var out KeyToken
	if _, err := c.JSON(ctx, "POST", "/v1/admin/keys", nil, spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateKey mints key id's successor (POST /v1/admin/keys/{id}/rotate);
// overlap 0 takes the site's default.
func (c *Client) RotateKey(ctx context.Context, id string, overlap time.Duration) (*KeyToken, error) {
	var spec RotateSpec
	if overlap > 0 {
		spec.Overlap = overlap.String()
	}
	var out KeyToken
	if _, err := c.JSON(ctx, "POST", "/v1/admin/keys/"+url.PathEscape(id)+"/rotate", nil, spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeKey stops key id at once (POST /v1/admin/keys/{id}/revoke).
func (c *Client) RevokeKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	if _, err := c.JSON(ctx, "POST", "/v1/admin/keys/"+url.PathEscape(id)+"/revoke", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SecurityLog returns up to limit records of the security log after seq
// after, and the after of the next page (nil on the last).
func (c *Client) SecurityLog(ctx context.Context, after uint64, limit int) ([]SecurityRecord, *uint64, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", fmt.Sprint(after))
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var page SecurityLogPage
	if _, err := c.JSON(ctx, "GET", "/v1/admin/security-log", q, nil, &page); err != nil {
		return nil, nil, err
	}
	return page.Records, page.Next, nil
}

// retryAfter reads a Retry-After of delay-seconds (what the site sends):
// 1 s when absent or unreadable, at most MaxRetryWait.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 1 {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, MaxRetryWait)
}
