package redisstore

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"
)

// followFailover makes a Cluster client look for the cluster's new shape
// as soon as a node cannot be reached. go-redis reloads its map of slots
// to masters after a MOVED, ASK or READONLY answer, or once the map is a
// minute old; a master that died answers nothing, so without this the
// client keeps dialling it, and every request for its slots gets 503, for
// up to a minute after a replica has taken over (the failover tests saw
// 59.5 s). ReloadState is cheap to call often: it starts at most one
// reload at a time, in the background.
type followFailover struct{ cc *redis.ClusterClient }

func (f followFailover) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f followFailover) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		f.check(ctx, err)
		return err
	}
}

func (f followFailover) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		f.check(ctx, err)
		return err
	}
}

func (f followFailover) check(ctx context.Context, err error) {
	var ne net.Error
	if err != nil && errors.As(err, &ne) {
		f.cc.ReloadState(ctx)
	}
}
