package proxy

import (
	"database/sql"
	"runtime"
	"testing"

	"github.com/das-mysql/das/internal/testenv"
)

// BenchmarkRoundTrip compares a direct connection to one through the proxy
// (events go to an in-memory sink), for a one-row query and a 1000-row one.
func BenchmarkRoundTrip(b *testing.B) {
	srv := testenv.MariaDB(b)
	_, addr, _ := startProxy(b, Options{Upstream: srv.Addr()})
	for _, leg := range []struct{ name, addr string }{{"direct", srv.Addr()}, {"proxy", addr}} {
		db := openDB(b, config(testenv.TestUser, srv.UserPassword(), leg.addr, testenv.TestDatabase))
		db.SetMaxOpenConns(1)
		for _, q := range []struct {
			name, sql string
			bytes     int64
		}{
			{"select1", "SELECT 1", 0},
			{"rows1000", "SELECT seq, 'abcdefghijklmnopqrstuvwxyz' FROM seq_1_to_1000", 1000 * 32},
		} {
			b.Run(leg.name+"/"+q.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(q.bytes)
				for b.Loop() {
					if err := drain(db, q.sql); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func drain(db *sql.DB, q string) error {
	rs, err := db.Query(q)
	if err != nil {
		return err
	}
	defer rs.Close()
	var a, c sql.RawBytes
	for rs.Next() {
		if len(q) > 10 {
			if err := rs.Scan(&a, &c); err != nil {
				return err
			}
		}
	}
	return rs.Err()
}

// BenchmarkIdleSessions measures what an open, idle session costs the proxy
// (heap and goroutine stacks) with the goroutine relay and on an event loop:
// connection pools keep many such sessions open.
func BenchmarkIdleSessions(b *testing.B) {
	srv := testenv.MariaDB(b)
	const n = 100
	for _, leg := range []struct {
		name  string
		loops int
	}{{"goroutines", -1}, {"loops", 1}} {
		b.Run(leg.name, func(b *testing.B) {
			for b.Loop() {
				p, addr, _ := startProxy(b, Options{Upstream: srv.Addr(), EventLoops: leg.loops})
				before := memInUse()
				var conns []*sql.Conn
				db := openDB(b, config(testenv.TestUser, srv.UserPassword(), addr, testenv.TestDatabase))
				for range n {
					c, err := db.Conn(b.Context())
					if err != nil {
						b.Fatal(err)
					}
					if err := c.PingContext(b.Context()); err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				if leg.loops > 0 && p.Stats().SessionsOnLoops != n {
					b.Fatalf("%d sessions on loops, want %d", p.Stats().SessionsOnLoops, n)
				}
				b.ReportMetric(float64(memInUse()-before)/n, "B/session")
				for _, c := range conns {
					c.Close()
				}
				db.Close()
			}
		})
	}
}

// memInUse is the heap and stack memory in use after a GC.
func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
