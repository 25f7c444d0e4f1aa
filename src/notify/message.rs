//! What a change notification says: the replaced service's message, field for field, plus
//! `delivery`; and the outbox row a delivery stores (see [`crate::target::OutboxWriter`]).
use std::collections::BTreeMap;

use serde::Serialize;

use crate::target::{DeliveryFacts, OutboxRow, OutboxWriter};

/// Where notifications go and what they say about their origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationSettings {
    /// The data source name (`ds`), `paper-engine`.
    pub datasource: String,
    /// The process name (`id`), `orders`.
    pub process: String,
    /// This machine's host name.
    pub host: String,
}

impl NotificationSettings {
    /// `<datasource>.meta.<process>.change`, e.g. `paper-engine.meta.orders.change`.
    pub fn subject(&self) -> String {
        format!("{}.meta.{}.change", self.datasource, self.process)
    }
}

#[derive(Serialize)]
struct Stats {
    #[serde(rename = "AMEND")]
    amend: u64,
    #[serde(rename = "CREATE")]
    create: u64,
    #[serde(rename = "REMOVE")]
    remove: u64,
}

#[derive(Serialize)]
struct DeliveryRef<'a> {
    id: i64,
    key: &'a str,
    rows: u64,
    /// Columns this delivery added to the table (`SCHEMA_DRIFT_POLICY=add-columns`); absent
    /// when none.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    added_columns: &'a [String],
}

/// The message, field for field as the replaced service published it, plus `delivery`.
#[derive(Serialize)]
struct ChangeNotification<'a> {
    v: u32,
    ds: &'a str,
    id: &'a str,
    host: &'a str,
    utcts: String,
    stats: BTreeMap<&'a str, Stats>,
    max_event_id: Option<i64>,
    delivery: DeliveryRef<'a>,
}

impl OutboxWriter for NotificationSettings {
    fn row(&self, facts: &DeliveryFacts<'_>) -> Option<OutboxRow> {
        change_notification(self, facts, chrono::Utc::now()).map(|payload| OutboxRow {
            subject: self.subject(),
            payload,
        })
    }
}

/// The JSON notification of a delivery, or `None` when it changed nothing (no message then).
pub fn change_notification(
    settings: &NotificationSettings,
    change: &DeliveryFacts<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let c = change.counts;
    if !c.changed() {
        return None;
    }
    let mut stats = BTreeMap::new();
    stats.insert(
        change.table,
        Stats {
            amend: c.amends,
            create: c.creates,
            remove: c.removes,
        },
    );
    let message = ChangeNotification {
        v: 1,
        ds: &settings.datasource,
        id: &settings.process,
        host: &settings.host,
        utcts: now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        stats,
        max_event_id: change.max_event_id,
        delivery: DeliveryRef {
            id: change.delivery_id,
            key: change.key,
            rows: change.rows,
            added_columns: change.added_columns,
        },
    };
    Some(serde_json::to_string(&message).expect("the notification serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::NetCounts;

    fn settings() -> NotificationSettings {
        NotificationSettings {
            datasource: "paper-engine".into(),
            process: "orders".into(),
            host: "hostname".into(),
        }
    }

    #[test]
    fn the_message_has_the_replaced_services_shape_then_delivery() {
        let now = chrono::DateTime::parse_from_rfc3339("2021-12-09T08:31:04.824890Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let json = change_notification(
            &settings(),
            &DeliveryFacts {
                delivery_id: 26,
                key: "data/dbo/orders/LOAD00000001.csv.gz",
                table: "orders",
                rows: 159967,
                counts: NetCounts {
                    creates: 159967,
                    amends: 0,
                    removes: 0,
                    unchanged: 0,
                },
                max_event_id: Some(1020487673),
                added_columns: &[],
            },
            now,
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"ds":"paper-engine","id":"orders","host":"hostname","utcts":"2021-12-09T08:31:04.824890","stats":{"orders":{"AMEND":0,"CREATE":159967,"REMOVE":0}},"max_event_id":1020487673,"delivery":{"id":26,"key":"data/dbo/orders/LOAD00000001.csv.gz","rows":159967}}"#
        );
        assert_eq!(settings().subject(), "paper-engine.meta.orders.change");
    }

    #[test]
    fn no_net_change_means_no_message() {
        let change = DeliveryFacts {
            delivery_id: 1,
            key: "k",
            table: "orders",
            rows: 3,
            counts: NetCounts {
                unchanged: 3,
                ..NetCounts::default()
            },
            max_event_id: None,
            added_columns: &[],
        };
        assert!(change_notification(&settings(), &change, chrono::Utc::now()).is_none());
    }
}
