//! Format versions. A document carries `spec_version`; older ones are brought up to
//! [`SPEC_VERSION`] by ordered migrations, so definitions written long ago still load.
//! Version 1 is the first, so the list is empty; a format change adds a function here.

use serde_json::Value;

use super::SPEC_VERSION;
use super::problems::{Problem, Problems};

/// `MIGRATIONS[n]` turns a version `n + 1` document into version `n + 2`.
const MIGRATIONS: &[fn(Value) -> Value] = &[];
const _: () = assert!(MIGRATIONS.len() as u32 == SPEC_VERSION - 1);

pub fn to_current(mut value: Value) -> Result<Value, Problems> {
    let problem = |message: String| {
        Problems(vec![Problem {
            step: None,
            field: "spec_version".into(),
            message,
        }])
    };
    let Some(object) = value.as_object_mut() else {
        return Err(problem("a workflow definition is a JSON object".into()));
    };
    let version = match object.get("spec_version") {
        None => return Err(problem(format!("required (current: {SPEC_VERSION})"))),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| problem("must be a whole number from 1".into()))?,
    };
    if version > SPEC_VERSION {
        return Err(problem(format!(
            "version {version} is newer than this build understands ({SPEC_VERSION})"
        )));
    }
    for migration in &MIGRATIONS[(version - 1) as usize..] {
        value = migration(value);
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("spec_version".into(), SPEC_VERSION.into());
    }
    Ok(value)
}
