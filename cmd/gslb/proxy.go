package main

import (
	"fmt"
	"os"
)

func runProxy(args []string) int {
	fmt.Fprintln(os.Stderr, "gslb proxy: not built yet")
	return 1
}
