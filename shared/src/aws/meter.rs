//! An SDK interceptor that counts calls and capacity per operation, for cost budgets.
//! Capacity is taken as the larger of what the service reports (ReturnConsumedCapacity)
//! and an estimate from item sizes by DynamoDB's billing rules (writes: 1 unit per KiB
//! per item, plus one per GSI the item is projected into; strongly consistent reads:
//! 1 unit per 4 KiB of items returned). The estimate keeps the count honest against an
//! emulator that reports capacity loosely.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::store::dynamodb::SEGMENT_KEY;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub calls: u64,
    /// Capacity units the service reported.
    pub reported: f64,
    /// Capacity units by the billing rules, from item sizes.
    pub estimated: f64,
    /// The sum, call by call, of the larger of the two.
    pub units: f64,
}

/// A call's estimate, carried from the request hook to the response hook.
#[derive(Clone, Copy, Debug)]
struct Estimate(f64);

impl aws_smithy_types::config_bag::Storable for Estimate {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Usage by `Service.Operation`, e.g. `DynamoDB.PutItem`.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    usage: Arc<Mutex<BTreeMap<String, Usage>>>,
}

impl Meter {
    pub fn snapshot(&self) -> BTreeMap<String, Usage> {
        self.usage.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn add(&self, operation: String, f: impl FnOnce(&mut Usage)) {
        if let Ok(mut usage) = self.usage.lock() {
            f(usage.entry(operation).or_default());
        }
    }
}

/// Totals of one snapshot minus an earlier one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub write_units: f64,
    pub read_units: f64,
    pub dynamodb_calls: u64,
    pub scheduler_calls: u64,
}

pub fn totals(before: &BTreeMap<String, Usage>, after: &BTreeMap<String, Usage>) -> Totals {
    let mut t = Totals::default();
    for (operation, now) in after {
        let was = before.get(operation).copied().unwrap_or_default();
        let units = now.units - was.units;
        let calls = now.calls - was.calls;
        match operation.split_once('.') {
            Some(("Scheduler", _)) => t.scheduler_calls += calls,
            Some((service, _)) if service != "DynamoDB" => {}
            Some((_, op)) if is_read(op) => {
                t.read_units += units;
                t.dynamodb_calls += calls;
            }
            Some(_) => {
                t.write_units += units;
                t.dynamodb_calls += calls;
            }
            None => {}
        }
    }
    t
}

fn is_read(operation: &str) -> bool {
    matches!(
        operation,
        "Query" | "GetItem" | "Scan" | "BatchGetItem" | "TransactGetItems"
    )
}

fn operation(cfg: &ConfigBag) -> String {
    match cfg.load::<Metadata>() {
        Some(m) => {
            let service = match m.service().to_ascii_lowercase().as_str() {
                "dynamodb" => "DynamoDB",
                "scheduler" => "Scheduler",
                "secrets manager" => "SecretsManager",
                _ => "other",
            };
            format!("{service}.{}", m.name())
        }
        None => "unknown.unknown".into(),
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "AssentMeter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        let request = json_of(context.request().body().bytes());
        let estimated = match operation.as_str() {
            "DynamoDB.PutItem" => write_units(&request["Item"]),
            "DynamoDB.DeleteItem" | "DynamoDB.UpdateItem" => {
                // The deleted item's size is unknown here; segment entries are tiny.
                let segment = request["Key"]["sk"]["S"]
                    .as_str()
                    .is_some_and(|sk| sk.starts_with("tag#"));
                1.0 + f64::from(u8::from(segment))
            }
            _ => 0.0,
        };
        cfg.interceptor_state().store_put(Estimate(estimated));
        self.add(operation, |u| u.calls += 1);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        let response = json_of(context.response().body().bytes());
        let reported = match &response["ConsumedCapacity"] {
            Value::Array(list) => list
                .iter()
                .filter_map(|c| c["CapacityUnits"].as_f64())
                .sum(),
            single => single["CapacityUnits"].as_f64().unwrap_or(0.0),
        };
        let sent = cfg.load::<Estimate>().map_or(0.0, |e| e.0);
        let estimated = sent
            + match operation.as_str() {
                "DynamoDB.Query" | "DynamoDB.Scan" => {
                    let bytes: usize = response["Items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(item_size)
                        .sum();
                    (bytes as f64 / 4096.0).ceil().max(1.0)
                }
                "DynamoDB.GetItem" => (item_size(&response["Item"]) as f64 / 4096.0)
                    .ceil()
                    .max(1.0),
                _ => 0.0,
            };
        self.add(operation, |u| {
            u.reported += reported;
            u.estimated += estimated;
            u.units += reported.max(estimated);
        });
        Ok(())
    }
}

/// A buffered JSON body (DynamoDB speaks JSON), `Null` for anything else.
fn json_of(bytes: Option<&[u8]>) -> Value {
    bytes
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null)
}

fn write_units(item: &Value) -> f64 {
    let size = (item_size(item) as f64 / 1024.0).ceil().max(1.0);
    // An item with the segment key is written to the sparse GSI too.
    let index = f64::from(u8::from(item.get(SEGMENT_KEY).is_some()));
    size + index
}

/// An item's size by DynamoDB's rules: attribute names plus values (strings and binaries
/// by length, numbers about one byte per two digits, sets and lists by their members).
fn item_size(item: &Value) -> usize {
    item.as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| name.len() + value_size(value))
                .sum()
        })
        .unwrap_or(0)
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        // Binary travels base64-encoded; DynamoDB bills the decoded bytes.
        ("B", Value::String(b64)) => {
            b64.len() / 4 * 3 - b64.bytes().rev().take_while(|&c| c == b'=').count()
        }
        ("N", Value::String(n)) => n.len().div_ceil(2) + 1,
        ("SS" | "BS" | "NS", Value::Array(items)) => {
            items.iter().filter_map(Value::as_str).map(str::len).sum()
        }
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        ("M", Value::Object(_)) => 3 + item_size(inner),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_the_billing_rules() {
        let small =
            json!({"pk": {"S": "c#whatsapp:1"}, "sk": {"S": "state"}, "version": {"N": "12"}});
        assert_eq!(item_size(&small), 2 + 12 + 2 + 5 + 7 + 2);
        assert_eq!(write_units(&small), 1.0);
        let big = json!({"pk": {"S": "x"}, "record": {"S": "y".repeat(1500)}});
        assert_eq!(write_units(&big), 2.0);
        let binary = json!({"b": {"B": "aGVsbG8="}}); // "hello"
        assert_eq!(item_size(&binary), 1 + 5);
        let segment = json!({"pk": {"S": "x"}, "sk": {"S": "tag#a"}, "seg": {"S": "a"}});
        assert_eq!(write_units(&segment), 2.0, "base table and GSI");
    }
}
