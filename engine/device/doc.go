// Package device owns the choice of where inference runs. The machine is
// probed once at start-up (OS, architecture, CPU, NVIDIA GPUs, Apple
// Silicon) behind the Prober interface, so tests can fake each kind of
// machine; Choose turns the probe and the user's request (auto, cpu, cuda,
// mps) into a device, logging the lines DESIGN.md fixes. This build runs on
// the CPU only. The package imports nothing else of the engine.
package device
