//! Table layout: a target table's columns, their types and its primary key.

/// A target column type, as read from the Postgres catalog (`format_type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int2,
    Int4,
    Int8,
    /// `numeric(precision, scale)`; both `None` for an unconstrained `numeric`.
    Numeric {
        precision: Option<u16>,
        scale: Option<u16>,
    },
    /// `varchar(n)`; `None` for unbounded.
    Varchar(Option<u32>),
    /// `char(n)` (bpchar).
    Bpchar(Option<u32>),
    Text,
    /// `timestamp without time zone`, microsecond precision.
    Timestamp,
    /// `timestamp with time zone`; DMS values carry no zone and are taken as UTC.
    Timestamptz,
    Date,
    Bool,
    Float4,
    Float8,
}

/// One column of a target table, in source-file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// A replicated table: its columns in source-file order (lineage columns excluded) and the
/// indices into `columns` of its primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

impl TableSpec {
    /// This table with nullable columns of these names and types added at the end (a schema drift
    /// taken in; names lower-cased, as the migrations name columns).
    pub fn with_columns(&self, columns: &[(String, ColumnType)]) -> TableSpec {
        let mut spec = self.clone();
        spec.columns.extend(columns.iter().map(|(n, ty)| Column {
            name: n.to_ascii_lowercase(),
            ty: ty.clone(),
            nullable: true,
        }));
        spec
    }

    /// Index of the column named `name` (without regard to case), if the table has one.
    pub fn column_named(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Index of the `event_id` column, if the table has one.
    pub fn event_id_index(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.name == "event_id")
    }
}
