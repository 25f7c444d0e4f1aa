//! The `Source`: the S3 bucket where DMS drops its files.
//!
//! The loader only lists and reads objects; [`S3Source`] also creates buckets and writes objects
//! for the sample generator, the demo and the tests.

mod memory;
mod s3;

pub use memory::MemorySource;
pub use s3::S3Source;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::io::AsyncRead;

/// One object of the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// An object opened for streaming.
pub struct ObjectBody {
    pub etag: String,
    pub size: u64,
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    /// Compressed bytes read so far (for progress estimates and metrics).
    pub bytes_read: Arc<AtomicU64>,
}

/// A failure talking to the bucket.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("S3 {op} of {what} failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Request {
        op: &'static str,
        what: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    #[error("reading {key} from S3 failed: {source}")]
    Body {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// Whether trying again later may succeed: no HTTP answer (connection refused, timeout),
    /// HTTP 5xx, 429 or 408, throttling codes, and a body cut off mid-stream.
    pub fn is_retryable(&self) -> bool {
        crate::policy::policy(crate::policy::source_kind(self))
            .directive
            .is_transient()
    }

    pub(crate) fn from_sdk<E, R>(op: &'static str, what: String, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus + 'static,
    {
        let status = err.raw_response().map(|r| r.status_code());
        let code = err.code().map(str::to_string);
        let message = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                match (e.code(), e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => DisplayErrorContext(&err).to_string(),
                }
            }
            // No answer (connection refused, a timeout, DNS): the chain of causes, in words.
            _ => {
                let chain = error_chain(&err);
                if chain.contains("no credentials found in chain") {
                    // The SDK lists each provider it tried, a line each: kept on one line, with
                    // what to do.
                    format!(
                        "{}; next step: give bucket_id and bucket_key in SOURCE, or credentials the AWS default chain finds (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws files, a web identity token, an ECS task role or an instance profile)",
                        chain.split_whitespace().collect::<Vec<_>>().join(" ")
                    )
                } else {
                    chain
                }
            }
        };
        SourceError::Request {
            op,
            what,
            status,
            code,
            message,
        }
    }
}

/// An error and its causes as one line (`a: b: c`), without the SDK's debug dump.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The bucket as the loader sees it.
pub trait Source: Send + Sync + 'static {
    /// One page (up to 1,000 objects) of the objects whose keys start with `prefix` and sort
    /// after `start_after` (S3 `StartAfter`: byte order, exclusive), continuing from `token`.
    /// Keys come back decoded whatever characters they hold (the request asks S3 for
    /// URL-encoded keys, so a control character cannot break the listing).
    fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<String>,
    ) -> impl Future<Output = Result<ListPage, SourceError>> + Send;
    /// The folders directly under `prefix` (S3 common prefixes for the delimiter `/`), each
    /// ending in `/`.
    fn list_folders(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;
    /// The object's current size and ETag, or `None` if there is no such object.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, SourceError>> + Send;
    /// Opens an object for streaming.
    fn open(&self, key: &str) -> impl Future<Output = Result<ObjectBody, SourceError>> + Send;
    /// The configured `bucket_path` (no slashes at either end).
    fn path(&self) -> &str;
    /// Answers whether the bucket is reachable (for readiness).
    fn ping(&self) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Every object under `prefix` after `start_after`, all pages of [`Source::list_page`] read.
pub async fn list_all<S: Source>(
    source: &S,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Vec<ObjectInfo>, SourceError> {
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let page = source.list_page(prefix, start_after, token).await?;
        objects.extend(page.objects);
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(objects),
        }
    }
}

/// The prefix every object of the bucket path starts with: `path/`, or nothing.
pub fn root_prefix(path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// A key as it may be written in a log line: control characters (a newline could forge a line)
/// are escaped, everything else is kept.
pub fn display_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.chars().any(char::is_control) {
        std::borrow::Cow::Owned(key.chars().flat_map(char::escape_default).collect())
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}

/// Decodes a key of a listing made with `EncodingType=url` (S3 writes a space as `+` or `%20`,
/// and a `+` as `%2B`).
pub fn decode_listed_key(encoded: &str) -> String {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_decode_and_log_escaped() {
        assert_eq!(
            decode_listed_key("data/dbo/orders/LOAD00000001.csv.gz"),
            "data/dbo/orders/LOAD00000001.csv.gz"
        );
        assert_eq!(decode_listed_key("a%0Ab+c%2Bd%20e"), "a\nb c+d e");
        assert_eq!(display_key("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(display_key("plain/key.csv.gz"), "plain/key.csv.gz");
        assert_eq!(root_prefix("/data/"), "data/");
        assert_eq!(root_prefix(""), "");
    }
}
