// Package blobstore owns batchtrans's access to object storage: it tells
// object-storage URLs (s3://, gs://, azblob://, and file:// and mem:// for
// tests) from local paths, opens the bucket behind a URL through
// gocloud.dev/blob (every driver registered here, credentials from each
// SDK's standard chain), and offers what the rest of the program needs on
// top of a *blob.Bucket: a streamed, randomly addressable object for the
// dataset readers, and a folder (a bucket with a key prefix) that works the
// same on a local path and in a bucket.
//
// An S3-compatible store is reached with gocloud's own URL parameters,
// s3://BUCKET/KEY?endpoint=http://HOST:PORT&use_path_style=true&region=R,
// or with the AWS SDK's AWS_ENDPOINT_URL_S3 environment variable.
//
// Buckets are opened once per process and kept open (OpenBucket caches them
// by their URL), so a mem:// bucket is shared by every caller in a process
// and an S3 client is not rebuilt for every object.
//
// It imports nothing of engine, runner or jobs.
package blobstore
