// Command etcd is etcd's own server entry point, built as a dependency of this module
// because etcd's module has relative replaces that `go install` refuses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
