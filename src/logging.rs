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
        let file = meta
            .file()
            .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
            .unwrap_or("?");
        write!(
            writer,
            "{} {} [{}:{}]: ",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
            meta.level(),
            file,
            meta.line().unwrap_or(0)
        )?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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
