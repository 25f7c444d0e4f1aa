-- 0008: schema drift taken in is recorded.
--
-- With SCHEMA_DRIFT_POLICY=add-columns, a file whose header row names columns the table lacks, at
-- its end (DMS added source columns), adds them to the table (nullable text) in its own delivery's
-- transaction; `added_columns` names them on that delivery's ledger row.

ALTER TABLE loader_deliveries ADD COLUMN added_columns text[];
