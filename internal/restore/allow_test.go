package restore

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/dump"
)

// checkObject runs an object's text through the reader and the allowlist, as a restore does.
func checkObject(o dump.Object, database, text string) (*objectCheck, error) {
	c := newObjectCheck(o, database)
	return c, dump.ReadStatementsLimit(strings.NewReader(text), dump.MaxDefinitionBytes, c.check)
}

const dataHeader = "-- backupd data: table `shop`.`t`; load with: mariadb DBNAME < this-file\nSET NAMES binary;\nSET time_zone = '+00:00';\nSET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\nSET foreign_key_checks = 0;\nSET unique_checks = 0;\n"

func TestAllowlist(t *testing.T) {
	data := dump.Object{Key: "shop/data/t/00001.sql", Kind: dump.KindData, Name: "t"}
	proc := dump.Object{Key: "shop/procedures/p.sql", Kind: dump.KindProcedure, Name: "p"}
	view := dump.Object{Key: "shop/views/v.sql", Kind: dump.KindView, Name: "v"}
	table := dump.Object{Key: "shop/tables/t.sql", Kind: dump.KindTable, Name: "t"}
	trig := dump.Object{Key: "shop/triggers/tr.sql", Kind: dump.KindTrigger, Name: "tr", Table: "t"}
	dbo := dump.Object{Key: "shop/database.sql", Kind: dump.KindDatabase}
	seq := dump.Object{Key: "shop/sequences/s.sql", Kind: dump.KindSequence, Name: "s"}
	users := dump.Object{Key: "@global/users.sql", Kind: dump.KindUsers}
	routine := func(body string) string {
		return "SET character_set_client = 'utf8mb4';\nSET sql_mode = 'STRICT_TRANS_TABLES';\nDELIMITER ;;\nCREATE DEFINER=`app`@`%` PROCEDURE `p`()\nBEGIN\n" + body + "\nEND;;\nDELIMITER ;\n"
	}
	tests := []struct {
		name string
		obj  dump.Object
		text string
		want string // "" accepted, else a part of the refusal
	}{
		{"data rows", data, dataHeader + "INSERT INTO `t` (`a`,`b`,`c`) VALUES (1,-2.5e0,'x\\'y'),(NULL,0x00ff,_utf8mb4'ü'),(X'41',+3,'a;b');\n", ""},
		{"data LOAD_FILE value", data, dataHeader + "INSERT INTO `t` (`a`) VALUES (LOAD_FILE('/etc/shadow'));\n", "LOAD_FILE among its values"},
		{"data subquery", data, dataHeader + "INSERT INTO `t` (`a`) VALUES ((SELECT 1));\n", "not a literal"},
		{"data other table", data, dataHeader + "INSERT INTO `u` (`a`) VALUES (1);\n", "another table"},
		{"data qualified table", data, dataHeader + "INSERT INTO `t`.`x` (`a`) VALUES (1);\n", "column list"},
		{"data on duplicate", data, dataHeader + "INSERT INTO `t` (`a`) VALUES (1) ON DUPLICATE KEY UPDATE a = 2;\n", "more than rows"},
		{"data GRANT", data, dataHeader + "GRANT ALL ON *.* TO 'x'@'%';\n", "GRANT ALL"},
		{"data SET GLOBAL", data, dataHeader + "SET GLOBAL general_log = 1;\n", "SET of GLOBAL"},
		{"data SET expression", data, dataHeader + "SET sql_mode = (SELECT LOAD_FILE('/x'));\n", "one literal"},
		{"data USE", data, dataHeader + "USE mysql;\n", "USE MYSQL"},
		{"data LOAD DATA", data, dataHeader + "LOAD DATA INFILE '/etc/passwd' INTO TABLE t;\n", "LOAD DATA"},
		{"data SELECT INTO OUTFILE", data, dataHeader + "SELECT 1 INTO OUTFILE '/tmp/x';\n", "SELECT"},
		{"data CALL", data, dataHeader + "CALL p();\n", "CALL"},
		{"data executable comment", data, dataHeader + "/*!50000 GRANT ALL ON *.* TO x */;\n", "GRANT ALL"},
		{"data string hides nothing under NO_BACKSLASH_ESCAPES", data, "SET sql_mode = 'NO_BACKSLASH_ESCAPES';\nINSERT INTO `t` (`a`) VALUES ('a\\', LOAD_FILE('/x'), '');\n", "LOAD_FILE"},
		{"data before any sql_mode, ambiguous string", data, "INSERT INTO `t` (`a`) VALUES ('a\\', LOAD_FILE('/x'), '');\n", "not a literal"},
		{"procedure", proc, routine("  DECLARE reset INT DEFAULT 0;\n  SELECT `grant`.x FROM t AS `grant`; -- GRANT in a comment\n  SELECT 'GRANT ALL';\n  SET @@session.sql_mode = '';"), ""},
		{"procedure GRANT", proc, routine("  GRANT ALL ON *.* TO 'x'@'%';"), "GRANT"},
		{"procedure CREATE USER", proc, routine("  CREATE USER 'x'@'%';"), "CREATE USER"},
		{"procedure dynamic SQL", proc, routine("  PREPARE s FROM @q; EXECUTE s;"), "PREPARE"},
		{"procedure SET GLOBAL", proc, routine("  SET GLOBAL event_scheduler = ON;"), "SET GLOBAL"},
		{"procedure @@global", proc, routine("  SET @@global.read_only := 0;"), "global server variable"},
		{"procedure INTO OUTFILE", proc, routine("  SELECT * FROM t INTO OUTFILE '/tmp/x';"), "INTO OUTFILE"},
		{"procedure DUMPFILE in executable comment", proc, routine("  SELECT 1 /*!INTO DUMPFILE '/tmp/x' */;"), "INTO DUMPFILE"},
		{"procedure mysql tables", proc, routine("  UPDATE `mysql`.global_priv SET Priv = '{}';"), "mysql system database"},
		{"procedure SET PASSWORD", proc, routine("  SET PASSWORD FOR root@localhost = PASSWORD('x');"), "SET PASSWORD"},
		{"procedure KILL", proc, routine("  KILL 5;"), "KILL"},
		{"procedure other name", proc, strings.Replace(routine("SELECT 1;"), "`p`()", "`q`()", 1), "not of the object itself"},
		{"procedure qualified name", proc, strings.Replace(routine("SELECT 1;"), "`p`()", "`other`.`p`()", 1), "not of the object itself"},
		{"procedure in a view object", view, routine("SELECT 1;"), "CREATE PROCEDURE"},
		{"two creates", proc, routine("SELECT 1;") + "CREATE DEFINER=`app`@`%` PROCEDURE `p`() SELECT 2;\n", "second CREATE"},
		{"view", view, "SET character_set_client = 'utf8mb4';\nSET sql_mode = 'NO_ENGINE_SUBSTITUTION';\nCREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select `t`.`id` AS `id` from `other_db`.`t`;\n", ""},
		{"view of mysql.user", view, "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select * from mysql.user;\n", "mysql system database"},
		{"table", table, "SET NAMES utf8mb4;\nSET sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';\nSET foreign_key_checks = 0;\nDELIMITER ;;\nCREATE TABLE `t` (\n  `id` int(11) NOT NULL DEFAULT nextval(`s`),\n  `reset` int,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;;\nDELIMITER ;\n", ""},
		{"table DATA DIRECTORY", table, "CREATE TABLE `t` (`id` int) ENGINE=InnoDB DATA DIRECTORY='/etc/cron.d/';\n", "DATA DIRECTORY"},
		{"table in another database", table, "CREATE TABLE `mysql`.`t` (`id` int);\n", "not of the object itself"},
		{"table then DROP", table, "CREATE TABLE `t` (`id` int);\nDROP TABLE `x`;\n", "DROP TABLE"},
		{"trigger", trig, "SET sql_mode = '';\nCREATE DEFINER=`app`@`%` TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1;\n", ""},
		{"trigger on another table", trig, "CREATE DEFINER=`app`@`%` TRIGGER `tr` BEFORE INSERT ON `mysql`.`user` FOR EACH ROW SET NEW.a = 1;\n", "another table"},
		{"database", dbo, "CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;\n", ""},
		{"database other", dbo, "CREATE DATABASE IF NOT EXISTS `mysql2` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;\n", "own database"},
		{"database injected collation", dbo, "CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4 COLLATE x DATA DIRECTORY '/';\n", "own database"},
		{"sequence", seq, "SET NAMES utf8mb4;\nCREATE SEQUENCE `s` start with -100 minvalue -1000 maxvalue 9223372036854775806 increment by 5 cache 10 nocycle ENGINE=InnoDB;\nDO SETVAL(`s`, -95, 0, 0);\n", ""},
		{"sequence DO other", seq, "DO SLEEP(10);\n", "SETVAL of the sequence itself"},
		{"users", users, "SET NAMES utf8mb4;\nCREATE ROLE IF NOT EXISTS 'r';\nCREATE USER IF NOT EXISTS `u`@`%` IDENTIFIED BY PASSWORD '*AB';\nGRANT SELECT ON `shop`.* TO `u`@`%`;\nSET DEFAULT ROLE `r` FOR `u`@`%`;\n", ""},
		{"users SET GLOBAL", users, "SET GLOBAL read_only = 0;\n", "SET of GLOBAL"},
		{"unterminated string", data, dataHeader + "INSERT INTO `t` (`a`) VALUES ('abc);\n", "not a literal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkObject(tc.obj, "shop", tc.text)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want accepted", err)
			case tc.want != "" && err == nil:
				t.Errorf("got accepted, want a refusal containing %q", tc.want)
			case tc.want != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.obj.Key)):
				t.Errorf("got %v, want ErrRefused naming %s and containing %q", err, tc.obj.Key, tc.want)
			}
		})
	}
}

func TestDefinersCollected(t *testing.T) {
	c, err := checkObject(dump.Object{Key: "k", Kind: dump.KindFunction, Name: "f"}, "shop",
		"CREATE DEFINER='root'@'localhost' FUNCTION `f`() RETURNS INT RETURN 1;\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.definers) != 1 || c.definers[0].user != "root" || c.definers[0].host != "localhost" {
		t.Errorf("got definers %+v, want one, root@localhost", c.definers)
	}
}

// FuzzStatements feeds any object text to the statement reader and the allowlist: neither may
// panic, every accepted statement must come out of the reader within the limit, and a data
// object's accepted INSERT must be one the lexer reads as literals only.
func FuzzStatements(f *testing.F) {
	f.Add(dataHeader+"INSERT INTO `t` (`a`) VALUES (1,'x\\'y',0x00,_utf8mb4'z',NULL);\n", uint8(0))
	f.Add("DELIMITER ;;\nCREATE DEFINER=`a`@`%` PROCEDURE `t`()\nBEGIN\n SELECT 1; /*!GRANT*/\nEND;;\nDELIMITER ;\n", uint8(1))
	f.Add("SET sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES';\nCREATE TABLE \"t\" (\"a\" int DEFAULT 'x\\');\n", uint8(2))
	f.Add("CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n", uint8(3))
	kinds := []string{dump.KindData, dump.KindProcedure, dump.KindTable, dump.KindDatabase, dump.KindView, dump.KindTrigger, dump.KindEvent, dump.KindSequence, dump.KindUsers}
	f.Fuzz(func(t *testing.T, text string, k uint8) {
		o := dump.Object{Key: "k", Kind: kinds[int(k)%len(kinds)], Name: "t", Table: "t"}
		c := newObjectCheck(o, "shop")
		const max = 4 << 10
		err := dump.ReadStatementsLimit(strings.NewReader(text), max, func(stmt []byte) error {
			if len(stmt) > max {
				t.Fatalf("the reader passed a %d-byte statement with a limit of %d", len(stmt), max)
			}
			if err := c.check(stmt); err != nil {
				return err
			}
			if o.Kind == dump.KindData && hasPrefixFold(bytes.TrimSpace(stmt), "INSERT") {
				for _, w := range []string{"LOAD_FILE", "SELECT"} {
					toks, err := lexAll(stmt, c.mode)
					if err != nil {
						t.Fatalf("accepted %q that does not lex: %v", stmt, err)
					}
					for _, tk := range toks {
						if tk.kind == tokWord && strings.EqualFold(string(stmt[tk.s:tk.e]), w) {
							t.Fatalf("accepted INSERT %q with %s", stmt, w)
						}
					}
				}
			}
			return nil
		})
		_ = err
	})
}
