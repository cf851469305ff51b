// Package tables finds the tables a MySQL statement reads, writes, creates,
// alters, drops or renames. The proxy records each as a DAS AUX event
// (class AUX, substatementId 2), the statement-level counterpart of the
// TABLE events MariaDB's server_audit writes and Aurora streams.
//
// Statements are parsed with a real MySQL grammar (the vitess parser of
// go-mysql-server, already linked for the embedded database). A statement
// it cannot parse has no accesses: the proxy still records the statement.
package tables

import (
	"fmt"
	"strings"

	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// Operations, as server_audit and DAS AUX records name them.
const (
	Read   = "READ"
	Write  = "WRITE"
	Create = "CREATE"
	Alter  = "ALTER"
	Drop   = "DROP"
	Rename = "RENAME"
)

// Access is one table a statement touches.
type Access struct {
	Op    string
	DB    string // "" when the statement does not name it: the session's database
	Table string
	// ToDB and ToTable are a RENAME's new name.
	ToDB, ToTable string
}

// Of returns the tables statement sql touches, each operation and table
// once, in the order the statement names them, written tables first. An
// error means the statement could not be parsed.
func Of(sql string) (acc []Access, err error) {
	// The parser panics on some malformed input (the fuzz corpus under
	// testdata/ has one); statements come from any client, so a panic is
	// a statement that does not parse, never a crash.
	defer func() {
		if r := recover(); r != nil {
			acc, err = nil, fmt.Errorf("tables: parser panicked: %v", r)
		}
	}()
	st, err := sqlparser.Parse(sql)
	if err != nil {
		return nil, err
	}
	var c collector
	c.statement(st)
	return c.out, nil
}

type collector struct {
	out []Access
	cte map[string]bool // names of common table expressions: not tables
}

func (c *collector) add(op string, t sqlparser.TableName) {
	name := t.Name.String()
	if name == "" || name == "dual" && t.DbQualifier.IsEmpty() {
		return
	}
	db := t.DbQualifier.String()
	if db == "" && c.cte[strings.ToLower(name)] {
		return
	}
	for _, o := range c.out {
		// A table the statement writes is not also listed as read.
		if o.DB == db && o.Table == name && (o.Op == op || op == Read) {
			return
		}
	}
	c.out = append(c.out, Access{Op: op, DB: db, Table: name})
}

// reads adds every table that nodes name in a FROM clause (or a JOIN, a
// subquery, a CTE's body) as read. Column qualifiers are not tables: only
// table expressions count.
func (c *collector) reads(nodes ...sqlparser.SQLNode) {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
			switch n := n.(type) {
			case *sqlparser.With:
				c.with(n)
			case *sqlparser.AliasedTableExpr:
				if t, ok := n.Expr.(sqlparser.TableName); ok {
					c.add(Read, t)
				}
			case *sqlparser.FuncExpr:
				// NEXTVAL(s) and SETVAL(s, n) write MariaDB's sequence s.
				if name := n.Name.Lowered(); (name == "nextval" || name == "setval") && len(n.Exprs) > 0 {
					if a, ok := n.Exprs[0].(*sqlparser.AliasedExpr); ok {
						if col, ok := a.Expr.(*sqlparser.ColName); ok {
							c.add(Write, sqlparser.TableName{Name: sqlparser.NewTableIdent(col.Name.String()), DbQualifier: col.Qualifier.Name})
						}
					}
				}
			}
			return true, nil
		}, n)
	}
}

// with remembers a WITH clause's names, so that references to them are not
// taken for tables.
func (c *collector) with(w *sqlparser.With) {
	if w == nil {
		return
	}
	for _, cte := range w.Ctes {
		if cte == nil || cte.AliasedTableExpr == nil {
			continue
		}
		if c.cte == nil {
			c.cte = map[string]bool{}
		}
		c.cte[strings.ToLower(cte.As.String())] = true
	}
}

func (c *collector) statement(st sqlparser.Statement) {
	switch st := st.(type) {
	case *sqlparser.Insert:
		c.with(st.With)
		c.add(Write, st.Table)
		c.reads(st.With, st.Rows, st.OnDup)
	case *sqlparser.Update:
		c.with(st.With)
		c.written(st.TableExprs, updatedAliases(st))
		c.reads(st.With, st.TableExprs, st.Exprs, st.Where)
	case *sqlparser.Delete:
		c.with(st.With)
		targets := map[string]bool{}
		for _, t := range st.Targets {
			targets[strings.ToLower(t.Name.String())] = true
		}
		if len(st.Targets) == 0 {
			targets = nil
		}
		c.written(st.TableExprs, targets)
		c.reads(st.With, st.TableExprs, st.Where)
	case *sqlparser.Load:
		c.add(Write, st.Table)
	case *sqlparser.DDL:
		c.ddl(st)
	case *sqlparser.Analyze:
		for _, t := range st.Tables {
			c.add(Read, t) // as server_audit: ANALYZE TABLE reads
		}
	case *sqlparser.AlterTable:
		c.add(Alter, st.Table)
		for _, d := range st.Statements {
			// ALTER TABLE t ..., RENAME TO u: t is renamed, perhaps to
			// another database.
			if d != nil && d.Action == sqlparser.RenameStr {
				c.ddl(d)
			}
		}
		for _, ps := range st.PartitionSpecs {
			// EXCHANGE PARTITION p WITH TABLE t moves t's rows into the
			// partition and the partition's into t: both tables change.
			if ps != nil && ps.Action == sqlparser.ExchangeStr {
				c.add(Alter, ps.TableName)
			}
		}
	case *sqlparser.Select:
		if len(st.SelectExprs) == 1 {
			if _, ok := st.SelectExprs[0].(sqlparser.Nextval); ok && len(st.From) == 1 {
				// SELECT NEXT VALUE FOR s writes the sequence s.
				if t, ok := st.From[0].(*sqlparser.AliasedTableExpr); ok {
					if name, ok := t.Expr.(sqlparser.TableName); ok {
						c.add(Write, name)
						return
					}
				}
			}
		}
		c.reads(st)
		if st.Lock == sqlparser.ForUpdateStr || st.Lock == sqlparser.ForUpdateSkipLockedStr {
			c.forUpdate()
		}
	default:
		// SELECT, UNION, and anything else that may read tables in a
		// subquery (SET @x = (SELECT ...), DO, CALL arguments).
		c.reads(st)
	}
}

// forUpdate makes a SELECT ... FOR UPDATE's reads writes, as server_audit
// records them: the rows it reads are locked for writing.
func (c *collector) forUpdate() {
	for i := range c.out {
		if c.out[i].Op == Read {
			c.out[i].Op = Write
		}
	}
}

// written adds the tables of a multi-table UPDATE or DELETE that it
// changes as written: those named in targets (by alias or name), or every
// table when targets is nil (a single-table statement). The others are
// added as read by the caller.
func (c *collector) written(exprs sqlparser.TableExprs, targets map[string]bool) {
	_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
		switch n := n.(type) {
		case *sqlparser.Subquery:
			return false, nil // read, not written
		case *sqlparser.AliasedTableExpr:
			t, ok := n.Expr.(sqlparser.TableName)
			if !ok {
				return false, nil
			}
			name := strings.ToLower(t.Name.String())
			alias := strings.ToLower(n.As.String())
			if targets == nil || targets[name] || alias != "" && targets[alias] {
				c.add(Write, t)
			}
		}
		return true, nil
	}, exprs)
}

// updatedAliases names the tables (by alias or name) whose columns an
// UPDATE sets; nil when every table is updated (one table, or columns
// without a qualifier, which MySQL resolves to the only table that has
// them: this package cannot know which without the schema, and treating
// all as written overstates rather than hides a change).
func updatedAliases(u *sqlparser.Update) map[string]bool {
	if len(u.TableExprs) == 1 {
		if _, ok := u.TableExprs[0].(*sqlparser.AliasedTableExpr); ok {
			return nil
		}
	}
	set := map[string]bool{}
	for _, e := range u.Exprs {
		if e == nil || e.Name == nil {
			continue
		}
		q := e.Name.Qualifier.Name.String()
		if q == "" {
			return nil
		}
		set[strings.ToLower(q)] = true
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

func (c *collector) ddl(d *sqlparser.DDL) {
	switch d.Action {
	case sqlparser.CreateStr:
		switch {
		case d.ViewSpec != nil:
			// As server_audit: a view is not a table; the tables its
			// definition reads are read.
			c.reads(d.ViewSpec.ViewExpr)
		case d.TriggerSpec != nil, d.ProcedureSpec != nil, d.EventSpec != nil:
			// Not tables: the statement is recorded, without AUX events.
		default:
			// As server_audit: CREATE ... LIKE does not read the other
			// table's rows; CREATE ... AS SELECT writes the new one.
			c.add(Create, d.Table)
			if d.OptSelect != nil {
				c.add(Write, d.Table)
				c.reads(d.OptSelect)
			}
		}
	case sqlparser.AlterStr:
		if d.ViewSpec != nil {
			c.reads(d.ViewSpec.ViewExpr)
			return
		}
		c.add(Alter, d.Table)
	case sqlparser.DropStr:
		for _, t := range d.FromTables { // FromViews: not tables
			c.add(Drop, t)
		}
	case sqlparser.RenameStr:
		for i, from := range d.FromTables {
			if i >= len(d.ToTables) {
				break
			}
			to := d.ToTables[i]
			c.out = append(c.out, Access{Op: Rename, DB: from.DbQualifier.String(), Table: from.Name.String(),
				ToDB: to.DbQualifier.String(), ToTable: to.Name.String()})
		}
	case sqlparser.TruncateStr:
		c.add(Write, d.Table)
	default:
		if !d.Table.IsEmpty() {
			c.add(Alter, d.Table)
		}
	}
}
