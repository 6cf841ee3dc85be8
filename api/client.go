package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Client talks to one node's admin listener. The zero value is not usable:
// set Server.
type Client struct {
	// Server is the admin listener's host:port.
	Server string
	// Token is sent as "Authorization: Bearer TOKEN" when not empty.
	Token string
	// HTTP is the client to use (default: one with a 20 s timeout).
	HTTP *http.Client
}

// Status returns GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (*Status, []byte, error) {
	var st Status
	raw, err := c.Do(ctx, "GET", "/api/v1/status", nil, &st)
	if err != nil {
		return nil, nil, err
	}
	return &st, raw, nil
}

// Events returns GET /api/v1/events: the recent health transitions.
func (c *Client) Events(ctx context.Context) ([]Event, []byte, error) {
	var evs []Event
	raw, err := c.Do(ctx, "GET", "/api/v1/events", nil, &evs)
	return evs, raw, err
}

// Override posts an override: action is drain, undrain, force-up or
// force-down.
func (c *Client) Override(ctx context.Context, action string, req OverrideRequest) error {
	_, err := c.Do(ctx, "POST", "/api/v1/"+action, req, nil)
	return err
}

// Leave asks the node to leave its cluster.
func (c *Client) Leave(ctx context.Context) error {
	_, err := c.Do(ctx, "POST", "/api/v1/leave", struct{}{}, nil)
	return err
}

// Do sends one request (body, if not nil, as JSON) and decodes a 200 reply
// into v (if not nil); it returns the raw reply. An error reply becomes an
// error carrying the node's message.
func (c *Client) Do(ctx context.Context, method, path string, body, v any) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Server+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("node %s: no admin listener there (connection refused): start the node with admin: ADDR in its config or --admin, or point at one with --server / GSLB_ADMIN", c.Server)
		}
		return nil, fmt.Errorf("node %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", c.Server, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			return nil, &StatusError{Server: c.Server, Code: resp.StatusCode, Msg: e.Error}
		}
		return nil, &StatusError{Server: c.Server, Code: resp.StatusCode, Msg: resp.Status + ": " + strings.TrimSpace(string(reply))}
	}
	if v != nil {
		if err := json.Unmarshal(reply, v); err != nil {
			return nil, fmt.Errorf("node %s: %w", c.Server, err)
		}
	}
	return reply, nil
}

// StatusError is a node's error reply.
type StatusError struct {
	Server string
	Code   int
	Msg    string
}

func (e *StatusError) Error() string { return fmt.Sprintf("node %s: %s", e.Server, e.Msg) }
