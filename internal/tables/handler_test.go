package tables

import "testing"

func TestParseHandler(t *testing.T) {
	tests := []struct {
		sql  string
		want Handler
		ok   bool
	}{
		{"HANDLER t OPEN", Handler{Op: "OPEN", Table: "t", Name: "t"}, true},
		{"handler db.T open as H", Handler{Op: "OPEN", DB: "db", Table: "T", Name: "h"}, true},
		{"HANDLER `my t` OPEN `h 1`", Handler{Op: "OPEN", Table: "my t", Name: "h 1"}, true},
		{"/* c */ HANDLER h READ `PRIMARY` = (1)", Handler{Op: "READ", Table: "h"}, true},
		{"HANDLER h READ NEXT WHERE a > 1 LIMIT 2", Handler{Op: "READ", Table: "h"}, true},
		{"HANDLER h CLOSE", Handler{Op: "CLOSE", Table: "h"}, true},
		{"HANDLER db.h READ FIRST", Handler{}, false}, // a handler's name is not qualified
		{"HANDLER h", Handler{}, false},
		{"SELECT * FROM handler", Handler{}, false},
		{"HANDLERS t OPEN", Handler{}, false},
	}
	for _, tc := range tests {
		got, ok := ParseHandler(tc.sql)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("ParseHandler(%q) = %+v, %v; want %+v, %v", tc.sql, got, ok, tc.want, tc.ok)
		}
	}
}
