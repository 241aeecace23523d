package kube

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// IndexedLabels are the label keys the RA looks objects up by; each gets a
// cache index so a lookup reads one index entry instead of scanning a namespace.
var IndexedLabels = []string{
	v1alpha1.LabelAccount, v1alpha1.LabelKeyThumbprint, v1alpha1.LabelEABKeyID,
	v1alpha1.LabelReplaces, v1alpha1.LabelOrder, v1alpha1.LabelState,
}

// stateKinds are the kinds the server stores.
var stateKinds = []storage.Object{&v1alpha1.AcmeAccount{}, &v1alpha1.AcmeOrder{}, &v1alpha1.AcmeChallenge{}, &v1alpha1.AcmeCertificate{}}

func indexName(label string) string { return "label:" + label }

// nameIndex indexes objects by name for lookups in every namespace.
const nameIndex = "name"

// RegisterIndexes adds the name and label indexes of kinds (default: every
// state kind) to a cache before it starts; a Store built with WithIndexes
// then reads through them. Indexing a kind starts its informer, so a
// component indexes only the kinds it may list.
func RegisterIndexes(ctx context.Context, indexer client.FieldIndexer, kinds ...storage.Object) error {
	if len(kinds) == 0 {
		kinds = stateKinds
	}
	for _, obj := range kinds {
		err := indexer.IndexField(ctx, obj, nameIndex, func(o client.Object) []string { return []string{o.GetName()} })
		if err != nil {
			return fmt.Errorf("index %T by name: %w", obj, err)
		}
		for _, label := range IndexedLabels {
			label := label
			err := indexer.IndexField(ctx, obj, indexName(label), func(o client.Object) []string {
				if v, ok := o.GetLabels()[label]; ok {
					return []string{v}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("index %T by %s: %w", obj, label, err)
			}
		}
	}
	return nil
}

// WithIndexes makes List use the indexes RegisterIndexes added to the reader.
func (s *Store) WithIndexes() *Store {
	s.indexed = map[string]bool{}
	for _, l := range IndexedLabels {
		s.indexed[l] = true
	}
	return s
}

// listOptions picks one indexed label for the cache lookup; the rest of the
// labels are matched on the results.
func (s *Store) listOptions(ns string, labels map[string]string) []client.ListOption {
	var opts []client.ListOption
	if ns != storage.AllNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	for _, l := range IndexedLabels {
		if v, ok := labels[l]; ok && s.indexed[l] {
			return append(opts, client.MatchingFields{indexName(l): v})
		}
	}
	if len(labels) > 0 {
		opts = append(opts, client.MatchingLabels(labels))
	}
	return opts
}
