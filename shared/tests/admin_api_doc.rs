//! docs/admin-api.yaml documents exactly the routes the admin router serves.

use std::collections::BTreeSet;

#[test]
fn the_openapi_document_and_the_routes_agree() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/admin-api.yaml"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{method} {path} must document 401"
            );
            if path.contains("{id}") {
                assert!(
                    item.get("parameters").is_some() || operation.get("parameters").is_some(),
                    "{path}: document {{id}}"
                );
            }
        }
    }
    let served: BTreeSet<(String, String)> = assent::admin::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}
