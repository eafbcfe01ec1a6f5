package redisstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// timing is the go-redis hook behind Options.OnRoundTrip: it times every
// round trip (one command, or one pipeline) and says whether it failed.
// A missing key (redis.Nil) is an answer, not a failure, and so is the
// NOSCRIPT that makes go-redis send a script's source the first time.
type timing struct {
	report func(took time.Duration, failed bool)
}

func (t timing) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t timing) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		t.report(time.Since(start), failed(err))
		return err
	}
}

func (t timing) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		t.report(time.Since(start), failed(err))
		return err
	}
}

func failed(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "NOSCRIPT")
}
