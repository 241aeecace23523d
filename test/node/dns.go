package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CoreDNSImage is the cluster DNS's image, built from the CoreDNS binary
// hack/tools.sh builds.
const CoreDNSImage = "kacme.test/coredns:v1.15.0"

// Zone is a DNS zone the cluster DNS serves authoritatively and accepts RFC
// 2136 updates for, signed with a TSIG key (CoreDNS's dynupdate plugin), as
// docs/cert-manager.md describes.
type Zone struct {
	Name, TSIGKey, TSIGSecret string
}

// InstallDNS runs CoreDNS as the cluster DNS (Service kube-system/kube-dns at
// DNSIP): cluster.local from the API (the kubernetes plugin), and zones.
func (c *Cluster) InstallDNS(ctx context.Context, coredns string, zones ...Zone) error {
	if err := c.ImportBinary(ctx, coredns, CoreDNSImage, "65532:65532"); err != nil {
		return err
	}
	corefile := `.:1053 {
    errors
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
`
	zoneData := ""
	for _, z := range zones {
		corefile += fmt.Sprintf(`%[1]s:1053 {
    errors
    tsig {
        secret %[2]s. %[3]s
        require_opcode UPDATE
    }
    dynupdate {
        file /etc/coredns/%[1]s.zone
        allow %[2]s. * TXT
    }
}
`, z.Name, z.TSIGKey, z.TSIGSecret)
		zoneData += fmt.Sprintf("  %[1]s.zone: |\n    $ORIGIN %[1]s.\n    @ 5 IN SOA ns.%[1]s. admin.%[1]s. 1 60 60 3600 5\n    @ 5 IN NS ns.%[1]s.\n    ns 5 IN A %[2]s\n", z.Name, DNSIP)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
%s
%s---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      containers:
      - name: coredns
        image: %s
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        securityContext:
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: %s
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`, indent(corefile, "    "), zoneData, CoreDNSImage, DNSIP)
	if err := c.Apply(ctx, manifest); err != nil {
		return err
	}
	return c.WaitDeployment(ctx, "kube-system", "coredns", 2*time.Minute)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// Apply applies a manifest with kubectl (server-side).
func (c *Cluster) Apply(ctx context.Context, manifest string) error {
	f := filepath.Join(c.o.Dir, fmt.Sprintf("apply-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		return err
	}
	defer func() { _ = os.Remove(f) }()
	_, err := c.Kubectl(ctx, "apply", "--server-side", "-f", f)
	return err
}

// Kubectl runs kubectl as the admin and returns its output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin("kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// WaitDeployment waits until every replica of a Deployment is updated and available.
func (c *Cluster) WaitDeployment(ctx context.Context, ns, name string, d time.Duration) error {
	return c.poll(ctx, "Deployment "+ns+"/"+name, d, func() error {
		var dep appsv1.Deployment
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &dep); err != nil {
			return err
		}
		want := int32(1)
		if dep.Spec.Replicas != nil {
			want = *dep.Spec.Replicas
		}
		if dep.Status.ObservedGeneration < dep.Generation || dep.Status.UpdatedReplicas != want ||
			dep.Status.AvailableReplicas != want || dep.Status.Replicas != want {
			return fmt.Errorf("%d/%d updated, %d available, %d in all", dep.Status.UpdatedReplicas, want, dep.Status.AvailableReplicas, dep.Status.Replicas)
		}
		return nil
	})
}
