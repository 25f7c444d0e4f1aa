//! [`MemorySource`]: a bucket in memory, for unit tests of the loader's planning (listing,
//! cursors, late files) without an S3 server. It counts the requests it answers.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{ListPage, ObjectBody, ObjectInfo, Source, SourceError};

/// Body and version (the ETag) by key.
type Objects = BTreeMap<String, (Vec<u8>, u64)>;

/// Objects by key, with S3's listing semantics (byte order, `StartAfter`, pages, delimiter).
#[derive(Clone, Default)]
pub struct MemorySource {
    path: String,
    objects: Arc<Mutex<Objects>>,
    page_size: usize,
    requests: Arc<AtomicU64>,
    versions: Arc<AtomicU64>,
}

impl MemorySource {
    /// An empty bucket whose loader is configured with `bucket_path = path`.
    pub fn new(path: &str) -> Self {
        MemorySource {
            path: path.trim_matches('/').to_string(),
            page_size: 1000,
            ..MemorySource::default()
        }
    }

    /// Pages of `n` objects instead of S3's 1,000.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Writes (or replaces, with a new ETag) an object.
    pub fn put(&self, key: &str, body: Vec<u8>) {
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_string(), (body, version));
    }

    /// Deletes an object.
    pub fn delete(&self, key: &str) {
        self.objects.lock().expect("not poisoned").remove(key);
    }

    /// Requests answered so far (listings, heads and opens).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn info(key: &str, body: &[u8], version: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: body.len() as u64,
            etag: format!("v{version}"),
        }
    }
}

impl Source for MemorySource {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<String>,
    ) -> Result<ListPage, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().expect("not poisoned");
        // The continuation token is the last key of the previous page.
        let after = token.as_deref().or(start_after).unwrap_or("");
        let mut page: Vec<ObjectInfo> = objects
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .filter(|(k, _)| k.starts_with(prefix))
            .take(self.page_size + 1)
            .map(|(k, (body, v))| Self::info(k, body, *v))
            .collect();
        let next = if page.len() > self.page_size {
            page.truncate(self.page_size);
            page.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects: page,
            next,
        })
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().expect("not poisoned");
        let mut folders: Vec<String> = objects
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?;
                let (folder, _) = rest.split_once('/')?;
                Some(format!("{prefix}{folder}/"))
            })
            .collect();
        folders.dedup();
        Ok(folders)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().expect("not poisoned");
        Ok(objects.get(key).map(|(body, v)| Self::info(key, body, *v)))
    }

    async fn open(&self, key: &str) -> Result<ObjectBody, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (body, version) = self
            .objects
            .lock()
            .expect("not poisoned")
            .get(key)
            .cloned()
            .ok_or_else(|| SourceError::Request {
                op: "GetObject",
                what: key.to_string(),
                status: Some(404),
                code: Some("NoSuchKey".into()),
                message: "The specified key does not exist.".into(),
            })?;
        let size = body.len() as u64;
        Ok(ObjectBody {
            etag: format!("v{version}"),
            size,
            reader: Box::pin(std::io::Cursor::new(body)),
            bytes_read: Arc::new(AtomicU64::new(size)),
        })
    }

    fn path(&self) -> &str {
        &self.path
    }

    async fn ping(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_like_s3_in_byte_order_after_a_key_in_pages() {
        let s = MemorySource::new("data").with_page_size(2);
        for k in [
            "data/dbo/orders/LOAD00000001.csv.gz",
            "data/dbo/orders/20220922-095853123.csv.gz",
            "data/dbo/orders/2022/09/23/20220923-000000000.csv.gz",
            "data/dbo/strategies/LOAD00000001.csv.gz",
        ] {
            s.put(k, b"x".to_vec());
        }
        let first = s.list_page("data/dbo/orders/", None, None).await.unwrap();
        let keys: Vec<&str> = first.objects.iter().map(|o| o.key.as_str()).collect();
        // '/' sorts before digits, digits before 'L'.
        assert_eq!(
            keys,
            [
                "data/dbo/orders/2022/09/23/20220923-000000000.csv.gz",
                "data/dbo/orders/20220922-095853123.csv.gz"
            ]
        );
        let second = s
            .list_page("data/dbo/orders/", None, first.next)
            .await
            .unwrap();
        assert_eq!(second.objects.len(), 1);
        assert_eq!(second.next, None);
        let after = s
            .list_page(
                "data/dbo/orders/",
                Some("data/dbo/orders/20220922-095853123.csv.gz"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(after.objects.len(), 1);
        assert!(after.objects[0].key.ends_with("LOAD00000001.csv.gz"));
        assert_eq!(
            s.list_folders("data/dbo/").await.unwrap(),
            ["data/dbo/orders/", "data/dbo/strategies/"]
        );
        assert_eq!(s.requests(), 4);
    }
}
