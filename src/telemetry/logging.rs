//! Log lines in the replaced service's shape:
//! `2022-09-22 09:58:53 INFO [loader.rs:370]: Delivery 24: persisted to postgres.`
use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `UTC date time LEVEL [file:line]: message`.
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
        ctx.format_fields(writer.by_ref(), event)?;
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

/// Installs the subscriber: `level` is `LOG_LEVEL` (a level, or an env-filter directive).
/// Lines go to standard error. Safe to call twice (the second call does nothing).
pub fn init(level: &str) {
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(LineFormat)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::shown_file;

    #[test]
    fn files_show_as_their_module() {
        assert_eq!(shown_file("src/loader/deliver.rs"), "loader.rs");
        assert_eq!(shown_file("src/pipeline/decode.rs"), "loader.rs");
        assert_eq!(shown_file("src/target/postgres.rs"), "target.rs");
        assert_eq!(shown_file("src/app.rs"), "app.rs");
        assert_eq!(shown_file("/x/y/src/loader/mod.rs"), "loader.rs");
    }
}
