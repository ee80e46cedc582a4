package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// podMetricsCRD serves metrics.k8s.io PodMetrics from etcd, in
// metrics-server's shape; the feeder below fills it.
//
//go:embed podmetrics-crd.yaml
var podMetricsCRD []byte

var podMetricsResource = schema.GroupVersionResource{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "pods"}

func installPodMetricsAPI(ctx context.Context, config *rest.Config) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(podMetricsCRD, &crd); err != nil {
		return err
	}
	client, err := apiextensions.NewForConfig(config)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !isAlreadyExists(err) {
		return err
	}
	for {
		got, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podMetricsFeeder stands in for metrics-server: every interval it reads
// each simulated node's container usage from KWOK and writes one PodMetrics
// per pod, and deletes those of pods no node reports any more.
type podMetricsFeeder struct {
	client dynamic.Interface
	kwok   string
	nodes  []string
	log    string
}

type podKey struct{ namespace, name string }

type containerUsage struct {
	cpu, memory float64
}

func (f *podMetricsFeeder) run(interval time.Duration) {
	logFile, err := os.OpenFile(f.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		logFile = os.Stderr
	}
	written := map[podKey]bool{}
	for range time.Tick(interval) {
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		usage, err := f.scrape(ctx)
		if err != nil {
			fmt.Fprintf(logFile, "%s scrape: %v\n", time.Now().UTC().Format(time.RFC3339), err)
			cancel()
			continue
		}
		now := time.Now().UTC()
		for key, containers := range usage {
			if err := f.write(ctx, key, containers, now, interval); err != nil {
				fmt.Fprintf(logFile, "%s write %s/%s: %v\n", now.Format(time.RFC3339), key.namespace, key.name, err)
				continue
			}
			written[key] = true
		}
		for key := range written {
			if _, ok := usage[key]; ok {
				continue
			}
			err := f.client.Resource(podMetricsResource).Namespace(key.namespace).Delete(ctx, key.name, metav1.DeleteOptions{})
			if err == nil || isNotFound(err) {
				delete(written, key)
			}
		}
		cancel()
	}
}

func (f *podMetricsFeeder) scrape(ctx context.Context) (map[podKey]map[string]*containerUsage, error) {
	usage := map[podKey]map[string]*containerUsage{}
	for _, node := range f.nodes {
		url := fmt.Sprintf("http://%s/metrics/nodes/%s/metrics/usage", f.kwok, node)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", url, resp.Status)
		}
		var parser expfmt.TextParser
		families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		for name, family := range families {
			for _, m := range family.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				key := podKey{labels["namespace"], labels["pod"]}
				if key.name == "" || labels["container"] == "" {
					continue
				}
				if usage[key] == nil {
					usage[key] = map[string]*containerUsage{}
				}
				c := usage[key][labels["container"]]
				if c == nil {
					c = &containerUsage{}
					usage[key][labels["container"]] = c
				}
				switch name {
				case "container_cpu_usage_cores":
					c.cpu = m.GetGauge().GetValue()
				case "container_memory_working_set_bytes":
					c.memory = m.GetGauge().GetValue()
				}
			}
		}
	}
	return usage, nil
}

func (f *podMetricsFeeder) write(ctx context.Context, key podKey, containers map[string]*containerUsage, now time.Time, window time.Duration) error {
	names := make([]string, 0, len(containers))
	for name := range containers {
		names = append(names, name)
	}
	sort.Strings(names)
	list := make([]any, 0, len(names))
	for _, name := range names {
		c := containers[name]
		list = append(list, map[string]any{
			"name": name,
			"usage": map[string]any{
				"cpu":    resource.NewMilliQuantity(int64(math.Round(c.cpu*1000)), resource.DecimalSI).String(),
				"memory": resource.NewQuantity(int64(c.memory), resource.BinarySI).String(),
			},
		})
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metrics.k8s.io/v1beta1",
		"kind":       "PodMetrics",
		"metadata":   map[string]any{"name": key.name, "namespace": key.namespace},
		"timestamp":  now.Format(time.RFC3339),
		"window":     window.String(),
		"containers": list,
	}}
	_, err := f.client.Resource(podMetricsResource).Namespace(key.namespace).Apply(ctx, key.name, obj, metav1.ApplyOptions{FieldManager: "klaxon-controlplane", Force: true})
	return err
}
