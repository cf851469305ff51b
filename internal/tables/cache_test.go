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
	} {
		if got := string(shape(nil, tc.in)); got != tc.want {
			t.Errorf("shape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCacheMatchesOf: through the cache, statements get the tables a parse
// of their own text gives, also when the shape does not parse.
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
	} {
		want, werr := Of(sql)
		for range 2 { // a miss, then a hit
			got, err := c.Of(sql)
			if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: cache %v %v, parse %v %v", sql, got, err, want, werr)
			}
		}
	}
	if n := len(c.m); n != 7 { // ids 1 and 2 share a shape; VARCHAR(10), (20) too
		t.Errorf("%d shapes cached, want 7", n)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(3)
	for _, sql := range []string{"SELECT * FROM a", "SELECT * FROM b", "SELECT * FROM c", "SELECT * FROM d"} {
		if _, err := c.Of(sql); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > 3 {
			t.Fatalf("%d entries, bound 3", len(c.m))
		}
	}
	long := "SELECT * FROM t WHERE a IN (" + string(make([]byte, MaxParse)) + ")"
	if _, err := c.Of(long); err == nil {
		t.Fatal("a statement over MaxParse was parsed")
	}
}

// FuzzCache: whatever the text, the cache answers as a parse of the text
// does (the shape never changes which tables a statement names).
func FuzzCache(f *testing.F) {
	for _, s := range []string{
		"SELECT c FROM sbtest1 WHERE id=4242",
		"INSERT INTO db.t1 (a) SELECT b FROM t2 WHERE c = 'x''y'",
		"UPDATE t1 x JOIN t2 y ON x.a = y.a SET y.b = 1.5e3",
		"RENAME TABLE a TO b",
		"SELECT `7` FROM `t 8` WHERE \"q\" = 9 /* 10 */",
		"CREATE TABLE t (a DECIMAL(10,2)) AS SELECT * FROM u",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		want, werr := Of(sql)
		got, err := NewCache(4).Of(sql)
		if werr != nil {
			return // the cache may then parse the shape: nothing to compare
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: cache %v %v, parse %v", sql, got, err, want)
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
				if _, err := c.Of(sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
