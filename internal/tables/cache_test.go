package tables

import (
	"reflect"
	"testing"
)

func TestShape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT c FROM sbtest1 WHERE id=4242", "SELECT c FROM sbtest1 WHERE id=?"},
		{"SELECT 'it''s', 'a\\'b', \"dq\" FROM t2", "SELECT ?, ?, \"dq\" FROM t2"},
		{"SELECT -1.5e3, 0x1F, t9.c2 FROM `tab 7` /* 12 */ -- 34\n WHERE x<5", "SELECT -?, ?, t9.c2 FROM `tab 7` /* 12 */ -- 34\n WHERE x<?"},
		{"INSERT INTO t1 VALUES (1,'a'),(2,'b')", "INSERT INTO t1 VALUES (?,?),(?,?)"},
		{"SELECT 'unterminated", "SELECT ?"},
		{"# 1\nSELECT 1", "# 1\nSELECT ?"},
		{"SELECT db1.2t FROM x", "SELECT db1.2t FROM x"},
		{"SELECT 1e5, 2e, 0b101 FROM 2024_orders, 1e5x, 0x1g", "SELECT ?, ?, ? FROM 2024_orders, 1e5x, 0x1g"},
	} {
		if got := string(shape(nil, tc.in)); got != tc.want {
			t.Errorf("shape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCacheMatchesOf: through the cache, statements get the tables a parse
// of their own text gives, also when the shape does not parse, and the
// tables Scan finds when the text does not parse either.
func TestCacheMatchesOf(t *testing.T) {
	c := NewCache(100)
	for _, sql := range []string{
		"SELECT c FROM sbtest1 WHERE id=1",
		"SELECT c FROM sbtest1 WHERE id=2",
		"SELECT c FROM sbtest2 WHERE id=2",
		"CREATE TABLE t1 (a VARCHAR(10))",
		"CREATE TABLE t2 (a VARCHAR(20))",
		"UPDATE t1 x JOIN t2 y ON x.a = y.a SET y.b = 'v'",
		"SELEKT 1",
		"SELECT * FROM `1t` JOIN t3",
		"SELECT HIGH_PRIORITY c FROM sbtest1 WHERE id=1",
		"SELECT HIGH_PRIORITY c FROM sbtest3 WHERE id=2",
		"SELECT * FROM 2024_orders",
		"SELECT * FROM 2025_orders",
		"SELECT * FROM 0x1g",
		"SELECT * FROM 0x1f1",
	} {
		want, werr := Of(sql)
		if werr != nil {
			want = Scan(sql)
		}
		for range 2 { // a miss, then a hit
			got, scanned := c.Of(sql)
			if scanned != (werr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: cache %v (scanned %v), want %v (parse error %v)", sql, got, scanned, want, werr)
			}
		}
	}
	// Ids 1 and 2 share a shape; the tables of VARCHAR(10) and (20) are
	// not kept, since their shape does not parse; 2024_orders and
	// 2025_orders are names, not numbers, and keep shapes of their own.
	if n := len(c.m); n != 11 {
		t.Errorf("%d shapes cached, want 11: %v", n, c.m)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(3)
	for _, sql := range []string{"SELECT * FROM a", "SELECT * FROM b", "SELECT * FROM c", "SELECT * FROM d"} {
		if _, scanned := c.Of(sql); scanned {
			t.Fatal(sql, "was scanned")
		}
		if len(c.m) > 3 {
			t.Fatalf("%d entries, bound 3", len(c.m))
		}
	}
	long := "SELECT * FROM t WHERE a IN (" + string(make([]byte, MaxParse)) + ")"
	if acc, scanned := c.Of(long); !scanned || format(acc) != "READ t" {
		t.Fatalf("a statement over MaxParse: %v, scanned %v; want READ t, scanned", acc, scanned)
	}
}

// FuzzCache: whatever the text, the cache answers as a parse of the text
// does (the shape never changes which tables a statement names), and as
// Scan does when neither the text nor its shape parses.
func FuzzCache(f *testing.F) {
	for _, s := range []string{
		"SELECT c FROM sbtest1 WHERE id=4242",
		"INSERT INTO db.t1 (a) SELECT b FROM t2 WHERE c = 'x''y'",
		"UPDATE t1 x JOIN t2 y ON x.a = y.a SET y.b = 1.5e3",
		"RENAME TABLE a TO b",
		"SELECT `7` FROM `t 8` WHERE \"q\" = 9 /* 10 */",
		"CREATE TABLE t (a DECIMAL(10,2)) AS SELECT * FROM u",
		"SELECT * FROM 2024_orders WHERE id = 0x1F",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		want, werr := Of(sql)
		got, scanned := NewCache(4).Of(sql)
		if werr != nil {
			if scanned && !reflect.DeepEqual(got, Scan(sql)) {
				t.Fatalf("%q: cache %v, scan %v", sql, got, Scan(sql))
			}
			return // else the shape parsed: it has the text's tables
		}
		if scanned || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: cache %v (scanned %v), parse %v", sql, got, scanned, want)
		}
	})
}

// BenchmarkCacheHit is the cost of a statement whose shape was seen.
func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(100)
	for _, sql := range []string{"SELECT c FROM sbtest1 WHERE id=?", "SELECT c FROM sbtest1 WHERE id=4242"} {
		b.Run(sql, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, scanned := c.Of(sql); scanned {
					b.Fatal("scanned")
				}
			}
		})
	}
}
