package kube

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// kindIndex is what one kind is looked up by.
type kindIndex struct {
	byName bool     // by name in every namespace, through an index
	names  bool     // by name in every namespace, through WithSummaries' name map
	labels []string // by these labels
}

// kindIndexes: each index costs two entries per object that has the value
// (controller-runtime keeps one for every namespace and one for the
// object's), and a value only one object has costs two sets of one (about
// 600 bytes), so a kind is indexed by what the server reads it by and
// nothing else: accounts by ID in any namespace, by key thumbprint and EAB
// key ID; orders by account and by the certificate they replace;
// authorizations by account and validation state; certificates by state
// (revoked, for the CRL). Certificates by serial in any namespace come from
// WithSummaries' map of names (one entry per certificate) when the store
// keeps summaries, and from a scan of the kind otherwise. Nothing in the
// server lists authorizations by order (an order names its authorizations;
// retention, which does, lists through the API server).
var kindIndexes = map[string]kindIndex{
	"AcmeAccount":     {byName: true, labels: []string{v1alpha1.LabelKeyThumbprint, v1alpha1.LabelEABKeyID}},
	"AcmeOrder":       {labels: []string{v1alpha1.LabelAccount, v1alpha1.LabelReplaces}},
	"AcmeChallenge":   {labels: []string{v1alpha1.LabelAccount, v1alpha1.LabelState}},
	"AcmeCertificate": {names: true, labels: []string{v1alpha1.LabelState}},
}

// stateKinds are the kinds the server stores.
var stateKinds = []storage.Object{&v1alpha1.AcmeAccount{}, &v1alpha1.AcmeOrder{}, &v1alpha1.AcmeChallenge{}, &v1alpha1.AcmeCertificate{}}

func indexName(label string) string { return "label:" + label }

// nameIndex indexes objects by name for lookups in every namespace.
const nameIndex = "name"

// RegisterIndexes adds the indexes of kinds (default: every state kind) to a
// cache before it starts (kindIndexes); a Store built with WithIndexes then
// reads through them. Indexing a kind starts its informer, so a component
// indexes only the kinds it may list.
func RegisterIndexes(ctx context.Context, indexer client.FieldIndexer, kinds ...storage.Object) error {
	if len(kinds) == 0 {
		kinds = stateKinds
	}
	for _, obj := range kinds {
		kind, err := storage.KindOf(obj)
		if err != nil {
			return err
		}
		ix := kindIndexes[kind]
		if ix.byName {
			err := indexer.IndexField(ctx, obj, nameIndex, func(o client.Object) []string { return []string{o.GetName()} })
			if err != nil {
				return fmt.Errorf("index %T by name: %w", obj, err)
			}
		}
		for _, label := range ix.labels {
			label := label
			err := indexer.IndexField(ctx, obj, indexName(label), func(o client.Object) []string {
				if v, ok := labelsOf(o)[label]; ok {
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

// WithIndexes makes Get in every namespace and List use the indexes
// RegisterIndexes added to the reader.
func (s *Store) WithIndexes() *Store {
	s.indexed = true
	return s
}

// byName reports whether kind is indexed by name.
func (s *Store) byName(kind string) bool { return s.indexed && kindIndexes[kind].byName }

// listOptions picks one label kind is indexed by for the cache lookup; the
// rest of the labels are matched on the results.
func (s *Store) listOptions(kind, ns string, labels map[string]string) []client.ListOption {
	var opts []client.ListOption
	if ns != storage.AllNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if s.indexed {
		for _, l := range kindIndexes[kind].labels {
			if v, ok := labels[l]; ok {
				return append(opts, client.MatchingFields{indexName(l): v})
			}
		}
	}
	if len(labels) > 0 {
		opts = append(opts, client.MatchingLabels(labels))
	}
	return opts
}
