//! [`S3Source`]: the bucket through aws-sdk-s3 (AWS itself, or any S3-compatible endpoint).
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use aws_sdk_s3::Client;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use super::{decode_listed_key, ListPage, ObjectBody, ObjectInfo, Source, SourceError};
use crate::config::SourceConfig;

/// An HTTPS client (rustls) trusting the system's roots and the certificates of `pem`.
fn https_client_trusting(pem: &[u8]) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::default().with_pem_certificate(pem.to_vec());
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store of checked PEM certificates");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

#[derive(Clone, Debug)]
pub struct S3Source {
    client: Client,
    bucket: String,
    path: String,
}

impl S3Source {
    /// A client for `config`'s bucket: its static keys or, without them, the AWS default
    /// credential chain (environment, shared files and profiles, web identity / IRSA, ECS and
    /// instance profiles; resolved at the first request and refreshed by the SDK); its CA bundle
    /// trusted besides the system's roots.
    pub async fn new(config: &SourceConfig) -> Self {
        let region = Region::new(config.region.clone());
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(region.clone())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(timeouts);
        builder = match &config.credentials {
            Some(keys) => builder.credentials_provider(Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.expose().to_string(),
                None,
                None,
                "paper-engine-orders",
            )),
            None => builder.credentials_provider(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(region)
                    .build()
                    .await,
            ),
        };
        if let Some(ca) = &config.ca {
            builder = builder.http_client(https_client_trusting(&ca.pem));
        }
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

impl S3Source {
    /// One ListObjectsV2 request (keys URL-encoded in the answer), and where the next page
    /// starts (`None` on the last page).
    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        token: Option<String>,
    ) -> Result<(ListObjectsV2Output, Option<String>), SourceError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .encoding_type(EncodingType::Url)
            .set_start_after(start_after.map(str::to_string))
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                SourceError::from_sdk("ListObjectsV2", format!("{}/{prefix}", self.bucket), e)
            })?;
        let next = match (page.is_truncated(), page.next_continuation_token()) {
            (Some(true), Some(next)) => Some(next.to_string()),
            _ => None,
        };
        Ok((page, next))
    }
}

/// An ETag as S3 sends it, without its quotes.
fn etag(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim_matches('"').to_string()
}

impl Source for S3Source {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<String>,
    ) -> Result<ListPage, SourceError> {
        let (page, next) = self.list(prefix, None, start_after, token).await?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|object| {
                Some(ObjectInfo {
                    key: decode_listed_key(object.key()?),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: etag(object.e_tag()),
                })
            })
            .collect();
        Ok(ListPage { objects, next })
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        let mut folders = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = self.list(prefix, Some("/"), None, token).await?;
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(decode_listed_key)),
            );
            match next {
                Some(next) => token = Some(next),
                None => return Ok(folders),
            }
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, SourceError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: head.content_length().unwrap_or(0).max(0) as u64,
                etag: etag(head.e_tag()),
            })),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(SourceError::from_sdk("HeadObject", key.to_string(), e)),
        }
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
        let etag = etag(response.e_tag());
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
