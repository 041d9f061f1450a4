package testkit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// hash tag (the part between the first "{" and the next "}", when not
// empty) or of the whole key, modulo 16384.
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// SlotChecker is a go-redis hook that fails the test when a script or a
// MULTI/EXEC touches keys of more than one cluster slot: Redis Cluster
// would refuse it with CROSSSLOT. Install it with client.AddHook.
type SlotChecker struct {
	report func(format string, args ...any)
	mu     sync.Mutex
	seen   map[string]bool // reported violations, to report each once
}

// NewSlotChecker returns a checker that reports each violation once with
// report, e.g. t.Errorf.
func NewSlotChecker(report func(format string, args ...any)) *SlotChecker {
	return &SlotChecker{report: report, seen: map[string]bool{}}
}

var _ redis.Hook = (*SlotChecker)(nil)

func (c *SlotChecker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *SlotChecker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.check([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *SlotChecker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "multi" {
			c.check(cmds) // a transaction: every key in one slot
		} else {
			for _, cmd := range cmds {
				c.check([]redis.Cmder{cmd})
			}
		}
		return next(ctx, cmds)
	}
}

// check reports when the keys of cmds (one command, or one transaction)
// are in more than one slot.
func (c *SlotChecker) check(cmds []redis.Cmder) {
	var keys []string
	for _, cmd := range cmds {
		keys = append(keys, commandKeys(cmd.Args())...)
	}
	if len(keys) < 2 {
		return
	}
	first := Slot(keys[0])
	for _, k := range keys[1:] {
		if Slot(k) != first {
			names := make([]string, len(cmds))
			for i, cmd := range cmds {
				names[i] = cmd.Name()
			}
			report := fmt.Sprintf("CROSSSLOT in %v: %q (slot %d) and %q (slot %d)", names, keys[0], first, k, Slot(k))
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.seen[report] {
				c.seen[report] = true
				c.report("%s", report)
			}
			return
		}
	}
}

// Commands whose every argument after the name is a key.
var allKeys = map[string]bool{"del": true, "unlink": true, "exists": true, "watch": true, "mget": true}

// Commands without keys.
var noKeys = map[string]bool{"multi": true, "wait": true, "exec": true, "discard": true, "unwatch": true, "ping": true,
	"info": true, "config": true, "script": true, "hello": true, "client": true, "select": true, "time": true}

// commandKeys returns the key arguments of a command as go-redis sends it.
func commandKeys(args []any) []string {
	if len(args) == 0 {
		return nil
	}
	name := strings.ToLower(fmt.Sprint(args[0]))
	str := func(i int) string { return fmt.Sprint(args[i]) }
	switch {
	case noKeys[name]:
		return nil
	case name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro":
		n, _ := strconv.Atoi(str(2))
		var keys []string
		for i := 3; i < 3+n && i < len(args); i++ {
			keys = append(keys, str(i))
		}
		return keys
	case allKeys[name]:
		var keys []string
		for i := 1; i < len(args); i++ {
			keys = append(keys, str(i))
		}
		return keys
	case name == "xreadgroup" || name == "xread":
		for i := 1; i < len(args); i++ {
			if strings.EqualFold(str(i), "streams") {
				rest := args[i+1:]
				var keys []string
				for j := 0; j < len(rest)/2; j++ {
					keys = append(keys, fmt.Sprint(rest[j]))
				}
				return keys
			}
		}
		return nil
	case len(args) > 1:
		return []string{str(1)} // the common case: the key comes first
	}
	return nil
}
