package tables

import (
	"reflect"
	"testing"
)

func TestDynamicSQL(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want Dynamic
		ok   bool
	}{
		{"PREPARE s1 FROM 'SELECT * FROM secret WHERE a = ?'", Dynamic{Prepare, "s1", "SELECT * FROM secret WHERE a = ?", true, ""}, true},
		{"prepare `S 2` from 'SELECT ''x'', \\'y\\' ' 'FROM secret';", Dynamic{Prepare, "s 2", "SELECT 'x', 'y' FROM secret", true, ""}, true},
		{"PREPARE s3 FROM _utf8mb4'DELETE FROM secret'", Dynamic{Prepare, "s3", "DELETE FROM secret", true, ""}, true},
		{"PREPARE s4 FROM @q", Dynamic{Prepare, "s4", "", false, "q"}, true},
		{"PREPARE s4 FROM @`Q 2`;", Dynamic{Prepare, "s4", "", false, "q 2"}, true},
		{"PREPARE s4 FROM @q + 1", Dynamic{Prepare, "s4", "", false, ""}, true},
		{"PREPARE s5 FROM CONCAT('SELECT * FROM ', 'secret')", Dynamic{Prepare, "s5", "", false, ""}, true},
		{"/*!50000 PREPARE s6 FROM 'TABLE secret' */", Dynamic{Prepare, "s6", "TABLE secret", true, ""}, true},
		{"EXECUTE S1 USING @a", Dynamic{Execute, "s1", "", false, ""}, true},
		{"EXECUTE IMMEDIATE 'SELECT * FROM secret'", Dynamic{ExecuteImmediate, "", "SELECT * FROM secret", true, ""}, true},
		{"EXECUTE IMMEDIATE @q", Dynamic{ExecuteImmediate, "", "", false, "q"}, true},
		{"DEALLOCATE PREPARE s1", Dynamic{Deallocate, "s1", "", false, ""}, true},
		{"DROP PREPARE `s1`", Dynamic{Deallocate, "s1", "", false, ""}, true},
		{"DROP TABLE s1", Dynamic{}, false},
		{"SELECT 'PREPARE s FROM x'", Dynamic{}, false},
		{"PREPARE", Dynamic{}, false},
		{"PREPARE s7 'SELECT 1'", Dynamic{}, false},
	} {
		got, ok := DynamicSQL(tc.sql)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %+v %v, want %+v %v", tc.sql, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzDynamicSQL(f *testing.F) {
	f.Add("PREPARE s FROM 'SELECT 1' 'x'")
	f.Add("EXECUTE IMMEDIATE N'a\\'b'")
	f.Fuzz(func(t *testing.T, sql string) {
		d, ok := DynamicSQL(sql)
		if !ok && d != (Dynamic{}) {
			t.Fatalf("%q: not dynamic, yet %+v", sql, d)
		}
		if d.Known && len(d.Text) > len(sql) {
			t.Fatalf("%q: text %q longer than the statement", sql, d.Text)
		}
	})
}

func TestSetVars(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want []Assign
		ok   bool
	}{
		{"SET @q = 'SELECT * FROM secret'", []Assign{{"q", "SELECT * FROM secret"}}, true},
		{"set @Q := CONCAT('SELECT * ', 'FROM ' 'secret'), @b = _utf8mb4'x';", []Assign{{"q", "SELECT * FROM secret"}, {"b", "x"}}, true},
		{"SET @q = CONCAT('SELECT * FROM ', @t)", nil, false},
		{"SET @q = 'a', @r = (SELECT 1)", nil, false},
		{"SET @q = 1", nil, false},
		{"SET autocommit = 1", nil, false},
		{"SET @q = 'a' + 'b'", nil, false},
		{"SELECT 'a' INTO @q", nil, false},
	} {
		got, ok := SetVars(tc.sql)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SetVars(%q) = %+v %v, want %+v %v", tc.sql, got, ok, tc.want, tc.ok)
		}
	}
}
