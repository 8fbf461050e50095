package examples

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// TestKubernetesExample: the ConfigMap's job file is a valid job, and the
// Indexed Job's completions match the shard count its pods ask for.
func TestKubernetesExample(t *testing.T) {
	data, err := os.ReadFile("kubernetes/indexed-job.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var jobFile string
	var completions int
	var args []string
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		switch doc["kind"] {
		case "ConfigMap":
			jobFile = doc["data"].(map[string]any)["job.yaml"].(string)
		case "Job":
			spec := doc["spec"].(map[string]any)
			assert.Equal(t, "Indexed", spec["completionMode"])
			completions = spec["completions"].(int)
			c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			for _, a := range c["args"].([]any) {
				args = append(args, a.(string))
			}
		}
	}
	j, err := jobs.Parse([]byte(jobFile), "configmap job.yaml")
	require.NoError(t, err)
	j.Defaults()
	require.NoError(t, j.Validate())
	i := slices.Index(args, "--shard")
	require.Positive(t, i)
	s, err := shard.Parse(args[i+1], func(k string) string {
		if k == "JOB_COMPLETION_INDEX" {
			return "0"
		}
		return ""
	})
	require.NoError(t, err)
	assert.Equal(t, completions, s.Count)
}

// TestAWSBatchExample: the job definition's shard count is the one its
// README submits the array with.
func TestAWSBatchExample(t *testing.T) {
	data, err := os.ReadFile("aws-batch/job-definition.json")
	require.NoError(t, err)
	var def struct {
		Parameters map[string]string `json:"parameters"`
	}
	require.NoError(t, json.Unmarshal(data, &def))
	s, err := shard.Parse(def.Parameters["shard"], func(k string) string {
		if k == "AWS_BATCH_JOB_ARRAY_INDEX" {
			return "0"
		}
		return ""
	})
	require.NoError(t, err)
	readme, err := os.ReadFile("aws-batch/README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "--array-properties size="+strings.TrimPrefix(def.Parameters["shard"], "auto/"))
	assert.Equal(t, 500, s.Count)
}
