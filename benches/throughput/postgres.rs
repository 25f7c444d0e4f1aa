//! Postgres: admin statements and checks (the measured work is done by the loader and psql), the
//! loader tables' definitions read from the catalog, fresh bench databases, the correctness check.
use std::fmt::Write as _;

use anyhow::{anyhow, ensure, Context, Result};
use tokio::runtime::Runtime;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::ctx::Ctx;
use crate::s3::NOTHING;
use crate::util::quote;
use crate::{LINEAGE, REF, SCHEMA, TABLES};

pub struct Pg<'a> {
    pub rt: &'a Runtime,
}

impl Pg<'_> {
    pub fn exec(&self, dsn: &str, sql: &str) -> Result<()> {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(dsn, NoTls)
                .await
                .with_context(|| format!("connect to Postgres ({dsn})"))?;
            let task = tokio::spawn(conn);
            let result = client
                .batch_execute(sql)
                .await
                .with_context(|| format!("SQL failed: {sql}"));
            drop(client);
            let _ = task.await;
            result
        })
    }

    /// Rows of a query, every value as text.
    pub fn rows(&self, dsn: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(dsn, NoTls)
                .await
                .with_context(|| format!("connect to Postgres ({dsn})"))?;
            let task = tokio::spawn(conn);
            let result = client
                .simple_query(sql)
                .await
                .with_context(|| format!("SQL failed: {sql}"));
            drop(client);
            let _ = task.await;
            Ok(result?
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect())
        })
    }

    pub fn value(&self, dsn: &str, sql: &str) -> Result<String> {
        self.rows(dsn, sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| anyhow!("no value from: {sql}"))
    }

    pub fn count(&self, dsn: &str, sql: &str) -> Result<u64> {
        Ok(self.value(dsn, sql)?.parse()?)
    }
}

/// A table as the reference sees it: its source columns (catalog order, no lineage columns),
/// primary key and secondary indexes.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: String,
    /// (name, SQL type, NOT NULL)
    pub columns: Vec<(String, String, bool)>,
    pub key: Vec<String>,
    /// `CREATE INDEX` statements of the secondary indexes, on the reference table.
    pub indexes: Vec<String>,
}

impl TableDef {
    /// Reads a loader table's definition from the catalog (after the loader's migrations).
    pub fn read(pg: &Pg, dsn: &str, table: &str) -> Result<TableDef> {
        let rel = format!("'{SCHEMA}.{table}'::regclass");
        let columns = pg
            .rows(
                dsn,
                &format!(
                    "SELECT attname, format_type(atttypid, atttypmod), attnotnull::text
                       FROM pg_attribute
                      WHERE attrelid = {rel} AND attnum > 0 AND NOT attisdropped
                        AND attname NOT IN ('{}', '{}')
                      ORDER BY attnum",
                    LINEAGE[0], LINEAGE[1]
                ),
            )?
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                    r[2].as_deref() == Some("true"),
                )
            })
            .collect::<Vec<_>>();
        let key = pg
            .rows(
                dsn,
                &format!(
                    "SELECT a.attname FROM pg_index i,
                            unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n),
                            pg_attribute a
                      WHERE i.indrelid = {rel} AND i.indisprimary
                        AND a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.n"
                ),
            )?
            .into_iter()
            .filter_map(|r| r[0].clone())
            .collect::<Vec<_>>();
        let from = format!(" ON {SCHEMA}.{table} ");
        let to = format!(" ON {REF}.{table} ");
        let indexes = pg
            .rows(
                dsn,
                &format!(
                    "SELECT pg_get_indexdef(indexrelid) FROM pg_index
                      WHERE indrelid = {rel} AND NOT indisprimary ORDER BY indexrelid"
                ),
            )?
            .into_iter()
            .filter_map(|r| r[0].clone())
            .map(|def| {
                ensure!(def.contains(&from), "unexpected index definition: {def}");
                Ok(def.replace(&from, &to))
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(
            !columns.is_empty() && !key.is_empty(),
            "table {SCHEMA}.{table} not found, or without a primary key"
        );
        Ok(TableDef {
            name: table.to_string(),
            columns,
            key,
            indexes,
        })
    }

    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _, _)| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Ctx {
    /// Drops and re-creates a database (from a template when given).
    pub fn reset_db(&self, db: &str, template: Option<&str>) -> Result<()> {
        let pg = self.pg();
        pg.exec(
            self.admin(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(db)),
        )?;
        let create = match template {
            Some(t) => format!(
                "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY",
                quote(db),
                quote(t)
            ),
            None => format!("CREATE DATABASE {}", quote(db)),
        };
        pg.exec(self.admin(), &create)
    }

    pub fn drop_db(&self, db: &str) {
        let _ = self.pg().exec(
            self.admin(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(db)),
        );
    }

    /// A fresh bench database: the loader's migrations applied (by a loader run over an empty
    /// prefix, untimed), the reference tables created; autovacuum off on the measured tables of
    /// both, so it never runs during another measurement.
    pub fn fresh_db(&self, db: &str, bucket: &str) -> Result<Vec<TableDef>> {
        self.reset_db(db, None)?;
        self.run_loader(db, bucket, NOTHING, 1, "migrate")?;
        let dsn = self.dsn(db);
        let pg = self.pg();
        let defs = TABLES
            .iter()
            .map(|t| TableDef::read(&pg, &dsn, t))
            .collect::<Result<Vec<_>>>()?;
        let mut sql = format!("CREATE SCHEMA {REF};\n");
        for def in &defs {
            sql.push_str(&def.reference_ddl());
            let _ = writeln!(
                sql,
                "ALTER TABLE {SCHEMA}.{} SET (autovacuum_enabled = off);",
                quote(&def.name)
            );
        }
        pg.exec(&dsn, &sql)?;
        Ok(defs)
    }

    /// The loader's tables equal the reference tables (source columns, `EXCEPT` both ways) and
    /// hold `expected` rows in all when given; every delivery under `prefix` is a SUCCESS.
    pub fn check(
        &self,
        db: &str,
        defs: &[TableDef],
        expected: Option<u64>,
        prefix: &str,
        files: usize,
    ) -> Result<u64> {
        let dsn = self.dsn(db);
        let pg = self.pg();
        let mut total = 0;
        for def in defs {
            let cols = def.column_list();
            let t = quote(&def.name);
            let loaded = pg.count(&dsn, &format!("SELECT count(*) FROM {SCHEMA}.{t}"))?;
            let reference = pg.count(&dsn, &format!("SELECT count(*) FROM {REF}.{t}"))?;
            let missing = pg.count(
                &dsn,
                &format!(
                    "SELECT count(*) FROM (SELECT {cols} FROM {REF}.{t} \
                     EXCEPT SELECT {cols} FROM {SCHEMA}.{t}) x"
                ),
            )?;
            let extra = pg.count(
                &dsn,
                &format!(
                    "SELECT count(*) FROM (SELECT {cols} FROM {SCHEMA}.{t} \
                     EXCEPT SELECT {cols} FROM {REF}.{t}) x"
                ),
            )?;
            ensure!(
                loaded == reference && missing == 0 && extra == 0 && loaded > 0,
                "CORRECTNESS: {SCHEMA}.{} ({loaded} rows) differs from {REF}.{} ({reference} \
                 rows): {missing} reference rows missing or different in the loader's table, \
                 {extra} rows of the loader's table not in the reference",
                def.name,
                def.name
            );
            total += loaded;
        }
        if let Some(expected) = expected {
            ensure!(
                total == expected,
                "CORRECTNESS: {total} rows loaded, the dataset has {expected}"
            );
        }
        let delivered = pg.count(
            &dsn,
            &format!(
                "SELECT count(*) FROM {SCHEMA}.loader_deliveries \
                 WHERE status = 'SUCCESS' AND object_key LIKE '{prefix}/%'"
            ),
        )?;
        ensure!(
            delivered == files as u64,
            "CORRECTNESS: the ledger has {delivered} SUCCESS deliveries under {prefix}/, \
             expected {files}"
        );
        Ok(total)
    }
}
