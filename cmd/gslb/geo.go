package main

import (
	"fmt"
	"os"
)

func runGeo(args []string) int {
	fmt.Fprintln(os.Stderr, "gslb geo: not built yet")
	return 1
}
