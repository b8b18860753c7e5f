package restore

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Deferred secondary indexes.
//
// Inserting rows into a table with secondary indexes updates every index at random places per
// row; with a buffer pool smaller than the indexes, that is random I/O. Building the index after
// the rows are in (ALTER TABLE … ADD KEY) reads the table once and sorts: the whole restore of
// the shop benchmark took 68 s instead of 127 s (docs/restore.md, "Speed"). So the CREATE TABLE
// statement is loaded without its plain and unique secondary keys, and they are added, in their
// original order and with their original definitions, once the table's last data object is in.
//
// Only tables where this is certainly equivalent qualify: InnoDB, a PRIMARY KEY (otherwise the
// first unique key would become the clustered index and adding it later rebuilds the table),
// the AUTO_INCREMENT column (if any) leading the primary key (it must be indexed at CREATE
// time), no foreign keys (InnoDB would create an index of its own for them), no partitioning
// and no system versioning. FULLTEXT, SPATIAL and hash-based keys stay in CREATE TABLE.

// deferredIndexes are the secondary keys taken out of one CREATE TABLE.
type deferredIndexes struct {
	defs []string // "KEY `a` (`b`)", as SHOW CREATE TABLE wrote them
}

var (
	keyLine  = regexp.MustCompile("^  (UNIQUE )?KEY `")
	autoIncr = regexp.MustCompile("^  `((?:[^`]|``)+)` .* AUTO_INCREMENT(,| COMMENT|$)")
)

// splitSecondaryIndexes returns the CREATE TABLE statement without its deferrable secondary keys
// and those keys, or the statement unchanged and nil when the table does not qualify.
func splitSecondaryIndexes(stmt []byte) ([]byte, *deferredIndexes) {
	s := string(stmt)
	open := strings.Index(s, " (\n")
	closeAt := strings.LastIndex(s, "\n)")
	if open < 0 || closeAt < open {
		return stmt, nil
	}
	options := s[closeAt:]
	if !strings.Contains(options, "ENGINE=InnoDB") || strings.Contains(options, "PARTITION") ||
		strings.Contains(options, "WITH SYSTEM VERSIONING") {
		return stmt, nil
	}
	body := strings.Split(s[open+3:closeAt], "\n")
	var kept, defs []string
	pk := ""
	auto := ""
	for _, line := range body {
		item := strings.TrimSuffix(line, ",")
		if !strings.HasPrefix(item, "  ") {
			return stmt, nil // a name with a line break: not the layout this relies on
		}
		switch {
		case strings.Contains(item, "FOREIGN KEY") || strings.Contains(item, "PERIOD FOR SYSTEM_TIME"):
			return stmt, nil
		case strings.HasPrefix(item, "  PRIMARY KEY ("):
			pk = item
		case keyLine.MatchString(item) && !strings.Contains(item, "USING HASH"):
			defs = append(defs, strings.TrimPrefix(item, "  "))
			continue
		}
		if m := autoIncr.FindStringSubmatch(item); m != nil {
			auto = m[1]
		}
		kept = append(kept, item)
	}
	if pk == "" || len(defs) == 0 {
		return stmt, nil
	}
	if auto != "" && !strings.HasPrefix(pk, "  PRIMARY KEY (`"+auto+"`") {
		return stmt, nil
	}
	var b bytes.Buffer
	b.WriteString(s[:open+3])
	b.WriteString(strings.Join(kept, ",\n"))
	b.WriteString(options)
	return b.Bytes(), &deferredIndexes{defs: defs}
}

// build adds the keys to table (qualified) in one ALTER TABLE, so the table is read once.
func (d *deferredIndexes) build(ctx context.Context, conn *loaderConn, table string) error {
	if _, err := conn.ExecContext(ctx, "SET NAMES utf8mb4"); err != nil {
		return fmt.Errorf("build indexes of %s: %w", table, err)
	}
	parts := make([]string, len(d.defs))
	for i, def := range d.defs {
		parts[i] = "ADD " + def
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+table+" "+strings.Join(parts, ", ")); err != nil {
		return fmt.Errorf("build the secondary indexes of %s after loading: %w", table, err)
	}
	return nil
}
