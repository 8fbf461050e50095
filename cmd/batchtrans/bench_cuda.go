//go:build !nocuda

package main

import (
	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda"
)

// gpuCeilings measures the GPU's copy bandwidth and the backend's bf16
// matrix rate, and derives the bounds from them.
func gpuCeilings(net backend.Net, res *benchResult) error {
	n, ok := net.(*cuda.Net)
	if !ok {
		return nil
	}
	res.KVPoolB = n.KVPoolBytes()
	res.LoadPhasesS = map[string]float64{}
	for _, p := range n.LoadPhases() {
		res.LoadPhasesS[p.Name] = p.D.Seconds()
		res.loadOrder = append(res.loadOrder, p.Name)
	}
	res.GPUProfileMS, _ = n.Profile()
	c, err := n.Measure()
	if err != nil {
		return err
	}
	res.BandwidthBS, res.GemmFLOPs = c.BandwidthBS, c.GemmFLOPs
	if res.WeightsB > 0 {
		// A decode step reads the weights once. A copy's reads and
		// writes share the memory's bandwidth, so their sum is the rate
		// a stream of reads alone can reach.
		res.DecodeBound = c.BandwidthBS / float64(res.WeightsB)
	}
	if c.GemmFLOPs > 0 {
		layers, head := n.Config().MatMulParams()
		res.PrefillBound = c.GemmFLOPs / float64(2*layers)
		res.BatchBound = c.GemmFLOPs / float64(2*(layers+head))
	}
	return nil
}
