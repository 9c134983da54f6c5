// vcsim serves the govmomi vCenter simulator (simulator.VPX) over plain http on loopback,
// for the vSphere provider tests. It prints the SDK URL on stdout once listening and
// runs until SIGINT/SIGTERM.
//
// Build (Debian ships govmomi's source):
//   GOPATH=/usr/share/gocode GO111MODULE=off go build -o var/vcsim/vcsim ./tools/vcsim
package main

import (
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on (loopback only)")
	username := flag.String("username", "user", "login user name")
	password := flag.String("password", "pass", "login password")
	flag.Parse()

	model := simulator.VPX()
	model.Datastore = 2
	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: create model: %v", err)
	}
	defer model.Remove()

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	model.Service.TLS = nil
	server := model.Service.NewServer()
	defer server.Close()

	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\n", u.String())
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
