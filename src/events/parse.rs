//! S3 bucket notifications, in the event JSON that AWS (through a bridge) and MinIO's NATS
//! target publish: `{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket":
//! {"name": ...}, "object": {"key": <URL-encoded>, "eTag": ..., "size": ...}}}]}`.
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Option<Bucket>,
    object: Option<Object>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Object {
    key: Option<String>,
}

/// What a notification means for this loader.
#[derive(Debug, PartialEq, Eq)]
pub enum Classified {
    /// New objects under the bucket path: the keys (decoded).
    Accepted(Vec<String>),
    /// Nothing for this loader: why (another bucket, prefix or event name).
    Ignored(String),
    /// Not an S3 event notification.
    Malformed(String),
}

/// Whether an event name says an object was created (`s3:ObjectCreated:Put`,
/// `ObjectCreated:CompleteMultipartUpload`, ...).
fn is_created(name: &str) -> bool {
    name.trim_start_matches("s3:").starts_with("ObjectCreated:")
}

/// Classifies a notification for `bucket` and the key prefix `prefix` (`<bucket_path>/`, or
/// empty for the whole bucket).
pub fn classify(payload: &[u8], bucket: &str, prefix: &str) -> Classified {
    let notification: Notification = match serde_json::from_slice(payload) {
        Ok(n) => n,
        Err(e) => return Classified::Malformed(format!("not JSON of an S3 event: {e}")),
    };
    let Some(records) = notification.records else {
        // MinIO sends a test event without records when a target is set up.
        return Classified::Malformed("no Records".into());
    };
    let mut keys = Vec::new();
    let mut ignored = Vec::new();
    for record in records {
        let name = record.event_name.unwrap_or_default();
        let (record_bucket, key) = match record.s3 {
            Some(S3Entity {
                bucket: Some(Bucket { name: Some(b) }),
                object: Some(Object { key: Some(k) }),
            }) => (b, k),
            _ => {
                return Classified::Malformed(
                    "a record without s3.bucket.name or s3.object.key".into(),
                )
            }
        };
        // Keys are URL-encoded, with `+` for a space.
        let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        if !is_created(&name) {
            ignored.push(format!("event {name}"));
        } else if record_bucket != bucket {
            ignored.push(format!("bucket {record_bucket}"));
        } else if !key.starts_with(prefix) {
            ignored.push(format!(
                "key {} outside '{prefix}'",
                crate::source::display_key(&key)
            ));
        } else {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        Classified::Ignored(if ignored.is_empty() {
            "no records".into()
        } else {
            ignored.join(", ")
        })
    } else {
        Classified::Accepted(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, bucket: &str, key: &str) -> Vec<u8> {
        serde_json::json!({
            "EventName": name,
            "Key": format!("{bucket}/{key}"),
            "Records": [{
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                    "object": {"key": key, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "size": 12}
                }
            }]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn created_objects_under_the_path_are_accepted_and_decoded() {
        assert_eq!(
            classify(
                &event(
                    "s3:ObjectCreated:Put",
                    "b",
                    "data/dbo/orders/2022%2F09%2F22%2Fx+y.csv.gz"
                ),
                "b",
                "data/"
            ),
            Classified::Accepted(vec!["data/dbo/orders/2022/09/22/x y.csv.gz".into()])
        );
        assert!(matches!(
            classify(
                &event("ObjectCreated:CompleteMultipartUpload", "b", "data/k"),
                "b",
                "data/"
            ),
            Classified::Accepted(_)
        ));
    }

    #[test]
    fn other_buckets_prefixes_and_event_names_are_ignored() {
        for (name, bucket, key) in [
            ("s3:ObjectRemoved:Delete", "b", "data/k"),
            ("s3:ObjectCreated:Put", "other", "data/k"),
            ("s3:ObjectCreated:Put", "b", "elsewhere/k"),
        ] {
            assert!(
                matches!(
                    classify(&event(name, bucket, key), "b", "data/"),
                    Classified::Ignored(_)
                ),
                "{name} {bucket} {key}"
            );
        }
    }

    #[test]
    fn anything_else_is_malformed() {
        for payload in [
            &b"nope"[..],
            b"{}",
            b"{\"Records\": [{\"eventName\": \"s3:ObjectCreated:Put\"}]}",
            b"[1,2]",
        ] {
            assert!(matches!(
                classify(payload, "b", ""),
                Classified::Malformed(_)
            ));
        }
    }
}
