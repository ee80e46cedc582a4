package main

import (
	"fmt"
	"net/http"
	"time"
)

// serveExporter stands in for the checkout service's own metrics in the
// demo: request counters by status code and a latency histogram, growing
// at fixed rates from the moment it starts (40 requests a second, 3 of
// them 5xx), labelled as a service in namespace shop would export them.
// The demo's Prometheus scrapes it, and the payments team's queries run
// against that Prometheus.
func serveExporter(addr string) error {
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		s := time.Since(start).Seconds()
		labels := `namespace="shop",deployment="checkout"`
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE http_requests_total counter")
		fmt.Fprintf(w, "http_requests_total{%s,code=\"200\"} %d\n", labels, int64(s*37))
		fmt.Fprintf(w, "http_requests_total{%s,code=\"503\"} %d\n", labels, int64(s*3))
		fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
		for _, b := range []struct {
			le   string
			rate float64
		}{{"0.05", 20}, {"0.1", 30}, {"0.25", 36}, {"0.5", 38.5}, {"1", 39.6}, {"+Inf", 40}} {
			fmt.Fprintf(w, "http_request_duration_seconds_bucket{%s,le=%q} %d\n", labels, b.le, int64(s*b.rate))
		}
		fmt.Fprintf(w, "http_request_duration_seconds_sum{%s} %.3f\n", labels, s*40*0.09)
		fmt.Fprintf(w, "http_request_duration_seconds_count{%s} %d\n", labels, int64(s*40))
	})
	server := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return server.ListenAndServe()
}
