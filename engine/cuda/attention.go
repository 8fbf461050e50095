package cuda

// maxHeadDim is the largest head_dim the attention kernels take
// (csrc/attention.cuh's ATT_MAX_HD).
const maxHeadDim = 128

// Launch shape of attention_tile (csrc/attention.cuh's ATT_TILE_*): its
// warps, and the most (row, query head) pairs a tile may hold.
const (
	attTileThreads = 8 * 32
	attTilePairs   = 64
)

// maxTileRows is the most rows an attention tile takes: 16, fewer where
// the KV head's query heads times 16 would pass attTilePairs.
func maxTileRows(group int) int { return min(16, attTilePairs/group) }

// attTileSmem is attention_tile's dynamic shared memory for head_dim hd:
// a chunk of 32 keys (rows padded by 4) and values, and a tile's queries,
// all float32.
func attTileSmem(hd int) int { return 4 * (32*(hd+4) + 32*hd + attTilePairs*hd) }

// appendTiles splits the n consecutive rows of one sequence in a step,
// from row first, into attention tiles of at most `most` rows: as few
// tiles as can be, of sizes that differ by one at most. A tile of one row (a
// decode) goes to ones as its row, for the one-row kernel; a longer one to
// runs as its first row and its number of rows, for attention_tile. The
// tiles change which kernel computes a row and how fast, never its bits.
func appendTiles(ones, runs []int32, first, n, most int) ([]int32, []int32) {
	k := (n + most - 1) / most
	for i := range k {
		size := n / k
		if i < n%k {
			size++
		}
		if size == 1 {
			ones = append(ones, int32(first))
		} else {
			runs = append(runs, int32(first), int32(size))
		}
		first += size
	}
	return ones, runs
}
