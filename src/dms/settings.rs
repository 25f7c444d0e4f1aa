//! `DMS_SETTINGS` / `DMS_SETTINGS_FILE`: the S3 target endpoint's `S3Settings`, as
//! `aws dms describe-endpoints` prints them (the object itself, or the whole answer). This version
//! reads CSV (gzip or not) and Parquet, any one-character delimiter and row delimiter, NULL as an
//! empty unquoted field or a `CsvNullValue` text, the Op column on change files or none
//! (`CdcInsertsOnly`/`CdcInsertsAndUpdates`), a header row or none (`AddColumnName`), trailing
//! padding, DMS's commit-time column (`TimestampColumnName`), date folders of every sequence,
//! `CdcPath`, and columns DMS could not supply (`UseCsvNoSupValue` with `CsvNoSupValue`); a
//! setting that would make DMS write files it cannot read exactly is refused at start-up with a
//! line saying so, never silently mis-read. Settings that do not change the files (encryption,
//! sizes, roles, ...) are accepted; keys DMS does not have are ignored with one warning.
use serde_json::{Map, Value};

use crate::config::ConfigError;

/// What the settings say that the loader uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DmsSettings {
    /// `BucketFolder` (the path prefix), when given.
    pub bucket_folder: Option<String>,
    /// `BucketName`, when given.
    pub bucket_name: Option<String>,
    /// `AddColumnName`: every file starts with a header row naming its columns.
    pub add_column_name: bool,
    /// `CsvDelimiter` (one character; `,` by default).
    pub delimiter: Option<u8>,
    /// `CdcPath` (without slashes at its ends): change files are under
    /// `<BucketFolder>/<CdcPath>/<schema>/<table>/`, the full load where it always is.
    pub cdc_path: Option<String>,
    /// `CsvRowDelimiter` when it is not a line end: the one character that ends rows.
    pub row_delimiter: Option<u8>,
    /// `CsvNullValue`: the unquoted text DMS writes for NULL (an empty field by default).
    pub null_value: Option<String>,
    /// `AddTrailingPaddingCharacter`: trailing spaces of text values are padding.
    pub trailing_padding: bool,
    /// `CdcInsertsOnly` or `CdcInsertsAndUpdates` without `IncludeOpForFullLoad`: change files
    /// have no Op column, every row is an insert or an update (applied as an upsert).
    pub cdc_without_op: bool,
    /// `CdcInsertsOnly`: change files hold the source's inserts only.
    pub cdc_inserts_only: bool,
    /// `CdcInsertsAndUpdates`: change files hold the source's inserts and updates, no deletes.
    pub cdc_inserts_and_updates: bool,
    /// `DatePartitionEnabled`, when given.
    pub date_partition_enabled: Option<bool>,
    /// `DatePartitionSequence` and `DatePartitionDelimiter` (upper-case), when given.
    pub date_partition_sequence: Option<String>,
    pub date_partition_delimiter: Option<String>,
    /// `IncludeOpForFullLoad`.
    pub include_op_for_full_load: bool,
    /// `CompressionType=NONE`: `.csv` files (the sample generator writes them so).
    pub uncompressed: bool,
    /// `DataFormat=parquet`: `.parquet` files (the loader reads either format by the name's
    /// suffix; the sample generator writes this one).
    pub parquet: bool,
    /// `ParquetTimestampInMillisecond`: Parquet timestamps in milliseconds (read either way).
    pub parquet_millis: bool,
    /// `TimestampColumnName`: every record carries DMS's commit-time column under this name,
    /// after the Op column (first when there is none).
    pub timestamp_column: Option<String>,
    /// `CsvNoSupValue` when `UseCsvNoSupValue` is true: the unquoted text DMS writes in a change
    /// file for a column it could not supply (not in the source's supplemental log); such a
    /// column keeps its value in the table.
    pub no_sup_value: Option<String>,
    /// `UseCsvNoSupValue` is true without a `CsvNoSupValue`: DMS then writes NULL for those
    /// columns, which cannot be told from a NULL value (warned about once at start-up).
    pub no_sup_without_value: bool,
    /// Keys that are not DMS `S3Settings` keys (warned about once at start-up).
    pub unknown: Vec<String>,
}

/// `S3Settings` keys that do not change what the files hold or where they are.
const NEUTRAL: &[&str] = &[
    "ServiceAccessRoleArn",
    "ExternalTableDefinition",
    "EncryptionMode",
    "ServerSideEncryptionKmsKeyId",
    "EncodingType",
    "DictPageSizeLimit",
    "RowGroupLength",
    "DataPageSize",
    "ParquetVersion",
    "EnableStatistics",
    "UseTaskStartTimeForFullLoadTimestamp",
    "CannedAclForObjects",
    "CdcMaxBatchInterval",
    "CdcMinFileSize",
    "MaxFileSize",
    "DatePartitionTimezone",
    "ExpectedBucketOwner",
    "GlueCatalogGeneration",
    "IgnoreHeaderRows",
];

fn refuse(key: &str, value: &Value, why: &str) -> ConfigError {
    ConfigError::new(
        "DMS_SETTINGS",
        format!("{key} = {value} is not supported by this version of the loader ({why}); it refuses to start rather than mis-read the files"),
    )
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl DmsSettings {
    /// Reads the settings' JSON: an `S3Settings` object, or `describe-endpoints`' whole answer.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| ConfigError::new("DMS_SETTINGS", format!("not valid JSON ({e})")))?;
        let settings = match &value {
            Value::Object(o) if o.contains_key("Endpoints") => o["Endpoints"]
                .as_array()
                .and_then(|e| e.iter().find_map(|e| e.get("S3Settings")))
                .ok_or_else(|| {
                    ConfigError::new("DMS_SETTINGS", "no endpoint with S3Settings in Endpoints")
                })?,
            Value::Object(o) if o.contains_key("S3Settings") => &o["S3Settings"],
            other => other,
        };
        let Value::Object(map) = settings else {
            return Err(ConfigError::new("DMS_SETTINGS", "not a JSON object"));
        };
        Self::check(map)
    }

    fn check(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let get = |k: &str| map.get(k).filter(|v| !v.is_null());
        let is = |k: &str, default: bool| get(k).and_then(flag).unwrap_or(default);
        let include_op = is("IncludeOpForFullLoad", false);
        let mut out = DmsSettings {
            include_op_for_full_load: include_op,
            ..DmsSettings::default()
        };
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "DataFormat" => match text(value).map(str::to_ascii_lowercase).as_deref() {
                    Some("csv") => {}
                    Some("parquet") => out.parquet = true,
                    _ => return Err(refuse(key, value, "csv or parquet")),
                },
                "CompressionType" => match text(value).map(str::to_ascii_uppercase).as_deref() {
                    Some("GZIP") => {}
                    Some("NONE") => out.uncompressed = true,
                    _ => return Err(refuse(key, value, "GZIP or NONE")),
                },
                "ParquetTimestampInMillisecond" => match flag(value) {
                    Some(on) => out.parquet_millis = on,
                    None => return Err(refuse(key, value, "true or false")),
                },
                "CsvDelimiter" => match text(value).map(str::as_bytes) {
                    Some([d]) if !matches!(d, b'"' | b'\r' | b'\n') && d.is_ascii() => {
                        out.delimiter = Some(*d)
                    }
                    _ => {
                        return Err(refuse(
                            key,
                            value,
                            "one ASCII character other than a quote or a line end is read",
                        ))
                    }
                },
                "CsvRowDelimiter" => match text(value) {
                    Some("\n" | "\\n" | "\r\n" | "\\r\\n") => {}
                    Some(t) if t.len() == 1 && t.is_ascii() && !matches!(t, "\"" | "\r") => {
                        out.row_delimiter = Some(t.as_bytes()[0])
                    }
                    _ => {
                        return Err(refuse(
                            key,
                            value,
                            "a line end, or one ASCII character other than a quote, is read",
                        ))
                    }
                },
                "CsvNullValue" => match text(value) {
                    Some(t) if !t.contains(['"', '\r', '\n']) => {
                        out.null_value = (!t.is_empty()).then(|| t.to_string())
                    }
                    _ => {
                        return Err(refuse(
                            key,
                            value,
                            "a text without quotes or line ends is read",
                        ))
                    }
                },
                "AddColumnName" => match flag(value) {
                    Some(on) => out.add_column_name = on,
                    None => return Err(refuse(key, value, "true or false")),
                },
                "CdcInsertsOnly" | "CdcInsertsAndUpdates" => match flag(value) {
                    Some(on) => {
                        // DMS then writes change files without the Op column.
                        out.cdc_without_op |= on && !include_op;
                        if key == "CdcInsertsOnly" {
                            out.cdc_inserts_only = on;
                        } else {
                            out.cdc_inserts_and_updates = on;
                        }
                    }
                    None => return Err(refuse(key, value, "true or false")),
                },
                "TimestampColumnName" => match text(value) {
                    Some(t) => {
                        out.timestamp_column = (!t.trim().is_empty()).then(|| t.trim().to_string())
                    }
                    None => return Err(refuse(key, value, "a column name")),
                },
                "DatePartitionSequence"
                    if is("DatePartitionEnabled", false)
                        && !matches!(
                            text(value).map(str::to_ascii_uppercase).as_deref(),
                            Some("YYYYMMDD" | "YYYYMMDDHH" | "YYYYMM" | "MMYYYYDD" | "DDMMYYYY")
                        ) =>
                {
                    return Err(refuse(
                        key,
                        value,
                        "YYYYMMDD, YYYYMMDDHH, YYYYMM, MMYYYYDD or DDMMYYYY",
                    ));
                }
                "DatePartitionDelimiter"
                    if is("DatePartitionEnabled", false)
                        && !matches!(
                            text(value).map(str::to_ascii_uppercase).as_deref(),
                            Some("SLASH" | "UNDERSCORE" | "DASH" | "NONE")
                        ) =>
                {
                    return Err(refuse(key, value, "SLASH, UNDERSCORE, DASH or NONE"));
                }
                "CdcPath" => match text(value).map(|t| t.trim_matches('/')) {
                    Some("") => {}
                    Some(t) if !t.contains("//") => out.cdc_path = Some(t.to_string()),
                    _ => return Err(refuse(key, value, "a folder path")),
                },
                "AddTrailingPaddingCharacter" => match flag(value) {
                    Some(on) => out.trailing_padding = on,
                    None => return Err(refuse(key, value, "true or false")),
                },
                "PreserveTransactions" if flag(value) == Some(true) => {
                    return Err(refuse(
                        key,
                        value,
                        "DMS then writes every table's changes into shared transaction files \
                         below CdcPath, which this loader does not read",
                    ));
                }
                "UseCsvNoSupValue" => match flag(value) {
                    Some(on) => {
                        let token = get("CsvNoSupValue").and_then(text).unwrap_or("");
                        out.no_sup_without_value = on && token.is_empty();
                        out.no_sup_value = (on && !token.is_empty()).then(|| token.to_string());
                    }
                    None => return Err(refuse(key, value, "true or false")),
                },
                "CsvNoSupValue" => match text(value) {
                    Some(t) if !t.contains(['"', '\r', '\n']) => {}
                    _ => {
                        return Err(refuse(
                            key,
                            value,
                            "a text without quotes or line ends is read",
                        ))
                    }
                },
                "Rfc4180" if flag(value) == Some(false) => {
                    return Err(refuse(
                        key,
                        value,
                        "values are read as RFC 4180 quotes them",
                    ));
                }
                "BucketFolder" => {
                    out.bucket_folder = text(value).map(|t| t.trim_matches('/').to_string())
                }
                "BucketName" => out.bucket_name = text(value).map(str::to_string),
                "DatePartitionEnabled" => match flag(value) {
                    Some(on) => out.date_partition_enabled = Some(on),
                    None => return Err(refuse(key, value, "true or false")),
                },
                "DatePartitionSequence" => {
                    out.date_partition_sequence = text(value).map(str::to_ascii_uppercase)
                }
                "DatePartitionDelimiter" => {
                    out.date_partition_delimiter = text(value).map(str::to_ascii_uppercase)
                }
                "IncludeOpForFullLoad" | "PreserveTransactions" | "Rfc4180" => {}
                other if NEUTRAL.contains(&other) => {}
                other => out.unknown.push(other.to_string()),
            }
        }
        if let Some(token) = &out.no_sup_value {
            // (A delimiter inside it would be quoted by DMS, and a quoted field is a value.)
            let clashes = [
                (Some(token) == out.null_value.as_ref(), "CsvNullValue"),
                (
                    token.contains(char::from(out.delimiter.unwrap_or(b','))),
                    "CsvDelimiter",
                ),
                (
                    token.contains(char::from(out.row_delimiter.unwrap_or(b'\n'))),
                    "CsvRowDelimiter",
                ),
            ];
            if let Some((_, other)) = clashes.iter().find(|(clash, _)| *clash) {
                return Err(refuse(
                    "CsvNoSupValue",
                    &Value::String(token.clone()),
                    &format!("it cannot be told apart from {other}"),
                ));
            }
        }
        if let Some(row) = out.row_delimiter {
            if row == out.delimiter.unwrap_or(b',') {
                return Err(refuse(
                    "CsvRowDelimiter",
                    &Value::String(char::from(row).to_string()),
                    "the same character as CsvDelimiter",
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_neutral_settings_are_accepted() {
        let s = DmsSettings::parse(
            r#"{"S3Settings": {"CsvRowDelimiter": "\\n", "CsvDelimiter": ",", "BucketFolder": "data/",
                "BucketName": "dms", "CompressionType": "GZIP", "DataFormat": "csv",
                "DatePartitionEnabled": true, "DatePartitionSequence": "YYYYMMDD",
                "DatePartitionDelimiter": "SLASH", "IncludeOpForFullLoad": true,
                "CdcInsertsOnly": false, "MaxFileSize": 32000, "EncryptionMode": "SSE_S3",
                "Rfc4180": true, "CsvNullValue": "", "NotADmsKey": 1}}"#,
        )
        .unwrap();
        assert_eq!(s.bucket_folder.as_deref(), Some("data"));
        assert_eq!(s.bucket_name.as_deref(), Some("dms"));
        assert_eq!(s.unknown, vec!["NotADmsKey".to_string()]);
        // describe-endpoints' whole answer.
        let s = DmsSettings::parse(
            r#"{"Endpoints": [{"EndpointIdentifier": "t", "S3Settings": {"BucketFolder": "x"}}]}"#,
        )
        .unwrap();
        assert_eq!(s.bucket_folder.as_deref(), Some("x"));
        let s = DmsSettings::parse(
            r#"{"DataFormat": "parquet", "ParquetTimestampInMillisecond": true}"#,
        )
        .unwrap();
        assert!(s.parquet && s.parquet_millis);
        let s = DmsSettings::parse(r#"{"CsvRowDelimiter": "~", "CsvDelimiter": "|"}"#).unwrap();
        assert_eq!((s.row_delimiter, s.delimiter), (Some(b'~'), Some(b'|')));
        let s = DmsSettings::parse(r#"{"CdcPath": "/changes/"}"#).unwrap();
        assert_eq!(s.cdc_path.as_deref(), Some("changes"));
        let s = DmsSettings::parse(r#"{"CsvRowDelimiter": "\r\n"}"#).unwrap();
        assert_eq!(s.row_delimiter, None);
    }

    #[test]
    fn settings_that_change_the_files_are_refused_naming_them() {
        for (json, key) in [
            (r#"{"DataFormat": "orc"}"#, "DataFormat"),
            (r#"{"CsvRowDelimiter": "ab"}"#, "CsvRowDelimiter"),
            (r#"{"CsvRowDelimiter": ","}"#, "CsvRowDelimiter"),
            (
                r#"{"CsvRowDelimiter": "|", "CsvDelimiter": "|"}"#,
                "CsvRowDelimiter",
            ),
            (
                r#"{"ParquetTimestampInMillisecond": 2}"#,
                "ParquetTimestampInMillisecond",
            ),
            (r#"{"CsvDelimiter": ";;"}"#, "CsvDelimiter"),
            (r#"{"AddColumnName": "sometimes"}"#, "AddColumnName"),
            (r#"{"CsvNullValue": "\""}"#, "CsvNullValue"),
            (r#"{"CdcInsertsOnly": "maybe"}"#, "CdcInsertsOnly"),
            (r#"{"TimestampColumnName": 3}"#, "TimestampColumnName"),
            (
                r#"{"DatePartitionEnabled": true, "DatePartitionSequence": "DDYYYYMM"}"#,
                "DatePartitionSequence",
            ),
            (
                r#"{"DatePartitionEnabled": true, "DatePartitionDelimiter": "DOT"}"#,
                "DatePartitionDelimiter",
            ),
            (r#"{"CdcPath": 3}"#, "CdcPath"),
            (r#"{"PreserveTransactions": true}"#, "PreserveTransactions"),
            (r#"{"UseCsvNoSupValue": "yes"}"#, "UseCsvNoSupValue"),
            (r#"{"CsvNoSupValue": "a\"b"}"#, "CsvNoSupValue"),
            (
                r#"{"UseCsvNoSupValue": true, "CsvNoSupValue": "N", "CsvNullValue": "N"}"#,
                "CsvNoSupValue",
            ),
            (
                r#"{"UseCsvNoSupValue": true, "CsvNoSupValue": "a|b", "CsvDelimiter": "|"}"#,
                "CsvNoSupValue",
            ),
            (r#"{"Rfc4180": false}"#, "Rfc4180"),
        ] {
            let e = DmsSettings::parse(json).unwrap_err().to_string();
            assert!(e.starts_with(&format!("DMS_SETTINGS: {key} = ")), "{e}");
            assert!(e.contains("refuses to start"), "{e}");
        }
        let s = DmsSettings::parse(r#"{"CdcInsertsOnly": true, "IncludeOpForFullLoad": true}"#)
            .unwrap();
        assert!(!s.cdc_without_op, "the Op column is there");
        let s = DmsSettings::parse(
            r#"{"CdcInsertsAndUpdates": true, "CsvDelimiter": "|", "CsvNullValue": "NULL",
                "AddTrailingPaddingCharacter": true, "DatePartitionEnabled": true,
                "DatePartitionSequence": "YYYYMMDDHH", "DatePartitionDelimiter": "DASH"}"#,
        )
        .unwrap();
        assert!(s.cdc_without_op && s.trailing_padding);
        assert_eq!(
            (s.delimiter, s.null_value.as_deref()),
            (Some(b'|'), Some("NULL"))
        );
        assert!(DmsSettings::parse("not json").is_err());
    }

    #[test]
    fn the_no_sup_value_is_read_only_when_dms_writes_it() {
        let s =
            DmsSettings::parse(r#"{"UseCsvNoSupValue": true, "CsvNoSupValue": "~NS~"}"#).unwrap();
        assert_eq!(s.no_sup_value.as_deref(), Some("~NS~"));
        assert!(!s.no_sup_without_value);
        // DMS writes NULL then: nothing to read, but the operator is told.
        let s = DmsSettings::parse(r#"{"UseCsvNoSupValue": "true"}"#).unwrap();
        assert_eq!(s.no_sup_value, None);
        assert!(s.no_sup_without_value);
        for json in [
            r#"{"UseCsvNoSupValue": false, "CsvNoSupValue": "~NS~"}"#,
            r#"{"CsvNoSupValue": "~NS~"}"#,
        ] {
            let s = DmsSettings::parse(json).unwrap();
            assert_eq!((s.no_sup_value, s.no_sup_without_value), (None, false));
        }
    }
}
