//! Why a file could not be scanned or a record decoded.

/// Why a file could not be scanned or a record decoded. Lines are 1-based physical lines of the
/// (decompressed) file; columns are numbered as in the data specification: 1-based positions of
/// the table's columns, the Op field of change files not counted (it is named `Op`).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A field's value is invalid for its column.
    #[error("line {line}, column {column} ({name}): {reason}")]
    Field {
        /// Line on which the record starts.
        line: u64,
        /// 1-based position of the column in the table (as in the data specification).
        column: usize,
        /// Column name.
        name: String,
        /// What is wrong, quoting the value (cut to 40 characters).
        reason: String,
    },
    /// A change record's Op field is not `I`, `U` or `D`.
    #[error("line {line}, column Op: {reason}")]
    Op {
        /// Line on which the record starts.
        line: u64,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// A record has the wrong number of fields.
    #[error("line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// Line on which the record starts.
        line: u64,
        /// Fields expected, counting the Op column if the file has one.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// The header row (`AddColumnName`) does not name the table's columns.
    #[error("line {line}: header row: {reason}")]
    Header {
        /// The header's line (1).
        line: u64,
        /// Which columns are missing, extra or out of order.
        reason: String,
    },
    /// The header row names the table's columns, in order, and then more: DMS added source
    /// columns at the end (schema drift; see `SCHEMA_DRIFT_POLICY`).
    #[error("line {line}: header row: the file has column(s) at its end that table {table} lacks: {} (DMS added source columns)", extra.join(", "))]
    Drift {
        /// The header's line (1).
        line: u64,
        table: String,
        /// The names of the columns the table lacks, in file order.
        extra: Vec<String>,
    },
    /// The file is not valid CSV.
    #[error("line {line}: {reason}")]
    Syntax {
        /// Line of the error (for an unterminated quoted field, where the field starts).
        line: u64,
        /// What is wrong, naming the 1-based field number.
        reason: String,
    },
    /// A Parquet file's footer, pages or values cannot be read (the row and column when known).
    #[error("not readable as DMS Parquet: {0}")]
    Parquet(String),
    /// Reading the input failed, e.g. corrupt or truncated gzip data.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not an error in the file: a delete in a full load cannot go straight into the table.
    #[error("line {line}: a delete in a full-load file needs the staged apply")]
    NeedsStaging { line: u64 },
    /// Not an error in the file: the temporary file for a change file's inserts could not be
    /// written (`TMPDIR` full or missing).
    #[error("setting inserts aside in TMPDIR failed: {0}")]
    Spill(std::io::Error),
}

/// `"value"` for error messages: lossy UTF-8, escaped, cut to 40 characters (then `...`).
pub(super) fn quote(value: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(value);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{:?}", text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::bad;
    use crate::ColumnType;

    #[test]
    fn error_values_are_truncated() {
        let long = "9".repeat(45) + "x";
        let reason = bad(ColumnType::Int8, &long);
        assert_eq!(reason, format!("invalid integer \"{}\"...", "9".repeat(40)));
        // Exactly 40 characters: no ellipsis. Multi-byte characters count as one.
        let forty = "é".repeat(39) + "x";
        assert_eq!(
            bad(ColumnType::Int8, &forty),
            format!("invalid integer \"{forty}\"")
        );
    }

    #[test]
    fn every_error_kind_displays_where() {
        let field = DecodeError::Field {
            line: 12,
            column: 3,
            name: "amount".to_string(),
            reason: "invalid integer \"12x\"".to_string(),
        };
        assert_eq!(
            field.to_string(),
            "line 12, column 3 (amount): invalid integer \"12x\""
        );
        let count = DecodeError::FieldCount {
            line: 4,
            expected: 5,
            found: 6,
        };
        assert_eq!(count.to_string(), "line 4: expected 5 fields, found 6");
        let syntax = DecodeError::Syntax {
            line: 9,
            reason: "unterminated quoted field (field 2)".to_string(),
        };
        assert_eq!(
            syntax.to_string(),
            "line 9: unterminated quoted field (field 2)"
        );
        let io: DecodeError =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt deflate stream").into();
        assert_eq!(io.to_string(), "corrupt deflate stream");
    }
}
