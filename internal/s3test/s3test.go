// Package s3test gives tests an S3-compatible server reached over HTTP on
// a local port, so that they drive the real s3blob driver, AWS SDK and
// endpoint override end to end, child processes included. By default the
// server is gofakes3 in the test process; with BATCHTRANS_S3TEST_ENDPOINT
// (and BATCHTRANS_S3TEST_ACCESS_KEY / BATCHTRANS_S3TEST_SECRET_KEY) the
// tests use that server instead, e.g. Versity's S3 gateway, each test in a
// bucket of its own. Either way the tests talk to it through a proxy in
// the test process, which can drop every connection to play a store that
// goes away mid-run. Only tests import it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// Server is a running S3-compatible server holding one bucket.
type Server struct {
	Endpoint string // the proxy: http://127.0.0.1:PORT
	Bucket   string
	down     atomic.Bool
	srv      *httptest.Server
}

// External is the S3-compatible server the tests use instead of the
// in-process one, if BATCHTRANS_S3TEST_ENDPOINT names one.
func External() string { return os.Getenv("BATCHTRANS_S3TEST_ENDPOINT") }

// Start starts a server with an empty bucket and sets the AWS variables
// (credentials, region) in the test's environment, so that the SDK's
// standard chain finds them in this process and in children that inherit
// it. It is stopped when the test ends.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	var upstream http.Handler
	if ep := External(); ep != "" {
		u, err := url.Parse(ep)
		require.NoError(t, err)
		var b [4]byte
		rand.Read(b[:])
		bucket = strings.ToLower(bucket + "-" + hex.EncodeToString(b[:]))
		createBucket(t, ep, bucket)
		upstream = httputil.NewSingleHostReverseProxy(u)
	} else {
		backend := s3mem.New()
		require.NoError(t, backend.CreateBucket(bucket))
		upstream = gofakes3.New(backend).Server()
	}
	s := &Server{Bucket: bucket}
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
		upstream.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.Endpoint = s.srv.URL
	for k, v := range Env() {
		t.Setenv(k, v)
	}
	return s
}

// createBucket makes a bucket on an external server.
func createBucket(t testing.TB, endpoint, bucket string) {
	t.Helper()
	env := Env()
	c := s3.New(s3.Options{
		Region:       env["AWS_REGION"],
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], ""),
	})
	_, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err, "create bucket %s on %s", bucket, endpoint)
}

// Env is the environment a client of the server needs: credentials and
// region for the SDK's standard chain, and no shared config files.
func Env() map[string]string {
	key, secret := "test", "test"
	if External() != "" {
		key, secret = os.Getenv("BATCHTRANS_S3TEST_ACCESS_KEY"), os.Getenv("BATCHTRANS_S3TEST_SECRET_KEY")
	}
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           key,
		"AWS_SECRET_ACCESS_KEY":       secret,
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
