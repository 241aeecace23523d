package dashboard

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
)

// KubeAuthorizer signs users in with their Kubernetes bearer token (one
// TokenReview, at sign-in only: the session cookie then carries the checked
// identity, not the token) and asks the API server whether they may list or
// update the kacme resources in a namespace (SubjectAccessReview): RBAC
// decides what the dashboard shows. Decisions are kept for CacheTTL, so
// page views do not turn into API requests one for one.
type KubeAuthorizer struct {
	// Client creates the reviews (the server's own client; reviews are
	// never cached by it, they go to the API server).
	Client   client.Client
	CacheTTL time.Duration // default 30 s

	mu   sync.Mutex
	sars map[string]cachedDecision
}

// reviewTimeout bounds a TokenReview or SubjectAccessReview (a page waits
// for it; an API server that does not answer must not hold it forever).
const reviewTimeout = 10 * time.Second

// maxCached is the cache size above which expired answers are dropped.
const maxCached = 10000

type cachedDecision struct {
	ok bool
	at time.Time
}

func (k *KubeAuthorizer) ttl() time.Duration {
	if k.CacheTTL > 0 {
		return k.CacheTTL
	}
	return 30 * time.Second
}

// Authenticate implements Authorizer with a TokenReview.
func (k *KubeAuthorizer) Authenticate(ctx context.Context, token string) (*User, error) {
	if token == "" {
		return nil, ErrUnauthenticated
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}
	if err := k.Client.Create(ctx, tr); err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, ErrUnauthenticated
	}
	u := &User{Name: tr.Status.User.Username, UID: tr.Status.User.UID, Groups: tr.Status.User.Groups, Extra: map[string][]string{}}
	for k, v := range tr.Status.User.Extra {
		u.Extra[k] = v
	}
	return u, nil
}

// Allowed implements Authorizer with a SubjectAccessReview on the
// acme.kacme.io resource.
func (k *KubeAuthorizer) Allowed(ctx context.Context, u *User, verb, resource, namespace string) (bool, error) {
	key := strings.Join([]string{u.Name, u.UID, strings.Join(u.Groups, ","), verb, resource, namespace}, "\x00")
	k.mu.Lock()
	if c, ok := k.sars[key]; ok && time.Since(c.at) < k.ttl() {
		k.mu.Unlock()
		return c.ok, nil
	}
	k.mu.Unlock()
	extra := map[string]authzv1.ExtraValue{}
	for name, v := range u.Extra {
		extra[name] = v
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups, Extra: extra,
		ResourceAttributes: &authzv1.ResourceAttributes{Group: v1alpha1.GroupVersion.Group, Resource: resource, Verb: verb, Namespace: namespace},
	}}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	if err := k.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	k.mu.Lock()
	if k.sars == nil {
		k.sars = map[string]cachedDecision{}
	}
	if len(k.sars) > maxCached {
		for key, c := range k.sars {
			if time.Since(c.at) >= k.ttl() {
				delete(k.sars, key)
			}
		}
	}
	k.sars[key] = cachedDecision{ok: sar.Status.Allowed, at: time.Now()}
	k.mu.Unlock()
	return sar.Status.Allowed, nil
}
