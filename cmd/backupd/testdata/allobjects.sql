-- Every kind of object the dump carries (internal/dump/FORMAT.md), for drills and restores over
-- it. The database name bk_allobj is a placeholder: the test replaces every occurrence (always
-- inside backquotes) with a unique name. Nothing here may fire or change data during a test:
-- enabled events start in 2035. The definer ghost_definer@% exists on no server (the server
-- prints such a view's columns qualified with the source database: v_ghost).
-- Load with: mariadb < allobjects.sql
SET NAMES utf8mb4;
SET sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION';
SET time_zone = '+00:00';
CREATE DATABASE `bk_allobj` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE `bk_allobj`;

-- Sequences: one used by a column default, one cycling with a negative increment.
CREATE SEQUENCE order_seq START WITH 1000 INCREMENT BY 10 CACHE 5;
DO NEXTVAL(order_seq), NEXTVAL(order_seq);
CREATE SEQUENCE countdown START WITH 10 MINVALUE 1 MAXVALUE 10 INCREMENT BY -1 CYCLE NOCACHE;
DO NEXTVAL(countdown);

-- Generated (virtual, stored, indexed) and invisible columns, a CHECK constraint, a FULLTEXT
-- index, a sequence default, and a secondary index.
CREATE TABLE customers (
  id INT NOT NULL DEFAULT NEXTVAL(order_seq) PRIMARY KEY,
  first_name VARCHAR(40) NOT NULL,
  last_name VARCHAR(40) NOT NULL,
  full_name VARCHAR(81) AS (CONCAT(first_name, ' ', last_name)) VIRTUAL,
  name_len INT AS (CHAR_LENGTH(first_name) + CHAR_LENGTH(last_name)) STORED,
  internal_note VARCHAR(100) INVISIBLE DEFAULT 'hidden',
  created DATETIME(3) NOT NULL DEFAULT '2026-01-01 00:00:00.000',
  bio TEXT,
  CONSTRAINT name_not_blank CHECK (first_name <> ''),
  KEY by_last (last_name),
  KEY by_len (name_len),
  FULLTEXT KEY ft_bio (bio)
) ENGINE=InnoDB COMMENT='generated and invisible columns';
INSERT INTO customers (first_name, last_name, bio) VALUES ('Ada', 'Lovelace', 'analytical engine'),
  ('Grace', 'Hopper', 'compilers'), ('Edsger', 'Dijkstra', NULL);
INSERT INTO customers (first_name, last_name, internal_note) VALUES ('Alan', 'Turing', 'visible only by name');

-- Foreign keys, the child before the parent by name.
CREATE TABLE orders (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  total DECIMAL(10,2) NOT NULL DEFAULT 0,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=500;
INSERT INTO orders (customer_id, total, status) VALUES (1020, 10.50, 'paid'), (1030, 99.99, 'new'), (1020, 0, 'shipped');

-- System-versioned tables: one with implicit period columns and history (the dump carries
-- the current rows only), one with explicit row_start/row_end columns.
CREATE TABLE prices (
  sku VARCHAR(20) NOT NULL PRIMARY KEY,
  price DECIMAL(10,2) NOT NULL
) ENGINE=InnoDB WITH SYSTEM VERSIONING;
INSERT INTO prices VALUES ('a', 1.00), ('b', 2.00), ('c', 3.00);
UPDATE prices SET price = price * 2 WHERE sku IN ('a', 'b');
DELETE FROM prices WHERE sku = 'c';
CREATE TABLE audit (
  id INT NOT NULL PRIMARY KEY,
  what VARCHAR(50),
  row_start TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE,
  row_end TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE,
  PERIOD FOR SYSTEM_TIME (row_start, row_end)
) ENGINE=InnoDB WITH SYSTEM VERSIONING;
INSERT INTO audit (id, what) VALUES (1, 'created'), (2, 'changed');
UPDATE audit SET what = 'changed twice' WHERE id = 2;

-- Partitioned tables: RANGE with subpartitions, LIST, HASH, KEY, and a versioned table
-- partitioned by SYSTEM_TIME.
CREATE TABLE sales (
  id INT NOT NULL,
  sold DATE NOT NULL,
  amount INT,
  PRIMARY KEY (id, sold)
) ENGINE=InnoDB
  PARTITION BY RANGE (YEAR(sold)) SUBPARTITION BY HASH (id) SUBPARTITIONS 2 (
    PARTITION p2024 VALUES LESS THAN (2025),
    PARTITION p2025 VALUES LESS THAN (2026),
    PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO sales VALUES (1, '2024-03-01', 10), (2, '2025-07-04', 20), (3, '2030-01-01', 30), (4, '2024-12-31', NULL);
CREATE TABLE regions (
  id INT NOT NULL PRIMARY KEY,
  region_code INT NOT NULL,
  name VARCHAR(20),
  UNIQUE KEY (id, region_code)
) ENGINE=InnoDB
  PARTITION BY LIST (id) (PARTITION north VALUES IN (1, 2, 3), PARTITION south VALUES IN (4, 5, 6), PARTITION other VALUES IN (7, 8, 9, 10));
INSERT INTO regions VALUES (1, 10, 'one'), (5, 50, 'five'), (9, 90, 'nine');
CREATE TABLE hashed (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB PARTITION BY HASH (id) PARTITIONS 4;
INSERT INTO hashed VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (-6, 'f');
CREATE TABLE keyed (k VARCHAR(10) NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB PARTITION BY KEY (k) PARTITIONS 3;
INSERT INTO keyed VALUES ('x', 1), ('y', 2), ('z', 3);
CREATE TABLE versioned_parts (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB WITH SYSTEM VERSIONING
  PARTITION BY SYSTEM_TIME (PARTITION p_hist HISTORY, PARTITION p_cur CURRENT);
INSERT INTO versioned_parts VALUES (1, 1), (2, 2);
UPDATE versioned_parts SET v = 20 WHERE id = 2;

-- A non-transactional table and an empty one.
CREATE TABLE counters (name VARCHAR(20) NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0) ENGINE=Aria;
INSERT INTO counters VALUES ('orders', 3), ('customers', 4);
CREATE TABLE empty_table (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB;

-- Views on views on views, with every definer and security kind.
CREATE VIEW v_paid AS SELECT id, customer_id, total FROM orders WHERE status = 'paid';
CREATE DEFINER = `root`@`localhost` SQL SECURITY INVOKER VIEW v_paid_customers AS
  SELECT c.id, c.full_name, p.total FROM v_paid p JOIN customers c ON c.id = p.customer_id;
CREATE ALGORITHM = TEMPTABLE VIEW v_top AS SELECT full_name, SUM(total) AS spent FROM v_paid_customers GROUP BY full_name;
CREATE ALGORITHM = MERGE VIEW v_checked AS SELECT id, region_code FROM regions WHERE region_code > 0 WITH CASCADED CHECK OPTION;
CREATE DEFINER = `ghost_definer`@`%` VIEW v_ghost AS SELECT id, region_code FROM regions WHERE region_code > 0;

-- Routines and triggers, with an existing definer and one that exists nowhere.
DELIMITER ;;
CREATE DEFINER = `root`@`localhost` PROCEDURE add_order(IN cust INT, IN amount DECIMAL(10,2))
  MODIFIES SQL DATA
  COMMENT 'inserts an order; a ; inside a comment'
BEGIN
  INSERT INTO orders (customer_id, total) VALUES (cust, amount);
  UPDATE counters SET n = n + 1 WHERE name = 'orders';
END;;
CREATE DEFINER = `ghost_definer`@`%` PROCEDURE ghost_proc()
  SQL SECURITY DEFINER
  SELECT COUNT(*) FROM orders;;
CREATE DEFINER = `root`@`localhost` FUNCTION order_total(cust INT) RETURNS DECIMAL(12,2)
  READS SQL DATA DETERMINISTIC
BEGIN
  DECLARE t DECIMAL(12,2);
  SELECT COALESCE(SUM(total), 0) INTO t FROM orders WHERE customer_id = cust;
  RETURN t;
END;;
CREATE DEFINER = `ghost_definer`@`%` FUNCTION ghost_fn(x INT) RETURNS INT DETERMINISTIC NO SQL RETURN x + 1;;
CREATE DEFINER = `root`@`localhost` TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW
BEGIN
  IF NEW.total < 0 THEN SET NEW.total = 0; END IF;
END;;
CREATE DEFINER = `root`@`localhost` TRIGGER orders_bi_second BEFORE INSERT ON orders FOR EACH ROW FOLLOWS orders_bi
  SET NEW.status = COALESCE(NEW.status, 'new');;
CREATE DEFINER = `ghost_definer`@`%` TRIGGER customers_au AFTER UPDATE ON customers FOR EACH ROW
  UPDATE counters SET n = n + 1 WHERE name = 'customers';;
-- Events: enabled with a future start, enabled one-time in the future, disabled recurring with
-- a start in the past and an end, and one with the ghost definer.
CREATE DEFINER = `root`@`localhost` EVENT ev_enabled ON SCHEDULE EVERY 1 HOUR STARTS '2035-01-01 00:00:00'
  ON COMPLETION PRESERVE ENABLE COMMENT 'enabled, starts in 2035'
  DO UPDATE counters SET n = n + 1 WHERE name = 'orders';;
CREATE DEFINER = `root`@`localhost` EVENT ev_once ON SCHEDULE AT '2035-06-01 12:00:00'
  ON COMPLETION PRESERVE ENABLE
  DO BEGIN DELETE FROM empty_table; INSERT INTO empty_table VALUES (1); END;;
CREATE DEFINER = `root`@`localhost` EVENT ev_disabled ON SCHEDULE EVERY 1 DAY STARTS '2020-01-01 00:00:00' ENDS '2037-01-01 00:00:00'
  ON COMPLETION NOT PRESERVE DISABLE COMMENT 'disabled'
  DO DELETE FROM orders WHERE status = 'new';;
CREATE DEFINER = `ghost_definer`@`%` EVENT ev_ghost ON SCHEDULE EVERY 1 WEEK STARTS '2035-01-01 00:00:00'
  ON COMPLETION PRESERVE DISABLE
  DO CALL ghost_proc();;
DELIMITER ;
