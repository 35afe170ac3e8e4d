package main

import (
	"io"
	"reflect"
	"time"
)

// testDeps lets meshsim run its job through testing.MainStart (the runner `go test` generates),
// so pilot's test helpers get a real *testing.T. It mirrors the testDeps interface of the Go
// release in go.mod's toolchain (testing/testing.go); no fuzzing, profiling or coverage.
type testDeps struct{}

type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}

func (testDeps) ImportPath() string                          { return "meshfed.local/meshsim" }
func (testDeps) ModulePath() string                          { return "meshfed.local/meshsim" }
func (testDeps) MatchString(_, _ string) (bool, error)       { return true, nil }
func (testDeps) SetPanicOnExit0(bool)                        {}
func (testDeps) StartCPUProfile(io.Writer) error             { return nil }
func (testDeps) StopCPUProfile()                             {}
func (testDeps) StartTestLog(io.Writer)                      {}
func (testDeps) StopTestLog() error                          { return nil }
func (testDeps) WriteProfileTo(string, io.Writer, int) error { return nil }
func (testDeps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return nil
}
func (testDeps) RunFuzzWorker(func(corpusEntry) error) error              { return nil }
func (testDeps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) { return nil, nil }
func (testDeps) CheckCorpus([]any, []reflect.Type) error                  { return nil }
func (testDeps) ResetCoverage()                                           {}
func (testDeps) SnapshotCoverage()                                        {}
func (testDeps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}
