package store_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/gslbd/gslb/store"
)

// A one-node cluster: start it, write an override, and read it back. A
// real node lists every voter in Peers, and wires State and Subscribe into
// the DNS snapshot builder.
func Example() {
	dir, err := os.MkdirTemp("", "gslb-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A real node sets RaftAddr ("0.0.0.0:7946") and AdvertiseAddr; the
	// example listens on a free loopback port instead.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	s, err := store.New(store.Config{
		NodeID:   "us-east-1",
		DataDir:  dir,
		Listener: ln,
		Peers:    []store.Peer{{ID: "us-east-1", Addr: addr, Voter: true}},
		Secret:   "3q7RhX0d-PzVkT1mWc8LbN4sYf2GjA6uQe9oKxUwZ5i", // from "gslb secret"
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !s.IsLeader() { // a single node elects itself within a second
		time.Sleep(10 * time.Millisecond)
	}
	err = s.Submit(ctx, &store.Override{
		Kind: store.KindRegion, Name: "eu-west", Action: store.ActionDrain,
		At: time.Now().UTC(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Submit returns once the leader applied the command; other nodes
	// signal it on their Subscribe channel, where the node rebuilds its
	// DNS snapshot.
	o, _ := s.State().Override(store.KindRegion, "eu-west")
	fmt.Println(o.Kind, o.Name, o.Action, o.Active(time.Now()))
	// Output: region eu-west drain true
}
