package mysql

import (
	"testing"
)

func BenchmarkSessionServerPacket1000Rows(b *testing.B) {
	for _, deprecate := range []bool{false, true} {
		name := "eof"
		caps := baseCaps
		if deprecate {
			name, caps = "deprecate_eof", caps|ClientDeprecateEOF
		}
		row := pTextRow([]byte("12345"), []byte("some name"), []byte("2024-01-02 03:04:05"), nil)
		rows := make([][]byte, 1000)
		for i := range rows {
			rows[i] = row
		}
		pkts := resultSet(deprecate, StatusAutocommit, []string{"id", "name", "ts", "n"}, rows...)
		query := cQuery("SELECT id, name, ts, n FROM t")
		var bytesPerQuery int
		for _, p := range pkts {
			bytesPerQuery += len(p)
		}
		b.Run(name, func(b *testing.B) {
			s := NewSession(caps)
			b.ReportAllocs()
			b.SetBytes(int64(bytesPerQuery))
			for b.Loop() {
				if _, err := s.ClientCommand(query); err != nil {
					b.Fatal(err)
				}
				for _, p := range pkts {
					if _, err := s.ServerPacket(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
		})
	}
}

func BenchmarkParseCommandQuery(b *testing.B) {
	q := cQuery("SELECT c FROM sbtest1 WHERE id=5021")
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		c, err := ParseCommand(q, baseCaps)
		if err != nil || len(c.Query) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionExecute(b *testing.B) {
	s := NewSession(baseCaps | ClientDeprecateEOF)
	s.stmts[1] = &Stmt{ID: 1, NumParams: 2}
	exec := cExecute(1, 0, true, false, []execParam{{t: TypeLongLong, val: le64(5021)}, {t: TypeVarString, val: lenenc("abc")}})
	ok := pOK(1, 0, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ClientCommand(exec); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ServerPacket(ok); err != nil {
			b.Fatal(err)
		}
	}
}
