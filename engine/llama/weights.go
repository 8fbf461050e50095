package llama

import "github.com/batchtrans/batchtrans/engine/kernels"

// Config is the part of config.json and generation_config.json the forward
// pass needs, normalised across the transformers 4.x and 5.x dialects.
type Config struct {
	Vocab         int
	Hidden        int
	Intermediate  int
	Layers        int
	Heads         int
	KVHeads       int
	HeadDim       int
	MaxPositions  int
	RMSNormEps    float64
	RopeTheta     float64
	RopeScaling   *RopeScaling // nil: default RoPE
	TiedEmbedding bool
	BOS           int
	EOS           []int // from generation_config.json, else config.json
}

// RopeScaling is the "llama3" rope_scaling block.
type RopeScaling struct {
	Type                          string // "llama3"
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings int
}

// Weights are the model's tensors after the adapter merge, in memory format.
// LMHead may be the same *Matrix as Embed (tied embeddings).
type Weights struct {
	Embed  *kernels.Matrix // Vocab x Hidden
	Layers []Layer
	Norm   []float32       // Hidden
	LMHead *kernels.Matrix // Vocab x Hidden
}

// Layer is one decoder block.
type Layer struct {
	AttnNorm []float32       // Hidden
	Q        *kernels.Matrix // Heads*HeadDim x Hidden
	K        *kernels.Matrix // KVHeads*HeadDim x Hidden
	V        *kernels.Matrix // KVHeads*HeadDim x Hidden
	O        *kernels.Matrix // Hidden x Heads*HeadDim
	MLPNorm  []float32       // Hidden
	Gate     *kernels.Matrix // Intermediate x Hidden
	Up       *kernels.Matrix // Intermediate x Hidden
	Down     *kernels.Matrix // Hidden x Intermediate
}
