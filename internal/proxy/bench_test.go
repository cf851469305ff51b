package proxy

import (
	"database/sql"
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
