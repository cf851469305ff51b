//go:build !linux

package proxy

// Event loops are Linux only (epoll): elsewhere every session keeps the
// goroutine relay.
type loops struct{}

func newLoops(*Proxy, int) *loops { return nil }

func (*loops) adopt(*session) bool { return false }

func (s *session) resume() error { return nil }

func (s *session) shutdownFDs() {}
