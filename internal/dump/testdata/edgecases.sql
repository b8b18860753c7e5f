-- Edge cases for the dump's round-trip test. The database name bk_edge is a placeholder: the
-- test replaces every occurrence (always inside backquotes) with a unique name that itself
-- contains a backtick and non-ASCII characters. Load with: mariadb < edgecases.sql
SET NAMES utf8mb4;
SET sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET time_zone = '+00:00';
DROP DATABASE IF EXISTS `bk_edge`;
CREATE DATABASE `bk_edge` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE `bk_edge`;

-- Integers at their limits; the auto_increment counter is above the largest id.
CREATE TABLE ints (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, b BOOL, z INT(8) UNSIGNED ZEROFILL
) ENGINE=InnoDB AUTO_INCREMENT=1000 COMMENT='integers at their limits';
INSERT INTO ints (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, b, z) VALUES
 (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0, 0),
 (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 1, 42),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
UPDATE ints SET id = 0 WHERE id = 4;

-- Exact and approximate numbers; the unsigned BIGINT key spans the whole range.
CREATE TABLE nums (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  d DECIMAL(65,30), dn DECIMAL(10,2) UNSIGNED,
  f FLOAT, db DOUBLE, f3 FLOAT(10,3), d5 DOUBLE(20,5), r REAL
) ENGINE=InnoDB;
INSERT INTO nums VALUES
 (0, 12345678901234567890123456789012345.123456789012345678901234567890, 0.00, 1.0000001, 0.1e0 + 0.2e0, 1.5, 2.5, 1e0/3),
 (1, -99999999999999999999999999999999999.999999999999999999999999999999, 99999999.99, 3.4028234e38, 1.7976931348623157e308, -1.123, 12345.67891, -0.0),
 (2, 0.000000000000000000000000000001, NULL, -3.4028234e38, 4.9e-324, 0.001, -0.00001, 2.2250738585072014e-308),
 (3, NULL, 1.00, 1.17549435e-38, -1.7976931348623157e308, NULL, NULL, 123456789012345678e0),
 (4, 0, 0.5, 1.4e-45, 2/3, 7.777, 1e-5, 1e22),
 (5, 1, 2, 16777217, 9007199254740993, 0, 0, 0.1),
 (6, 2, 3, 0.1, 1e-7, 0, 0, 5e-324),
 (7, 3, 4, 123456.789, 123456789.123456789, 0, 0, -1e-300),
 (9223372036854775807, 4, 5, 1e-10, 1e100, 1, 1, 1),
 (18446744073709551615, 5, 6, 6.02214076e23, 6.02214076e23, 2, 2, 2);

-- BIT of every interesting width, with negative TINYINT keys.
CREATE TABLE bits (
  id TINYINT NOT NULL PRIMARY KEY,
  b1 BIT(1), b7 BIT(7), b8 BIT(8), b9 BIT(9), b63 BIT(63), b64 BIT(64)
) ENGINE=InnoDB;
INSERT INTO bits VALUES
 (-128, b'0', b'0', b'0', b'0', b'0', b'0'),
 (-1, b'1', b'1111111', b'11111111', b'111111111', 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF),
 (0, NULL, NULL, NULL, NULL, NULL, NULL),
 (127, b'1', b'1010101', b'10000000', b'100000001', 0x4000000000000001, 0x8000000000000001);

-- Strings in many charsets, binary with every byte, NULL vs '' vs 'NULL', trailing spaces,
-- and multi-byte charsets whose second byte is a backslash (sjis, big5, gbk).
CREATE TABLE strs (
  id INT NOT NULL PRIMARY KEY,
  c CHAR(10), vc VARCHAR(100), t TEXT, lt LONGTEXT,
  l1 VARCHAR(50) CHARACTER SET latin1, a1 VARCHAR(20) CHARACTER SET ascii,
  bn BINARY(4), vb VARBINARY(600), bl BLOB, lb LONGBLOB, cb CHAR(5) BINARY,
  e ENUM('', 'a', 'b b', 'ü') , s SET('x', 'y', 'z') , e2 ENUM('p','q') NOT NULL DEFAULT 'p',
  uc VARCHAR(10) CHARACTER SET ucs2, u32 VARCHAR(10) CHARACTER SET utf32, u16 VARCHAR(10) CHARACTER SET utf16,
  sj VARCHAR(10) CHARACTER SET sjis, b5 VARCHAR(10) CHARACTER SET big5, gk VARCHAR(10) CHARACTER SET gbk
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO strs (id, c, vc, t, lt, l1, a1, bn, vb, bl, lb, cb, e, s, e2, uc, u32, u16, sj, b5, gk) VALUES
 (1, 'a  ', 'a  ', 'trailing  ', '', _latin1 0xE9A9FF80, 'plain', 0x00FF0A0D, 0x00, 0x27225C, '', 'x ', '', '', 'p',
  _ucs2 0x00270041005C, _utf32 0x0001F600, _utf16 0xD83DDE00, _sjis 0x955C, _big5 0xB35C, _gbk 0x815C),
 (2, '', '', NULL, 'NULL', '', '', '', '', NULL, 'NULL', '', 'a', 'x,y', 'q', '', '', '', '', '', ''),
 (3, NULL, NULL, 'NULL', NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, 'p', NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 'ü😀', 'emoji 😀🎉 ñ 中文 \' " \\ \n \r \t \0 \Z end', CONCAT('line1', CHAR(10), 'line2', CHAR(13), CHAR(10), 'tab', CHAR(9), 'nul', CHAR(0), 'ctrlz', CHAR(26)),
  REPEAT('long text ;\n', 2000), 'Ünïcödé Latin-1', 'a''b', 0x41424344, UNHEX(CONCAT(
   '000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F',
   '202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F',
   '404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F',
   '606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F',
   '808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9F',
   'A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF',
   'C0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF',
   'E0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF')),
  'valid utf8 blob: ü', REPEAT(0xDEADBEEF00, 3000), 'bin  ', 'b b', 'x,y,z', 'q',
  'ucs ü', 'u32 😀', 'u16 😀', _sjis 0x955C955C, _big5 0xB35CA470, _gbk 0xD6D0CEC4),
 (5, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'ü', 'z', 'p', 'x', 'x', 'x', 'x', 'x', 'x');
-- Index 0 of an ENUM (the "invalid value" error value) is distinct from the '' member.
INSERT INTO strs (id, e) VALUES (6, 'no such member');

-- Dates and times: zero dates, zero parts, fractional seconds, TIME beyond a day and negative.
CREATE TABLE times (
  id INT NOT NULL PRIMARY KEY,
  d DATE, dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL, ts0 TIMESTAMP NULL DEFAULT NULL,
  t TIME(6), t0 TIME, y YEAR
) ENGINE=InnoDB;
INSERT INTO times VALUES
 (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '-838:59:59', '838:59:59', 0),
 (2, '2020-00-15', '2020-01-00 10:00:00.5', '2020-02-30 00:00:00', '1970-01-01 00:00:01', '2038-01-19 03:14:07', '-00:00:01.5', '-00:00:01', 1901),
 (3, '9999-12-31', '9999-12-31 23:59:59.999999', '1000-01-01 00:00:00', '2038-01-19 03:14:07.999999', NULL, '100:00:00.000001', '00:00:00', 2155),
 (4, '2024-02-29', '2024-03-31 02:30:00.123456', '2024-10-27 02:30:00', '2024-03-31 02:30:00.000001', '2024-10-27 01:30:00', '-100:00:00.000001', '23:59:59', 2000),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- JSON (MariaDB: LONGTEXT with a JSON_VALID check).
CREATE TABLE docs (id INT NOT NULL PRIMARY KEY, j JSON, j2 JSON NOT NULL DEFAULT '{}') ENGINE=InnoDB;
INSERT INTO docs VALUES
 (1, '{"a": [1, 2.50, "x\\"y", null, true], "ü": "😀", "nl": "a\\nb"}', '[]'),
 (2, NULL, '{"deep": {"deeper": {"k": "v;"}}}'),
 (3, '"just a string with \' quote"', '123.456e7');

-- Spatial values with an SRID.
CREATE TABLE geo (
  id INT NOT NULL PRIMARY KEY,
  g GEOMETRY, p POINT REF_SYSTEM_ID=4326, ls LINESTRING, poly POLYGON, mp MULTIPOINT,
  gc GEOMETRYCOLLECTION, pn POINT NOT NULL, SPATIAL KEY (pn)
) ENGINE=InnoDB;
INSERT INTO geo VALUES
 (1, ST_GeomFromText('POINT(1.5 -2.25)', 3857), ST_GeomFromText('POINT(13.4050 52.5200)', 4326),
  ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0.5)'), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))'),
  ST_GeomFromText('MULTIPOINT(0 0, 1e300 -1e-300)'), ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 2))'),
  ST_GeomFromText('POINT(0.1 0.2)')),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, ST_GeomFromText('POINT(-180 90)', 4326));

-- Generated (virtual and stored) and invisible columns, and an index on a virtual column.
CREATE TABLE gen (
  id INT NOT NULL PRIMARY KEY,
  a INT,
  v INT AS (a * 2) VIRTUAL,
  s VARCHAR(20) AS (CONCAT('x', a)) STORED,
  h INT INVISIBLE DEFAULT 7,
  fv DOUBLE AS (a / 3) VIRTUAL,
  KEY (v)
) ENGINE=InnoDB;
INSERT INTO gen (id, a, h) VALUES (1, 10, 1), (2, NULL, NULL), (3, -5, 700);
INSERT INTO gen (id, a) VALUES (4, 4);

-- Reserved words, backticks and non-ASCII characters in identifiers.
CREATE TABLE `select` (
  `from` INT NOT NULL PRIMARY KEY,
  `back``tick` VARCHAR(10),
  `ünï cödé` INT,
  `order` VARCHAR(5) DEFAULT 'x;y'
) ENGINE=InnoDB COMMENT='reserved ; words';
INSERT INTO `select` VALUES (1, 'a`b', 1, 'o'), (2, '``', 2, NULL);
CREATE TABLE `tåble ``q`` ñ` (`ç``ol` INT NOT NULL PRIMARY KEY, `index` TEXT) ENGINE=InnoDB;
INSERT INTO `tåble ``q`` ñ` VALUES (1, 'ü'), (-5, 'neg');

-- No key at all, with duplicate rows; a unique NOT NULL key with negative values; a composite key.
CREATE TABLE nokey (a INT, b TEXT) ENGINE=InnoDB;
INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, '');
CREATE TABLE uniq (u BIGINT NOT NULL, x INT, UNIQUE KEY uk (u)) ENGINE=InnoDB;
INSERT INTO uniq VALUES (-9223372036854775808, 1), (-1, 2), (0, 3), (9223372036854775807, 4);
CREATE TABLE comp (a INT NOT NULL, b VARCHAR(10) NOT NULL, c TEXT, PRIMARY KEY (a, b)) ENGINE=InnoDB;
INSERT INTO comp VALUES (1, 'a', 'x'), (1, 'b', 'y'), (2, 'a', NULL);
CREATE TABLE binkey (k VARBINARY(16) NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB;
INSERT INTO binkey VALUES (0x00, 1), (0xFFFF, 2);

-- Partitioning, comments and foreign keys (the child sorts before its parent by name).
SET foreign_key_checks = 0;
CREATE TABLE parted (
  id INT NOT NULL, y INT NOT NULL, note VARCHAR(20) COMMENT 'column comment ü',
  PRIMARY KEY (id, y)
) ENGINE=InnoDB COMMENT='partitioned table'
  PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN (3000), PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO parted VALUES (1, 1999, 'a'), (2, 2500, 'b'), (3, 9999, NULL);
CREATE TABLE a_child (id INT NOT NULL PRIMARY KEY, parent_id INT NOT NULL,
  CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES z_parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE z_parent (id INT NOT NULL PRIMARY KEY, name VARCHAR(10)) ENGINE=InnoDB;
SET foreign_key_checks = 1;
INSERT INTO z_parent VALUES (1, 'p');
INSERT INTO a_child VALUES (10, 1);

-- Non-transactional engines.
CREATE TABLE my (id INT NOT NULL PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM;
INSERT INTO my VALUES (1, 'myisam'), (2, NULL);
CREATE TABLE ar (id INT NOT NULL PRIMARY KEY, v VARCHAR(10)) ENGINE=Aria;
INSERT INTO ar VALUES (1, 'aria');

-- MariaDB types parsed from text.
CREATE TABLE net (id INT NOT NULL PRIMARY KEY, i6 INET6, i4 INET4, u UUID) ENGINE=InnoDB;
INSERT INTO net VALUES (1, '::1', '10.0.0.1', 'e0b8d5a2-0000-4000-8000-000000000001'),
 (2, '1:2:3:4:5:6:7:88', '255.255.255.255', '00000000-0000-0000-0000-000000000000'), (3, NULL, NULL, NULL);

-- A sequence after some NEXTVAL calls, and a table whose default draws from it.
CREATE SEQUENCE `seq ü` START WITH 100 INCREMENT BY 5 CACHE 10;
DO NEXTVAL(`seq ü`), NEXTVAL(`seq ü`), NEXTVAL(`seq ü`);
CREATE TABLE uses_seq (id INT NOT NULL DEFAULT NEXTVAL(`seq ü`) PRIMARY KEY, v INT) ENGINE=InnoDB;
INSERT INTO uses_seq (v) VALUES (1), (2);
CREATE SEQUENCE plain_seq;

-- Views, a view on a view, and a view on that, with awkward names.
CREATE VIEW v_base AS SELECT id, vc, l1 FROM strs WHERE id < 5;
CREATE VIEW v_on_v AS SELECT id, CONCAT(vc, ';') AS vcx FROM v_base;
CREATE DEFINER = CURRENT_USER SQL SECURITY INVOKER VIEW `view ``quoted`` ü` AS SELECT v_on_v.id, `select`.`back``tick` FROM v_on_v JOIN `select` ON `select`.`from` = v_on_v.id;
CREATE ALGORITHM=MERGE VIEW a_view_on_z AS SELECT `view ``quoted`` ü`.id FROM `view ``quoted`` ü` WITH CHECK OPTION;

DELIMITER ;;
CREATE TRIGGER `trg ü` BEFORE INSERT ON z_parent FOR EACH ROW
BEGIN
  -- a comment with ; and $$ and ;;
  IF NEW.name IS NULL THEN SET NEW.name = 'default;'; END IF;
  SET NEW.name = CONCAT(NEW.name, '');
END;;
CREATE TRIGGER trg_after AFTER UPDATE ON z_parent FOR EACH ROW SET @edge_updates = COALESCE(@edge_updates, 0) + 1;;
CREATE PROCEDURE `proc ``x`` ü`(IN n INT, OUT total BIGINT)
  READS SQL DATA
  COMMENT 'procedure comment'
BEGIN
  DECLARE s VARCHAR(20) DEFAULT 'semi;colons;; $$ //';
  SELECT COUNT(*) INTO total FROM ints WHERE id <= n;
  SET total = total + LENGTH(s);
END;;
CREATE FUNCTION `select`(x INT) RETURNS INT DETERMINISTIC
BEGIN
  DECLARE y INT;
  SET y = x * 2;
  RETURN y;
END;;
CREATE EVENT `ev ü` ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE
  COMMENT 'never fires in tests'
  DO BEGIN DELETE FROM nokey WHERE a = -1; INSERT INTO nokey VALUES (-2, 'ev'); END;;
DELIMITER ;
-- A routine whose meaning depends on the sql_mode it was created with.
SET sql_mode = 'PIPES_AS_CONCAT,STRICT_ALL_TABLES';
CREATE FUNCTION f_pipes() RETURNS VARCHAR(10) DETERMINISTIC RETURN 'a' || 'b';
SET sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET NAMES latin1;
CREATE VIEW v_latin1 AS SELECT 'é' AS e, id FROM ints;
CREATE PROCEDURE p_latin1() SELECT 'é';
SET NAMES utf8mb4;
CREATE VIEW v_func AS SELECT `select`(id) AS doubled FROM ints WHERE id = 1;
