package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sseEvent is one message of a Server-Sent Events stream.
type sseEvent struct {
	ID, Event string
	Data      struct {
		Project, Site, Path string
	}
}

// openStream opens a project's live event stream and returns a channel of
// its messages; it is closed when the stream ends.
func openStream(t *testing.T, ctx context.Context, base, key, project, lastID string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/projects/"+project+"/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.ID != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(line[6:]), &ev.Data)
			}
		}
	}()
	return out
}

// next returns the next n messages of a stream, failing after d.
func next(t *testing.T, ch <-chan sseEvent, n int, d time.Duration) []sseEvent {
	t.Helper()
	var got []sseEvent
	timeout := time.After(d)
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended after %d of %d messages", len(got), n)
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("after %v, %d of %d messages: %+v", d, len(got), n, got)
		}
	}
	return got
}

// TestLiveEventStream: a client following lyon's stream of a project sees
// lyon's own writes and paris's, arrived through the peer, and not another
// project's; reconnecting with Last-Event-ID, it gets what was committed
// while it was away, then what comes next.
func TestLiveEventStream(t *testing.T) {
	tmp := t.TempDir()
	addrP, addrL := freeAddr(t), freeAddr(t)
	dirP, dirL := filepath.Join(tmp, "paris"), filepath.Join(tmp, "lyon")
	paris := MustRunMain(t, dirP, "paris", "--nats-listen", addrP, "--peer", "nats://"+addrL)
	lyon := MustRunMain(t, dirL, "lyon", "--nats-listen", addrL, "--peer", "nats://"+addrP)
	keyP, keyL := adminKey(t, dirP), adminKey(t, dirL)
	for _, p := range []string{"design", "other"} {
		if got := call(t, lyon.HTTPURL(), keyL, "POST", "/v1/projects", fmt.Sprintf(`{"id":%q,"name":"x"}`, p), nil); got != 201 {
			t.Fatalf("create %s: %d", p, got)
		}
	}
	waitFor(t, 20*time.Second, "paris to hold the project", func() (bool, string) {
		got := call(t, paris.HTTPURL(), keyP, "GET", "/v1/projects/design", "", nil)
		return got == 200, fmt.Sprint(got)
	})

	ctx, cancel := context.WithCancel(t.Context())
	stream := openStream(t, ctx, lyon.HTTPURL(), keyL, "design", "")
	put := func(m *Main, key, project, path string) {
		t.Helper()
		if got := call(t, m.HTTPURL(), key, "PUT", "/v1/projects/"+project+"/tokens/"+path, `{"$type":"number","$value":1}`, nil); got != 201 {
			t.Fatalf("put %s: %d", path, got)
		}
	}
	put(lyon, keyL, "other", "not.this")
	put(lyon, keyL, "design", "local.a")
	put(paris, keyP, "design", "remote.b")
	got := next(t, stream, 2, 20*time.Second)
	seen := map[string]string{}
	for _, ev := range got {
		if ev.Data.Project != "design" || ev.Event != "token.set" {
			t.Fatalf("unexpected message %+v", ev)
		}
		seen[ev.Data.Path] = ev.Data.Site
	}
	if seen["local.a"] != "lyon" || seen["remote.b"] != "paris" {
		t.Fatalf("stream gave %v, want lyon's local.a and paris's remote.b", seen)
	}
	cancel()

	// Away: two more writes. Back with the last id: both, then the next.
	last := got[len(got)-1].ID
	put(lyon, keyL, "design", "away.c")
	put(lyon, keyL, "design", "away.d")
	stream = openStream(t, t.Context(), lyon.HTTPURL(), keyL, "design", last)
	got = next(t, stream, 2, 10*time.Second)
	if got[0].Data.Path != "away.c" || got[1].Data.Path != "away.d" {
		t.Fatalf("after reconnecting: %+v", got)
	}
	put(lyon, keyL, "design", "after.e")
	if got = next(t, stream, 1, 10*time.Second); got[0].Data.Path != "after.e" {
		t.Fatalf("after the catch-up: %+v", got)
	}
	var p struct{ Status int }
	if code := call(t, lyon.HTTPURL(), keyL, "GET", "/v1/projects/design/events/stream?after=x", "", &p); code != 400 {
		t.Fatalf("a bad position: %d", code)
	}
	// A graceful stop ends the open stream instead of waiting for its
	// client (which would hold the stop for the 30 s shutdown timeout).
	done := make(chan error, 1)
	go func() { done <- lyon.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stop is held by an open event stream")
	}
	for range stream { // the stream ends
	}
}
