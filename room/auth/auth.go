// Package auth issues and verifies the JWTs a client presents in hello: HS256,
// with the user id, display name, role and an optional room allow-list.
// Verification is local (no network call on the connect path). The app's
// backend mints tokens with the same shared secret (`danmaku token` does it
// from the command line).
package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danmaku/danmaku/room/proto"
)

// Claims are what a token says about its holder.
type Claims struct {
	// Name is the display name shown beside the user's danmaku.
	Name string `json:"name,omitempty"`
	// Role is one of viewer, vip, moderator, streamer, admin (guest is never
	// in a token). Missing means viewer.
	Role proto.Role `json:"role,omitempty"`
	// Rooms, when present, lists the only rooms the holder may join.
	Rooms []string `json:"rooms,omitempty"`
	jwt.RegisteredClaims
}

// User is the token's subject.
func (c *Claims) User() string { return c.Subject }

// AllowsRoom reports whether the token lets its holder into room.
func (c *Claims) AllowsRoom(room string) bool {
	return len(c.Rooms) == 0 || slices.Contains(c.Rooms, room)
}

// MaxNameLen bounds the display name (bytes): it is copied into every entry.
const MaxNameLen = 64

// MaxUserLen bounds the user id (bytes).
const MaxUserLen = 64

// Sign makes an HS256 token for user, valid for ttl (no expiry when ttl is 0).
func Sign(secret []byte, user, name string, role proto.Role, rooms []string, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("sign token: empty secret")
	}
	if user == "" || len(user) > MaxUserLen {
		return "", fmt.Errorf("sign token: user id must be 1-%d bytes", MaxUserLen)
	}
	if role == "" {
		role = proto.RoleViewer
	}
	if !role.Valid() || role == proto.RoleGuest {
		return "", fmt.Errorf("sign token: unknown role %q", role)
	}
	for _, r := range rooms {
		if !proto.ValidRoom(r) {
			return "", fmt.Errorf("sign token: invalid room id %q", r)
		}
	}
	now := time.Now()
	c := Claims{Name: name, Role: role, Rooms: rooms, RegisteredClaims: jwt.RegisteredClaims{
		Subject:  user,
		IssuedAt: jwt.NewNumericDate(now),
	}}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// MaxTokenLen bounds a token before it is parsed.
const MaxTokenLen = 2048

// Verify checks an HS256 token and returns its claims. Errors wrap
// proto.CodeTokenExpired for a token past exp or before nbf and
// proto.CodeUnauthorized for everything else (alg none, another algorithm,
// wrong key, malformed, no subject, unknown role).
func Verify(secret []byte, token string) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLen {
		return nil, fmt.Errorf("verify token: %w", proto.CodeUnauthorized)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithLeeway(2*time.Second),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, fmt.Errorf("verify token: %v: %w", err, proto.CodeTokenExpired)
	case err != nil:
		return nil, fmt.Errorf("verify token: %v: %w", err, proto.CodeUnauthorized)
	}
	if c.Subject == "" || len(c.Subject) > MaxUserLen || len(c.Name) > MaxNameLen {
		return nil, fmt.Errorf("verify token: subject or name missing or too long: %w", proto.CodeUnauthorized)
	}
	if c.Role == "" {
		c.Role = proto.RoleViewer
	}
	if !c.Role.Valid() || c.Role == proto.RoleGuest {
		return nil, fmt.Errorf("verify token: unknown role %q: %w", c.Role, proto.CodeUnauthorized)
	}
	if c.Name == "" {
		c.Name = c.Subject
	}
	return &c, nil
}
