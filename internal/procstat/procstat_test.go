package procstat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVmHWM(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      string
	}{
		{"linux", "Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n", 2048 << 10, ""},
		{"missing", "Name:\tx\n", 0, "no VmHWM line"},
		{"unit", "VmHWM:\t 5 MB\n", 0, "is not \"N kB\""},
		{"number", "VmHWM:\t x kB\n", 0, "is not a size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVmHWM([]byte(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	const tail = " R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3"
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		err      string
	}{
		{"plain", "42 (batchtrans)" + tail, 3 * time.Second, ""},
		{"odd name", "42 (a) b (c)" + tail, 3 * time.Second, ""},
		{"no name", "42 batchtrans" + tail, 0, "no command name"},
		{"short", "42 (x) R 1 2", 0, "want at least 13"},
		{"bad ticks", "42 (x) R 1 2 3 4 5 6 7 8 9 10 x 50", 0, "not a tick count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
