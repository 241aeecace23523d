package ra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

const rateWindow = time.Hour

type clientIPKey struct{}

// WithClientIP tells the RA which address a request came from (the front end
// sets it; rate limits per address use it).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

func clientIP(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// ClientIPLabel is the label value for an address: a hash, as addresses
// (IPv6) are not label values and need not be readable in the object.
func ClientIPLabel(ip string) string {
	sum := sha256.Sum256([]byte(ip))
	return hex.EncodeToString(sum[:16])
}

// limited refuses when at least limit of the times are within the window:
// the client may retry once the oldest of those leaves it.
func (r *RA) limited(limit int, times []time.Time, what string) *acme.Problem {
	if limit <= 0 {
		return nil
	}
	now := r.now()
	var oldest time.Time
	n := 0
	for _, t := range times {
		if now.Sub(t) < rateWindow {
			n++
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	if n < limit {
		return nil
	}
	wait := max(oldest.Add(rateWindow).Sub(now), time.Second)
	pr := &acme.Problem{Type: acme.RateLimited, Status: http.StatusTooManyRequests,
		Detail: fmt.Sprintf("%s: %d in the last hour, the limit is %d; retry after %s", what, n, limit, wait.Round(time.Second))}
	pr.Headers = http.Header{"Retry-After": []string{strconv.Itoa(int((wait + time.Second - 1) / time.Second))}}
	return pr
}

// checkOrderLimits applies the profile's per-account order limits.
func (r *RA) checkOrderLimits(ctx context.Context, p *Profile, a *v1alpha1.AcmeAccount) error {
	rl := p.Spec.RateLimits
	if rl.NewOrdersPerAccount > 0 {
		var list v1alpha1.AcmeOrderList
		if err := r.store.List(ctx, a.Namespace, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: a.Name}}); err != nil {
			return err
		}
		var times []time.Time
		for _, o := range list.Items {
			times = append(times, o.CreationTimestamp.Time)
		}
		if pr := r.limited(rl.NewOrdersPerAccount, times, "new orders of this account"); pr != nil {
			r.metrics.RateLimited(p.Name, "newOrdersPerAccount")
			return pr
		}
	}
	if rl.FailedValidationsPerAccount > 0 {
		var list v1alpha1.AcmeChallengeList
		if err := r.store.List(ctx, a.Namespace, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: a.Name}}); err != nil {
			return err
		}
		var times []time.Time
		for _, az := range list.Items {
			if az.Status.Status == acme.StatusInvalid {
				times = append(times, az.CreationTimestamp.Time)
			}
		}
		if pr := r.limited(rl.FailedValidationsPerAccount, times, "failed validations of this account"); pr != nil {
			r.metrics.RateLimited(p.Name, "failedValidationsPerAccount")
			return pr
		}
	}
	return nil
}

// checkAccountLimit applies the profile's per-address account limit.
func (r *RA) checkAccountLimit(ctx context.Context, p *Profile, ip string) error {
	limit := p.Spec.RateLimits.NewAccountsPerIP
	if limit <= 0 || ip == "" {
		return nil
	}
	var list v1alpha1.AcmeAccountList
	if err := r.store.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelClientIP: ClientIPLabel(ip)}}); err != nil {
		return err
	}
	var times []time.Time
	for _, a := range list.Items {
		times = append(times, a.CreationTimestamp.Time)
	}
	if pr := r.limited(limit, times, "new accounts from this address"); pr != nil {
		r.metrics.RateLimited(p.Name, "newAccountsPerIP")
		return pr
	}
	return nil
}
