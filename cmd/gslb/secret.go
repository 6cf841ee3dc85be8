package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gslbd/gslb/store"
)

func runSecret(args []string) int {
	return secret(args, os.Stdout, os.Stderr)
}

// secret prints a new random cluster secret (256 bits from crypto/rand),
// for cluster.secret or the file cluster.secret_file names.
func secret(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("secret", "", "Prints a new random cluster secret. Give every node of a cluster the same one\n(cluster.secret, or a file named by cluster.secret_file, mode 0600).", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(stdout, store.NewSecret())
	return 0
}
