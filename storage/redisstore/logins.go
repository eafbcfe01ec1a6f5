package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// takeLogin deletes and returns KEYS[1] if its login's state (the "sh"
// field, an HMAC of the state) is ARGV[1]; otherwise it answers false and
// leaves the login alone. Comparing HMACs in plain Lua leaks nothing
// useful through timing: a caller cannot choose the HMAC it sends.
var takeLogin = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
	return false
end
local ok, login = pcall(cjson.decode, cur)
if not ok or type(login) ~= 'table' or login['sh'] ~= ARGV[1] then
	return false
end
redis.call('DEL', KEYS[1])
return cur
`)

// PutLogin stores the login until its ExpiresAt.
func (s *Store) PutLogin(ctx context.Context, key string, login *flow.Login) error {
	data, err := json.Marshal(login)
	if err != nil {
		return fmt.Errorf("redisstore: encoding login: %w", err)
	}
	k := s.loginKey(key)
	if !login.ExpiresAt.After(time.Now()) {
		// Already expired: store nothing (and drop what was there).
		err = s.c.do.Del(ctx, k).Err()
	} else {
		err = s.c.do.SetArgs(ctx, k, data, redis.SetArgs{ExpireAt: login.ExpiresAt}).Err()
	}
	if err != nil {
		return unavailable("put login", err)
	}
	return nil
}

// TakeLogin deletes and returns the login in one script, only if it holds
// the state given: the login is returned once.
func (s *Store) TakeLogin(ctx context.Context, key, state string) (*flow.Login, error) {
	data, err := takeLogin.Run(ctx, s.c.do, []string{s.loginKey(key)}, state).Text()
	if errors.Is(err, redis.Nil) {
		return nil, flow.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("take login", err)
	}
	var l flow.Login
	if err := json.Unmarshal([]byte(data), &l); err != nil {
		return nil, fmt.Errorf("%w: redisstore: decoding login: %w", flow.ErrUnavailable, err)
	}
	return &l, nil
}
