package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// serveSink stands in for a team's webhook or Slack in the demo: it answers
// every request 200 and appends it, as one JSON line, to path.
func serveSink(addr, path string) error {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var payload any = string(body)
		if json.Valid(body) {
			payload = json.RawMessage(body)
		}
		line, err := json.Marshal(map[string]any{
			"time":           time.Now().UTC().Format(time.RFC3339),
			"path":           r.URL.Path,
			"idempotencyKey": r.Header.Get("Idempotency-Key"),
			"body":           payload,
		})
		if err == nil {
			mu.Lock()
			_, _ = file.Write(append(line, '\n'))
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	})
	go func() { _ = http.Serve(listener, handler) }()
	return nil
}
