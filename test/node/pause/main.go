// Command pause is the real-node test's pod sandbox: it holds the pod's
// namespaces and waits until it is told to stop (the role of
// registry.k8s.io/pause, which no registry here serves).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
