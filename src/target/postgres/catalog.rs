//! The replicated tables, read from the catalog: [`read_table_specs`] and [`column_type`].
use std::collections::HashMap;
use std::sync::Arc;

use crate::dms::{Column, ColumnType, TableSpec};
use crate::target::{queries, TargetError};

/// Maps a catalog type (name and typmod) to a [`ColumnType`].
fn column_type(typname: &str, typmod: i32) -> Option<ColumnType> {
    let modifier = (typmod >= 4).then(|| typmod - 4);
    Some(match typname {
        "int2" => ColumnType::Int2,
        "int4" => ColumnType::Int4,
        "int8" => ColumnType::Int8,
        "numeric" => ColumnType::Numeric {
            precision: modifier.map(|m| ((m >> 16) & 0xffff) as u16),
            scale: modifier.map(|m| (m & 0xffff) as u16),
        },
        "varchar" => ColumnType::Varchar(modifier.map(|m| m as u32)),
        "bpchar" => ColumnType::Bpchar(modifier.map(|m| m as u32)),
        "text" => ColumnType::Text,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::Timestamptz,
        "date" => ColumnType::Date,
        "bool" => ColumnType::Bool,
        "float4" => ColumnType::Float4,
        "float8" => ColumnType::Float8,
        _ => return None,
    })
}

/// The tables of `schema` with their columns and primary keys.
pub(super) async fn read_table_specs(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<HashMap<String, Arc<TableSpec>>, TargetError> {
    let rows = client
        .query(queries::TABLE_COLUMNS, &[&schema])
        .await
        .map_err(TargetError::pg("read table columns"))?;
    let mut specs: HashMap<String, (TableSpec, Vec<(i32, usize)>)> = HashMap::new();
    for row in rows {
        let table: String = row.get(0);
        let name: String = row.get(1);
        let typname: String = row.get(2);
        let typmod: i32 = row.get(3);
        let not_null: bool = row.get(4);
        let key_position: Option<i32> = row.get(5);
        let ty = column_type(&typname, typmod).ok_or_else(|| {
            TargetError::Schema(format!(
                "column {table}.{name} has type {typname}, which the loader cannot decode"
            ))
        })?;
        let (spec, keys) = specs.entry(table.clone()).or_insert_with(|| {
            (
                TableSpec {
                    name: table.clone(),
                    columns: Vec::new(),
                    key: Vec::new(),
                },
                Vec::new(),
            )
        });
        if let Some(p) = key_position {
            keys.push((p, spec.columns.len()));
        }
        spec.columns.push(Column {
            name,
            ty,
            nullable: !not_null,
        });
    }
    let mut out = HashMap::new();
    for (name, (mut spec, mut keys)) in specs {
        if keys.is_empty() {
            return Err(TargetError::Schema(format!(
                "table {name} has no primary key: the loader needs one to apply changes"
            )));
        }
        keys.sort();
        spec.key = keys.into_iter().map(|(_, i)| i).collect();
        out.insert(name, Arc::new(spec));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_map_with_their_modifiers() {
        // numeric(18,4): typmod = ((18 << 16) | 4) + 4
        assert_eq!(
            column_type("numeric", ((18 << 16) | 4) + 4),
            Some(ColumnType::Numeric {
                precision: Some(18),
                scale: Some(4)
            })
        );
        assert_eq!(
            column_type("numeric", -1),
            Some(ColumnType::Numeric {
                precision: None,
                scale: None
            })
        );
        assert_eq!(
            column_type("varchar", 36),
            Some(ColumnType::Varchar(Some(32)))
        );
        assert_eq!(
            column_type("bpchar", 16),
            Some(ColumnType::Bpchar(Some(12)))
        );
        assert_eq!(column_type("jsonb", -1), None);
    }
}
