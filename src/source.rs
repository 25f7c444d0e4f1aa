//! The `Source`: the S3 bucket where DMS drops its files.
//!
//! The loader only lists and reads objects; [`S3Source`] also creates buckets and writes objects
//! for the sample generator, the demo and the tests.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::config::SourceConfig;

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
        match self {
            SourceError::Request { status, code, .. } => match status {
                None => true,
                Some(s) => {
                    *s >= 500
                        || *s == 429
                        || *s == 408
                        || matches!(
                            code.as_deref(),
                            Some("SlowDown" | "Throttling" | "RequestTimeout")
                        )
                }
            },
            SourceError::Body { .. } => true,
        }
    }

    fn from_sdk<E, R>(op: &'static str, what: String, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
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
            _ => DisplayErrorContext(&err).to_string(),
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
    /// Every object under the configured path, in no particular order.
    fn list(&self) -> impl Future<Output = Result<Vec<ObjectInfo>, SourceError>> + Send;
    /// Opens an object for streaming.
    fn open(&self, key: &str) -> impl Future<Output = Result<ObjectBody, SourceError>> + Send;
    /// The configured `bucket_path` (no slashes at either end).
    fn path(&self) -> &str;
    /// Answers whether the bucket is reachable (for readiness).
    fn ping(&self) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// An S3 bucket reached with aws-sdk-s3: AWS itself or any S3-compatible endpoint.
#[derive(Clone, Debug)]
pub struct S3Source {
    client: Client,
    bucket: String,
    path: String,
}

impl S3Source {
    pub fn new(config: &SourceConfig) -> Self {
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose().to_string(),
            None,
            None,
            "paper-engine-orders",
        );
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        S3Source {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            path: config.path.clone(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> Result<(), SourceError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {}
            Err(e) => return Err(SourceError::from_sdk("HeadBucket", self.bucket.clone(), e)),
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(SourceError::from_sdk(
                "CreateBucket",
                self.bucket.clone(),
                e,
            )),
        }
    }

    /// Writes an object (used by the sample generator and the tests, never by the loader).
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), SourceError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| SourceError::from_sdk("PutObject", key.to_string(), e))?;
        Ok(())
    }
}

impl Source for S3Source {
    async fn list(&self) -> Result<Vec<ObjectInfo>, SourceError> {
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.path)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                SourceError::from_sdk("ListObjectsV2", format!("{}/{prefix}", self.bucket), e)
            })?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    objects.push(ObjectInfo {
                        key: key.to_string(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                        etag: object
                            .e_tag()
                            .unwrap_or_default()
                            .trim_matches('"')
                            .to_string(),
                    });
                }
            }
        }
        Ok(objects)
    }

    async fn open(&self, key: &str) -> Result<ObjectBody, SourceError> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| SourceError::from_sdk("GetObject", key.to_string(), e))?;
        let etag = response
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        let size = response.content_length().unwrap_or(0).max(0) as u64;
        let bytes_read = Arc::new(AtomicU64::new(0));
        let reader = CountingReader {
            inner: Box::pin(response.body.into_async_read()),
            count: bytes_read.clone(),
        };
        Ok(ObjectBody {
            etag,
            size,
            reader: Box::pin(reader),
            bytes_read,
        })
    }

    fn path(&self) -> &str {
        &self.path
    }

    async fn ping(&self) -> Result<(), SourceError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| SourceError::from_sdk("HeadBucket", self.bucket.clone(), e))?;
        Ok(())
    }
}

/// Counts the bytes that pass through an async reader.
struct CountingReader {
    inner: Pin<Box<dyn AsyncBufRead + Send>>,
    count: Arc<AtomicU64>,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.inner.as_mut().poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        poll
    }
}
