//go:build !linux

package main

import "testing"

func checkBatchScheduled(*testing.T, int) {}
