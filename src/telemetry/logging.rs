//! Log lines in the replaced service's shape:
//! `2022-09-22 09:58:53 INFO [loader.rs:370]: Delivery 24: persisted to postgres.`
//! or, with `LOG_FORMAT=json`, one JSON object per line for log pipelines: `timestamp`, `level`,
//! `target`, `source` (`loader.rs:370`), `message`, and when known `delivery_id`, `table`, `key`.
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `UTC date time LEVEL [file:line]: message`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// An event's fields: its message, the delivery's id, table and key when the event carries them
/// (as fields, or the id as the message's `Delivery N:` prefix), and any other field.
#[derive(Default)]
struct Fields {
    message: String,
    delivery_id: Option<i64>,
    table: Option<String>,
    key: Option<String>,
    other: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.record_text(name, format!("{value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => self.record_text(name, value.to_string()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "delivery_id" => self.delivery_id = Some(value),
            name => self.other.push((name, value.to_string())),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "delivery_id" => self.delivery_id = i64::try_from(value).ok(),
            name => self.other.push((name, value.to_string())),
        }
    }
}

impl Fields {
    fn record_text(&mut self, name: &'static str, value: String) {
        match name {
            "table" => self.table = Some(value),
            "key" => self.key = Some(value),
            "delivery_id" => self.delivery_id = value.parse().ok(),
            _ => self.other.push((name, value)),
        }
    }

    fn of(event: &Event<'_>) -> Self {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.delivery_id.is_none() {
            fields.delivery_id = delivery_of(&fields.message);
        }
        fields
    }
}

/// The id of a `Delivery N: ...` message.
fn delivery_of(message: &str) -> Option<i64> {
    let rest = message.strip_prefix("Delivery ")?;
    let end = rest.find(':')?;
    rest[..end].parse().ok()
}

/// `LOG_FORMAT=json`: one object per line.
pub struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let fields = Fields::of(event);
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        line.insert(
            "source".into(),
            format!(
                "{}:{}",
                shown_file(meta.file().unwrap_or("?")),
                meta.line().unwrap_or(0)
            )
            .into(),
        );
        if let Some(id) = fields.delivery_id {
            line.insert("delivery_id".into(), id.into());
        }
        if let Some(table) = fields.table {
            line.insert("table".into(), table.into());
        }
        if let Some(key) = fields.key {
            line.insert("key".into(), key.into());
        }
        line.insert("message".into(), fields.message.into());
        for (name, value) in fields.other {
            line.insert(name.into(), value.into());
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// `UTC date time LEVEL [file:line]: message` (an event's other fields follow as `name=value`).
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{} {} [{}:{}]: ",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
            meta.level(),
            shown_file(meta.file().unwrap_or("?")),
            meta.line().unwrap_or(0)
        )?;
        let _ = ctx;
        let fields = Fields::of(event);
        write!(writer, "{}", fields.message)?;
        for (name, value) in fields.other {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}

/// The file name a log line shows: a module split into a folder shows as its module
/// (`src/loader/deliver.rs` -> `loader.rs`), and the delivery's data path (`src/pipeline/`) as
/// the loader, so every `Delivery N:` line reads `[loader.rs:N]` as the replaced service's did.
pub fn shown_file(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    let file = parts.last().copied().unwrap_or(path);
    match parts.iter().position(|p| *p == "src") {
        Some(i) if parts.len() > i + 2 => match parts[i + 1] {
            "pipeline" => "loader.rs".to_string(),
            module => format!("{module}.rs"),
        },
        _ => file.to_string(),
    }
}

/// Installs the subscriber: `level` is `LOG_LEVEL` (a level, or an env-filter directive), in
/// `format`. Lines go to standard error. Safe to call twice (the second call does nothing).
pub fn init(level: &str, format: LogFormat) {
    let level = match level.trim().to_ascii_lowercase().as_str() {
        "warning" => "warn".to_string(),
        other => other.to_string(),
    };
    let filter = EnvFilter::try_new(&level)
        .or_else(|_| EnvFilter::try_new("info"))
        .expect("the info filter is valid")
        // The SDKs' own chatter stays out of the loader's log unless asked for.
        .add_directive("aws_smithy_runtime=warn".parse().expect("directive"))
        .add_directive("aws_config=warn".parse().expect("directive"))
        .add_directive("tokio_postgres=warn".parse().expect("directive"))
        .add_directive("async_nats=warn".parse().expect("directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.event_format(LineFormat).try_init(),
        LogFormat::Json => builder.event_format(JsonFormat).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::{delivery_of, shown_file, LogFormat};

    #[test]
    fn delivery_ids_are_read_from_the_message() {
        assert_eq!(delivery_of("Delivery 24: persisted to postgres."), Some(24));
        assert_eq!(delivery_of("Delivery of x"), None);
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("xml"), None);
    }

    #[test]
    fn files_show_as_their_module() {
        assert_eq!(shown_file("src/loader/deliver.rs"), "loader.rs");
        assert_eq!(shown_file("src/pipeline/decode.rs"), "loader.rs");
        assert_eq!(shown_file("src/target/postgres.rs"), "target.rs");
        assert_eq!(shown_file("src/app.rs"), "app.rs");
        assert_eq!(shown_file("/x/y/src/loader/mod.rs"), "loader.rs");
    }
}
