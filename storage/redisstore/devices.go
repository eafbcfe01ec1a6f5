package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
)

// swapDevice applies an UpdateDevice verdict to KEYS[1] if it still holds
// ARGV[1] (an empty string for no record): ARGV[2] is "keep" (write
// nothing), "del", or "set" ARGV[3] expiring at ARGV[4] (unix ms). It
// answers {1} when it did, or {0, what the key holds} (empty for nothing)
// when the record was not the one fn saw.
var swapDevice = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then
	return {0, cur}
end
if ARGV[2] == 'set' then
	redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
elseif ARGV[2] == 'del' then
	redis.call('DEL', KEYS[1])
end
return {1}
`)

// deadline is when a device record expires, as unix ms.
func (s *Store) deadline(d *flow.Device) int64 {
	return d.ExpiresAt.Add(s.c.grace).UnixMilli()
}

// CreateDevice stores the record under its user code with SET NX.
func (s *Store) CreateDevice(ctx context.Context, d *flow.Device) error {
	if d.UserCode == "" || d.ExpiresAt.IsZero() {
		return errors.New("redisstore: CreateDevice: record needs a user code and ExpiresAt")
	}
	data := record.Encode(d)
	key := s.deviceKey(d.UserCode)
	args := redis.SetArgs{Mode: "NX", ExpireAt: time.UnixMilli(s.deadline(d))}
	err := s.c.do.SetArgs(ctx, key, data, args).Err()
	if errors.Is(err, redis.Nil) {
		return flow.ErrUserCodeTaken
	}
	if err != nil {
		return unavailable("create device", err)
	}
	s.c.recent.put(key, string(data))
	return nil
}

// DeviceByUserCode reads the record.
func (s *Store) DeviceByUserCode(ctx context.Context, userCode string) (*flow.Device, error) {
	raw, err := s.read(ctx, s.deviceKey(userCode))
	if err != nil {
		return nil, err
	}
	d, err := decodeDevice(userCode, raw)
	if err == nil && d == nil {
		err = flow.ErrNotFound
	}
	return d, err
}

// read GETs the record under key ("" when there is none) and remembers it.
func (s *Store) read(ctx context.Context, key string) (string, error) {
	raw, err := s.c.do.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		raw, err = "", nil
	}
	if err != nil {
		return "", unavailable("read device", err)
	}
	s.c.recent.put(key, raw)
	return raw, nil
}

// decodeDevice decodes a stored record (storage/record); nil for ""
// (none).
func decodeDevice(userCode, raw string) (*flow.Device, error) {
	if raw == "" {
		return nil, nil
	}
	d, err := record.Decode(userCode, []byte(raw))
	if err != nil {
		return nil, fmt.Errorf("redisstore: decoding device %q: %w", userCode, err)
	}
	return d, nil
}

// UpdateDevice calls fn on the record as this Client remembers it, or as
// read, and applies its verdict with swapDevice; when Redis held another
// record, fn runs again on that one.
func (s *Store) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	key := s.deviceKey(userCode)
	raw, remembered := s.c.recent.get(key)
	if !remembered {
		var err error
		if raw, err = s.read(ctx, key); err != nil {
			return err
		}
	}
	for attempt := range MaxAttempts {
		if attempt > 1 { // the first retry is expected after a stale memory
			if err := backoff(ctx, attempt); err != nil {
				return unavailable("update device", err)
			}
		}
		d, err := decodeDevice(userCode, raw)
		if err != nil {
			return err
		}
		verdict, fnErr := fn(d)
		if d == nil || (verdict == flow.Keep && !remembered) {
			// Decided on what Redis just said (a remembered record is
			// never nil), with nothing to write.
			return fnErr
		}
		mode, newRaw, expireAt := "keep", "", int64(0)
		switch verdict {
		case flow.Keep:
		case flow.Save:
			if d.UserCode != userCode || d.ExpiresAt.IsZero() {
				return errors.New("redisstore: UpdateDevice: fn must not change UserCode nor clear ExpiresAt")
			}
			mode, newRaw, expireAt = "set", string(record.Encode(d)), s.deadline(d)
		case flow.Delete:
			mode = "del"
		default:
			return fmt.Errorf("redisstore: UpdateDevice: unknown verdict %d", verdict)
		}
		reply, err := swapDevice.Run(ctx, s.c.do, []string{key}, raw, mode, newRaw, expireAt).Slice()
		if err != nil {
			s.c.recent.put(key, "") // the write may or may not have happened
			return unavailable("update device", err)
		}
		if len(reply) == 0 {
			return unavailable("update device", errors.New("empty script reply"))
		}
		if swapped, _ := reply[0].(int64); swapped == 1 {
			if mode != "keep" {
				s.c.recent.put(key, newRaw)
			}
			return fnErr
		}
		// Redis held another record (or none): fn again, on that.
		if len(reply) != 2 {
			return unavailable("update device", fmt.Errorf("unexpected script reply %v", reply))
		}
		raw, _ = reply[1].(string)
		remembered = false
		s.c.recent.put(key, raw)
	}
	return unavailable("update device", fmt.Errorf("record %q still changing after %d attempts", userCode, MaxAttempts))
}

// backoff waits a little, growing with attempt and jittered so that
// contending writers spread out.
func backoff(ctx context.Context, attempt int) error {
	limit := time.Duration(min(attempt, 10)) * 500 * time.Microsecond
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit) + 1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
