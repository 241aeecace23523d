package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// serviceEndpoints implements va.Services from the informer cache: a name
// maps to a Service through the profile's serviceRoutes, or by being the
// Service's cluster DNS name; its ready EndpointSlice endpoints are dialled.
type serviceEndpoints struct{ r client.Reader }

// ServiceFor returns the Service a validated name maps to.
func ServiceFor(host string, routes []v1alpha1.ServiceRoute) (namespace, name string, ok bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, r := range routes {
		suffix := strings.TrimSuffix(strings.ToLower(r.Suffix), ".")
		if host == suffix || strings.HasSuffix(host, "."+suffix) {
			return r.Namespace, r.Name, true
		}
	}
	l := strings.Split(host, ".")
	if (len(l) == 3 && l[2] == "svc") || (len(l) == 5 && l[2] == "svc" && l[3] == "cluster" && l[4] == "local") {
		return l[1], l[0], true
	}
	return "", "", false
}

func (s serviceEndpoints) Endpoints(ctx context.Context, host string, port int, routes []v1alpha1.ServiceRoute) ([]string, bool, error) {
	ns, name, ok := ServiceFor(host, routes)
	if !ok {
		return nil, false, nil
	}
	var svc corev1.Service
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, true, fmt.Errorf("%s maps to Service %s/%s, which does not exist", host, ns, name)
		}
		return nil, true, err
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if p := &svc.Spec.Ports[i]; int(p.Port) == port && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
			sp = p
		}
	}
	if sp == nil {
		return nil, true, fmt.Errorf("%s maps to Service %s/%s, which has no TCP port %d", host, ns, name, port)
	}
	var slices discoveryv1.EndpointSliceList
	if err := s.r.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return nil, true, err
	}
	var eps []string
	for _, sl := range slices.Items {
		target := -1
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
				target = int(*p.Port)
			}
		}
		if target < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				if sl.AddressType == discoveryv1.AddressTypeFQDN {
					eps = append(eps, net.JoinHostPort(a, strconv.Itoa(target)))
				} else if ip, err := netip.ParseAddr(a); err == nil {
					eps = append(eps, netip.AddrPortFrom(ip, uint16(target)).String())
				}
			}
		}
	}
	return eps, true, nil
}
