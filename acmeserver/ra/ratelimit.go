package ra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/profile"
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
	return rateLimitedProblem(wait, "%s: %d in the last hour, the limit is %d; retry after %s", what, n, limit, wait.Round(time.Second))
}

// rateLimitedProblem is 429 rateLimited with Retry-After in whole seconds
// (RFC 8555 §6.6).
func rateLimitedProblem(wait time.Duration, format string, args ...any) *acme.Problem {
	pr := &acme.Problem{Type: acme.RateLimited, Status: http.StatusTooManyRequests, Detail: fmt.Sprintf(format, args...)}
	pr.Headers = http.Header{"Retry-After": []string{strconv.Itoa(int((wait + time.Second - 1) / time.Second))}}
	return pr
}

// maxPendingRetry bounds the Retry-After of the pending-authorizations
// limit: an authorization usually leaves pending when its client validates
// it, long before it expires.
const maxPendingRetry = 5 * time.Minute

// accountUsage is what the order limits counted for one account: the
// creation times of its orders within the window and its pending
// authorizations, counted from the store, plus the orders this process
// created since.
type accountUsage struct {
	counted time.Time
	orders  []time.Time
	pending int
	soonest time.Time // the soonest expiry among the pending authorizations
}

// UsageReuse is how long an account's counted usage answers "well below the
// limits" without counting again. Counting reads every order and
// authorization the account has (its history, up to the retention), so it
// is done only when the cached usage could refuse, or is older than this.
// Within one process the usage stays exact or over-counts (an over-count
// only costs a recount); orders other replicas accepted meanwhile are seen
// at the next count, so across replicas a limit can be passed by what they
// accepted within UsageReuse.
const UsageReuse = 10 * time.Second

// usageCache holds accountUsage by account (namespace/name).
type usageCache struct {
	mu sync.Mutex
	m  map[string]*accountUsage
}

// allows reports whether u, pruned to the window, leaves room for one more
// order of n authorizations under every limit that u counts.
func (u *accountUsage) allows(rl profile.Limits, n int, now time.Time) bool {
	kept := u.orders[:0]
	for _, t := range u.orders {
		if now.Sub(t) < rateWindow {
			kept = append(kept, t)
		}
	}
	u.orders = kept
	return (rl.NewOrdersPerAccount == 0 || len(u.orders)+1 <= rl.NewOrdersPerAccount) &&
		(rl.PendingAuthorizationsPerAccount == 0 || u.pending+n <= rl.PendingAuthorizationsPerAccount)
}

// fresh returns key's usage when it was counted within UsageReuse.
func (c *usageCache) fresh(key string, now time.Time) *accountUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.m[key]
	if u == nil || now.Before(u.counted) || now.Sub(u.counted) >= UsageReuse {
		return nil
	}
	return u
}

func (c *usageCache) put(key string, u *accountUsage, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*accountUsage{}
	}
	if len(c.m) >= 10000 {
		for k, old := range c.m {
			if now.Sub(old.counted) >= UsageReuse {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = u
}

// add records an order of n authorizations this process created.
func (c *usageCache) add(key string, at time.Time, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.m[key]; u != nil {
		u.orders = append(u.orders, at)
		u.pending += n
	}
}

// checkOrderLimits applies the profile's per-account order limits to an
// order of newAuthzs authorizations (NewOrder holds the account's lock).
func (r *RA) checkOrderLimits(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, newAuthzs int) error {
	rl := p.Limits
	if rl.NewOrdersPerAccount == 0 && rl.PendingAuthorizationsPerAccount == 0 && rl.FailedValidationsPerAccount == 0 {
		return nil
	}
	key, now := a.Namespace+"/"+a.Name, r.now()
	if rl.FailedValidationsPerAccount == 0 { // that one (opt-in) is counted every time
		if u := r.usage.fresh(key, now); u != nil && u.allows(rl, newAuthzs, now) {
			return nil
		}
	}
	u, failed, err := r.countUsage(ctx, a, now)
	if err != nil {
		return err
	}
	r.usage.put(key, u, now)
	if pr := r.limited(rl.NewOrdersPerAccount, u.orders, "new orders of this account"); pr != nil {
		r.metrics.RateLimited(p.Name, "newOrdersPerAccount")
		return pr
	}
	if pr := r.limited(rl.FailedValidationsPerAccount, failed, "failed validations of this account"); pr != nil {
		r.metrics.RateLimited(p.Name, "failedValidationsPerAccount")
		return pr
	}
	if rl.PendingAuthorizationsPerAccount > 0 && u.pending+newAuthzs > rl.PendingAuthorizationsPerAccount {
		r.metrics.RateLimited(p.Name, "pendingAuthorizationsPerAccount")
		wait := min(max(u.soonest.Sub(now), time.Second), maxPendingRetry)
		return rateLimitedProblem(wait, "this account has %d pending authorizations and the order would add %d; the limit is %d. "+
			"Complete or deactivate pending authorizations, or retry after %s", u.pending, newAuthzs, rl.PendingAuthorizationsPerAccount, wait.Round(time.Second))
	}
	return nil
}

// countUsage counts an account's orders of the last hour, its pending
// authorizations and the creation times of its failed ones, from the
// store's summaries (no object is read).
func (r *RA) countUsage(ctx context.Context, a *v1alpha1.AcmeAccount, now time.Time) (*accountUsage, []time.Time, error) {
	byAccount := map[string]string{v1alpha1.LabelAccount: a.Name}
	orders, err := storage.ListSummaries(ctx, r.store, a.Namespace, "AcmeOrder", byAccount)
	if err != nil {
		return nil, nil, err
	}
	u := &accountUsage{counted: now}
	pending := func(expires time.Time, n int) {
		u.pending += n
		if u.soonest.IsZero() || expires.Before(u.soonest) {
			u.soonest = expires
		}
	}
	// A pending order's authorizations that are not stored are pending:
	// they are derived from the order until a challenge is answered.
	unstored := map[string]int{}
	for _, o := range orders {
		if now.Sub(o.Created) < rateWindow {
			u.orders = append(u.orders, o.Created)
		}
		if o.Offered > 0 && o.Status == acme.StatusPending && now.Before(o.At) {
			unstored[o.Name] = o.Offered
		}
	}
	azs, err := storage.ListSummaries(ctx, r.store, a.Namespace, "AcmeChallenge", byAccount)
	if err != nil {
		return nil, nil, err
	}
	var failed []time.Time
	for _, az := range azs {
		if order, _, ok := splitAuthzName(az.Name); ok {
			if n, ok := unstored[order]; ok {
				unstored[order] = n - 1
			}
		}
		switch {
		case az.Status == acme.StatusInvalid:
			failed = append(failed, az.Created)
		case az.Status == acme.StatusPending && now.Before(az.At):
			pending(az.At, 1)
		}
	}
	for _, o := range orders {
		if n := unstored[o.Name]; n > 0 {
			pending(o.At, n)
		}
	}
	return u, failed, nil
}

// checkAccountLimit applies the profile's per-address account limit.
func (r *RA) checkAccountLimit(ctx context.Context, p *profile.Profile, ip string) error {
	limit := p.Limits.NewAccountsPerIP
	if limit <= 0 || ip == "" {
		return nil
	}
	list, err := storage.ListSummaries(ctx, r.store, storage.AllNamespaces, "AcmeAccount", map[string]string{v1alpha1.LabelClientIP: ClientIPLabel(ip)})
	if err != nil {
		return err
	}
	times := make([]time.Time, len(list))
	for i := range list {
		times[i] = list[i].Created
	}
	if pr := r.limited(limit, times, "new accounts from this address"); pr != nil {
		r.metrics.RateLimited(p.Name, "newAccountsPerIP")
		return pr
	}
	return nil
}
