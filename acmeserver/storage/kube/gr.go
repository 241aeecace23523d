package kube

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kacme/kacme/api/v1alpha1"
)

func schemaGR(kind string) schema.GroupResource {
	return schema.GroupResource{Group: v1alpha1.GroupVersion.Group, Resource: strings.ToLower(kind) + "s"}
}
