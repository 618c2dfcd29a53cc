package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danmaku/danmaku/room/proto"
)

var secret = []byte("test-secret")

func TestVerify(t *testing.T) {
	good, err := Sign(secret, "u1", "Ann", proto.RoleVIP, []string{"r1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	noRole, _ := Sign(secret, "u2", "", "", nil, 0)
	other, _ := Sign([]byte("other"), "u1", "Ann", proto.RoleVIP, nil, time.Hour)
	expired := mint(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(-time.Minute).Unix()})
	notYet := mint(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u1", "nbf": time.Now().Add(time.Hour).Unix()})
	none := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u1"})
	hs512 := mint(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "u1"})
	noSub := mint(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"name": "x"})
	badRole := mint(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u1", "role": "god"})
	guestRole := mint(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u1", "role": "guest"})

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"good", good, nil},
		{"no role means viewer", noRole, nil},
		{"empty", "", proto.CodeUnauthorized},
		{"garbage", "not.a.token", proto.CodeUnauthorized},
		{"too long", strings.Repeat("a", MaxTokenLen+1), proto.CodeUnauthorized},
		{"wrong key", other, proto.CodeUnauthorized},
		{"expired", expired, proto.CodeTokenExpired},
		{"not yet valid", notYet, proto.CodeTokenExpired},
		{"alg none", none, proto.CodeUnauthorized},
		{"other alg", hs512, proto.CodeUnauthorized},
		{"no subject", noSub, proto.CodeUnauthorized},
		{"unknown role", badRole, proto.CodeUnauthorized},
		{"guest role in token", guestRole, proto.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Verify(secret, tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.Role == "" || c.Name == "" {
					t.Fatalf("defaults not applied: %+v", c)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestClaims(t *testing.T) {
	tok, _ := Sign(secret, "u1", "Ann", proto.RoleModerator, []string{"a", "b"}, time.Minute)
	c, err := Verify(secret, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.User() != "u1" || c.Name != "Ann" || c.Role != proto.RoleModerator {
		t.Fatalf("%+v", c)
	}
	if !c.AllowsRoom("a") || c.AllowsRoom("c") {
		t.Fatal("room allow-list not applied")
	}
	open, _ := Sign(secret, "u1", "", proto.RoleViewer, nil, time.Minute)
	if c, _ := Verify(secret, open); !c.AllowsRoom("anything") {
		t.Fatal("no allow-list must allow every room")
	}
}

func TestSignRejects(t *testing.T) {
	if _, err := Sign(nil, "u", "", "", nil, 0); err == nil {
		t.Error("empty secret")
	}
	if _, err := Sign(secret, "", "", "", nil, 0); err == nil {
		t.Error("empty user")
	}
	if _, err := Sign(secret, "u", "", "king", nil, 0); err == nil {
		t.Error("bad role")
	}
	if _, err := Sign(secret, "u", "", "", []string{"a.b"}, 0); err == nil {
		t.Error("bad room")
	}
}

func mint(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func FuzzVerify(f *testing.F) {
	good, _ := Sign(secret, "u1", "Ann", proto.RoleVIP, nil, time.Hour)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(secret, tok)
		if err == nil && (c.Subject == "" || !c.Role.Valid()) {
			t.Fatalf("accepted bad claims %+v", c)
		}
	})
}
