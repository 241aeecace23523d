package conformance

import (
	"crypto/sha512"
	"encoding/pem"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kacme/kacme/acmeserver/storage"
)

func sha512_384(b []byte) []byte {
	s := sha512.Sum384(b)
	return s[:]
}

func metaItems(l storage.ObjectList) ([]storage.Object, error) {
	objs, err := meta.ExtractList(l)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(interface {
			storage.Object
			runtime.Object
		}))
	}
	return out, nil
}

func firstPEM(t interface{ Fatalf(string, ...any) }, b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM block in %q", b)
	}
	return blk.Bytes
}
