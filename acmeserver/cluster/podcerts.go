package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"

	certv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/api/v1alpha1"
)

// The dashboard's pod certificates page lists PodCertificateRequests:
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=podcertificaterequests,verbs=list

// podCertificates lists the PodCertificateRequests for kacme's signer names
// for the dashboard, a page at a time, from the API server (paged lists; no
// cache of every request in the cluster).
type podCertificates struct{ r client.Reader }

func (p podCertificates) PodCertificates(ctx context.Context, token string, limit int) ([]dashboard.PodCertificate, string, error) {
	var list certv1.PodCertificateRequestList
	ctx, cancel := context.WithTimeout(ctx, kube.RequestTimeout) // a page view must not wait on a stuck API server
	defer cancel()
	if err := p.r.List(ctx, &list, client.Limit(int64(limit)), client.Continue(token)); err != nil {
		return nil, "", err
	}
	var out []dashboard.PodCertificate
	for i := range list.Items {
		r := &list.Items[i]
		if !strings.HasPrefix(r.Spec.SignerName, v1alpha1.SignerNamePrefix) {
			continue
		}
		row := dashboard.PodCertificate{Namespace: r.Namespace, Name: r.Name, Pod: r.Spec.PodName, ServiceAccount: r.Spec.ServiceAccountName,
			SignerName: r.Spec.SignerName, Status: "Pending", Created: r.CreationTimestamp.Time}
		for _, t := range []string{"Issued", "Denied", "Failed"} {
			if c := meta.FindStatusCondition(r.Status.Conditions, t); c != nil && c.Status == "True" {
				row.Status, row.Reason, row.Message = t, c.Reason, c.Message
			}
		}
		if row.Status == "Issued" {
			row.Reason, row.Message = "", ""
		}
		if b, _ := pem.Decode([]byte(r.Status.CertificateChain)); b != nil {
			if leaf, err := x509.ParseCertificate(b.Bytes); err == nil {
				row.Serial, row.NotAfter = leaf.SerialNumber.Text(16), leaf.NotAfter
				row.Names = append(row.Names, leaf.DNSNames...)
				for _, u := range leaf.URIs {
					row.Names = append(row.Names, u.String())
				}
			}
		}
		out = append(out, row)
	}
	return out, list.Continue, nil
}
