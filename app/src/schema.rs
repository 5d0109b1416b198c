//! The JSON Schema of every message and body of `docs/protocol.md`,
//! generated from the types themselves (feature `schema`). CI checks that
//! `docs/protocol.schema.json` is what these types generate.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::api::{
    ChatPage, CreateRoom, DefaultRoomRequest, FramePage, FramesAppended, MatchBody, Matched, PatchRoom, RoomPage,
    RoomQuery, SessionInfo, SessionRequest,
};
use crate::delta::RoomDelta;
use crate::error::ErrorResponse;
use crate::model::{ChatMessage, Presence, RoomMetadata};
use crate::protocol::{ChatReply, ClientEvent, JoinRoomReply, LockReply, PresencePage, Reply, ServerEvent};

/// Adds `T` under its own name and returns a reference to it.
fn add<T: JsonSchema>(generator: &mut SchemaGenerator, roots: &mut Map<String, Value>) {
    let schema = generator.subschema_for::<T>();
    roots.insert(T::schema_name().into_owned(), schema.to_value());
}

/// The whole document: every type under `$defs`, and `roots` naming the
/// ones a message or a body starts from.
pub fn protocol_schema() -> Value {
    let mut generator = SchemaGenerator::default();
    let mut roots = Map::new();
    // WebSocket frames.
    add::<ClientEvent>(&mut generator, &mut roots);
    add::<ServerEvent>(&mut generator, &mut roots);
    add::<Reply>(&mut generator, &mut roots);
    add::<JoinRoomReply>(&mut generator, &mut roots);
    add::<ChatReply>(&mut generator, &mut roots);
    add::<LockReply>(&mut generator, &mut roots);
    add::<PresencePage>(&mut generator, &mut roots);
    // REST bodies.
    add::<SessionRequest>(&mut generator, &mut roots);
    add::<SessionInfo>(&mut generator, &mut roots);
    add::<CreateRoom>(&mut generator, &mut roots);
    add::<PatchRoom>(&mut generator, &mut roots);
    add::<DefaultRoomRequest>(&mut generator, &mut roots);
    add::<RoomQuery>(&mut generator, &mut roots);
    add::<RoomPage>(&mut generator, &mut roots);
    add::<FramesAppended>(&mut generator, &mut roots);
    add::<FramePage>(&mut generator, &mut roots);
    add::<ChatPage>(&mut generator, &mut roots);
    add::<MatchBody>(&mut generator, &mut roots);
    add::<Matched>(&mut generator, &mut roots);
    add::<ErrorResponse>(&mut generator, &mut roots);
    // The shared model.
    add::<RoomMetadata>(&mut generator, &mut roots);
    add::<RoomDelta>(&mut generator, &mut roots);
    add::<Presence>(&mut generator, &mut roots);
    add::<ChatMessage>(&mut generator, &mut roots);
    let defs = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://roomcast.example/protocol.schema.json",
        "title": "Roomcast wire protocol, version 1",
        "description": "Every WebSocket message and REST body of docs/protocol.md, generated from the Rust types (app/src/schema.rs). A client frame is a ClientEvent with an optional integer `id`; a server frame is a ServerEvent or a Reply.",
        "roots": Value::Object(roots),
        "$defs": Value::Object(defs),
    })
}
