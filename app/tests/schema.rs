//! `docs/protocol.schema.json` is what the types generate. After changing
//! a type: `ROOMCAST_WRITE_SCHEMA=1 cargo test -p app --features schema --test schema`.
#![cfg(feature = "schema")]

use std::path::Path;

#[test]
fn the_committed_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.schema.json");
    let generated = serde_json::to_string_pretty(&app::schema::protocol_schema()).expect("json") + "\n";
    if std::env::var_os("ROOMCAST_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write the schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/protocol.schema.json is stale: run ROOMCAST_WRITE_SCHEMA=1 cargo test -p app --features schema --test schema"
    );
}

#[test]
fn every_event_name_and_root_type_is_in_the_schema() {
    let schema = app::schema::protocol_schema();
    let defs = schema["$defs"].as_object().expect("defs");
    for name in ["ClientEvent", "ServerEvent", "RoomMetadata", "RoomDelta", "CreateRoom", "ErrorResponse"] {
        assert!(defs.contains_key(name), "{name} is defined");
    }
    // Every event name is in the schema, spelled as on the wire.
    let text = serde_json::to_string(&schema["$defs"]["ClientEvent"]).expect("json");
    for name in app::protocol::ClientEvent::NAMES {
        assert!(text.contains(&format!("\"{name}\"")), "{name} is in the ClientEvent schema");
    }
    let text = serde_json::to_string(&schema["$defs"]["ServerEvent"]).expect("json");
    for name in app::protocol::ServerEvent::NAMES {
        assert!(text.contains(&format!("\"{name}\"")), "{name} is in the ServerEvent schema");
    }
}
