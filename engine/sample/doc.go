// Package sample owns next-token selection: greedy argmax and seeded
// temperature / top-k / top-p sampling. A Sampler belongs to one sequence;
// its random stream depends only on the seed it was given, so a request's
// output does not depend on what else runs at the same time.
package sample
