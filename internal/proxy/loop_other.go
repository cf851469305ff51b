//go:build !linux

package proxy

import "github.com/das-mysql/das/internal/event"

// Event loops are Linux only (epoll): elsewhere every session keeps the
// goroutine relay.
type loops struct{}

func newLoops(*Proxy, int) *loops { return nil }

func (*loops) adopt(*session) bool { return false }

type loopSession struct{ hold bool }

func (s *session) loopSubmit(ev event.Event) { s.p.submit(ev, true) }

func (s *session) shutdownFDs() {}
