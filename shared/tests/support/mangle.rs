//! Bodies that start as real ones and are then mangled at random, for property tests of
//! everything that reads input: values swapped for others of any type, values dropped, and
//! the encoded bytes cut, flipped or inserted into.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Every string the mangling puts into a body starts with this, so that an error that
/// repeats a value from the body is caught.
pub const MARK: &str = "Σmark";

#[derive(Clone, Debug)]
pub enum Mangle {
    /// The `at`-th value in the body (in document order) becomes `with`.
    Replace { at: usize, with: Value },
    /// The `at`-th value leaves its object or array.
    Remove { at: usize },
    /// The encoded bytes end at `at`.
    Cut { at: usize },
    /// The byte at `at` is XORed with `with`.
    Flip { at: usize, with: u8 },
    /// `bytes` go in at `at`.
    Insert { at: usize, bytes: Vec<u8> },
}

pub fn any_value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        ".{0,12}".prop_map(|s| format!("{MARK}{s}")),
        (0usize..3000).prop_map(|n| format!("{MARK}{}", "é".repeat(n))),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        3 => (any::<usize>(), any_value()).prop_map(|(at, with)| Mangle::Replace { at, with }),
        2 => any::<usize>().prop_map(|at| Mangle::Remove { at }),
        1 => any::<usize>().prop_map(|at| Mangle::Cut { at }),
        1 => (any::<usize>(), 1u8..=255).prop_map(|(at, with)| Mangle::Flip { at, with }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mangle::Insert { at, bytes }),
    ]
}

/// JSON pointers to every value in `body`, the root first.
fn pointers(body: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match body {
        Value::Object(map) => {
            for (key, value) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(value, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                pointers(value, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

pub fn apply_to_json(body: &mut Value, mangle: &Mangle) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    match mangle {
        Mangle::Replace { at, with } => {
            if let Some(target) = body.pointer_mut(&all[at % all.len()]) {
                *target = with.clone();
            }
        }
        Mangle::Remove { at } => {
            let pointer = &all[at % all.len()];
            let Some((parent, last)) = pointer.rsplit_once('/') else {
                *body = Value::Null;
                return;
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match body.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

pub fn apply_to_bytes(bytes: &mut Vec<u8>, mangle: &Mangle) {
    match mangle {
        Mangle::Cut { at } => bytes.truncate(at % (bytes.len() + 1)),
        Mangle::Flip { at, with } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] ^= with;
        }
        Mangle::Insert { at, bytes: more } => {
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, more.iter().copied());
        }
        _ => {}
    }
}
