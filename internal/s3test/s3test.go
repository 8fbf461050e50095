// Package s3test starts an S3-compatible server in the test process (the
// gofakes3 implementation, over HTTP on a local port), so that tests drive
// the real s3blob driver, AWS SDK and endpoint override end to end, child
// processes included. The server can be taken down and brought back to
// test a store that goes away mid-run. Only tests import it.
package s3test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// Server is a running S3-compatible server holding one bucket.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	down     atomic.Bool
	srv      *httptest.Server
}

// Start starts a server with an empty bucket and sets the AWS variables
// (credentials, region) in the test's environment, so that the SDK's
// standard chain finds them in this process and in children that inherit
// it. It is stopped when the test ends.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(bucket))
	faker := gofakes3.New(backend)
	s := &Server{Bucket: bucket}
	h := faker.Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			// A store that has gone away: the connection drops.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.Endpoint = s.srv.URL
	for k, v := range Env() {
		t.Setenv(k, v)
	}
	return s
}

// Env is the environment a client of the server needs: credentials and
// region for the SDK's standard chain, and no shared config files.
func Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           "test",
		"AWS_SECRET_ACCESS_KEY":       "test",
		"AWS_REGION":                  "us-east-1",
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// URL is the s3:// URL of key in the server's bucket, with the endpoint
// override an S3-compatible store needs.
func (s *Server) URL(key string) string {
	return "s3://" + s.Bucket + "/" + key + "?" + s.Query()
}

// Query is the URL query that points the s3blob driver at the server.
// gofakes3 sends the whole object's CRC with a range read, which the SDK
// would check against the range: response checksums are checked only
// where required (S3 itself sends none for range reads).
func (s *Server) Query() string {
	return "endpoint=" + s.Endpoint + "&use_path_style=true&disable_https=true&region=us-east-1&response_checksum_validation=when_required"
}

// SetDown takes the server away (every connection is dropped) or brings
// it back; the bucket's contents survive.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Addr is the server's listening address.
func (s *Server) Addr() net.Addr { return s.srv.Listener.Addr() }
