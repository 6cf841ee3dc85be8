package main

func runCheckZone(args []string) int { return 1 }
