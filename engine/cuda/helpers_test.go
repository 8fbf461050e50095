package cuda

import "github.com/batchtrans/batchtrans/engine/cuda/driver"

func gpu(name string, major, minor int) driver.GPU {
	return driver.GPU{Name: name, Major: major, Minor: minor}
}

func gpus(g ...driver.GPU) []driver.GPU {
	for i := range g {
		g[i].Index = i
	}
	return g
}
