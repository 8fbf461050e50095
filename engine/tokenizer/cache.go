package tokenizer

import (
	"hash/maphash"
	"sync"
)

// pieceCache remembers the merge result of pieces that are not a single
// vocabulary entry, as Hugging Face's BPE cache does: real text repeats its
// words, and merging is the costly part of encoding. It is sharded to keep
// concurrent workers from queueing on one lock, and bounded: a full shard is
// emptied rather than tracked for recency.
type pieceCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards      = 16
	cacheShardSize   = 4096 // entries per shard
	cacheMinPieceLen = 10   // bytes; shorter pieces merge faster than a cache insert
	cacheMaxPieceLen = 256  // bytes; longer pieces are not cached
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func newPieceCache() *pieceCache { return &pieceCache{seed: maphash.MakeSeed()} }

func (c *pieceCache) shard(piece string) *cacheShard {
	return &c.shards[maphash.String(c.seed, piece)%cacheShards]
}

func (c *pieceCache) get(piece string) ([]int32, bool) {
	s := c.shard(piece)
	s.mu.RLock()
	ids, ok := s.m[piece]
	s.mu.RUnlock()
	return ids, ok
}

func (c *pieceCache) put(piece string, ids []int32) {
	s := c.shard(piece)
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardSize {
		s.m = make(map[string][]int32)
	}
	s.m[piece] = append([]int32(nil), ids...)
	s.mu.Unlock()
}
