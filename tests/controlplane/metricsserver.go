package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
)

// registerMetricsServer serves metrics.k8s.io through the aggregation
// layer from the metrics-server child process on port, and waits until the
// APIService is Available.
//
// The Service is an ExternalName for localhost: the aggregator resolves
// it to https://localhost:PORT. Nothing routes a ClusterIP here, and
// Endpoints may not name a loopback address.
func registerMetricsServer(ctx context.Context, config *rest.Config, client kubernetes.Interface, port int) error {
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: metav1.NamespaceSystem},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: int32(port)}},
		},
	}
	if _, err := client.CoreV1().Services(metav1.NamespaceSystem).Create(ctx, service, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	apiServices, err := aggregator.NewForConfig(config)
	if err != nil {
		return err
	}
	servicePort := int32(port)
	apiService := &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.metrics.k8s.io"},
		Spec: apiregistrationv1.APIServiceSpec{
			Group:   "metrics.k8s.io",
			Version: "v1beta1",
			Service: &apiregistrationv1.ServiceReference{
				Namespace: metav1.NamespaceSystem,
				Name:      "metrics-server",
				Port:      &servicePort,
			},
			// metrics-server serves a self-signed certificate.
			InsecureSkipTLSVerify: true,
			GroupPriorityMinimum:  100,
			VersionPriority:       100,
		},
	}
	registrations := apiServices.ApiregistrationV1().APIServices()
	if _, err := registrations.Create(ctx, apiService, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	var last string
	for {
		got, err := registrations.Get(ctx, apiService.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
		} else {
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiregistrationv1.Available {
					if cond.Status == apiregistrationv1.ConditionTrue {
						return nil
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("APIService v1beta1.metrics.k8s.io not Available (%s): %w", last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
