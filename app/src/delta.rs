//! Partial room updates (`room:update`, PROTOCOL.md section 3) and the rule a
//! client uses to apply them in any order of delivery.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{LockMetadata, RoomMetadata, RoomStatus};

/// Deserializes a present field as `Some(value)`, so that for a nullable field
/// an explicit `null` becomes `Some(None)` ("set to null") while an absent
/// field stays `None` ("unchanged").
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Declares `RoomDelta` with one optional member per changeable field of
/// `RoomMetadata`, and the three operations that walk those fields.
macro_rules! room_delta {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// The fields of a room that changed between versions `base` and
        /// `version`, each at its value at `version`.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "camelCase")]
        pub struct RoomDelta {
            pub room_id: String,
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub created: bool,
            pub base: u64,
            pub version: u64,
            $(
                #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl RoomDelta {
            /// The delta from `old` to `new` (same room), holding only the
            /// fields whose values differ.
            pub fn between(old: &RoomMetadata, new: &RoomMetadata) -> RoomDelta {
                RoomDelta {
                    room_id: new.id.clone(),
                    created: false,
                    base: old.version,
                    version: new.version,
                    $($field: (old.$field != new.$field).then(|| new.$field.clone()),)*
                }
            }

            /// The creation delta: base 0, every field.
            pub fn creation(room: &RoomMetadata) -> RoomDelta {
                RoomDelta {
                    room_id: room.id.clone(),
                    created: true,
                    base: 0,
                    version: room.version,
                    $($field: Some(room.$field.clone()),)*
                }
            }

            /// Writes the fields this delta carries into `room` and moves it to
            /// `self.version`. Does not check versions: see [`decide`].
            pub fn apply_fields(&self, room: &mut RoomMetadata) {
                $(if let Some(value) = &self.$field { room.$field = value.clone(); })*
                room.version = self.version;
            }

            /// Folds a later delta of the same room (whose base is this one's
            /// version) into this one, giving one delta from `self.base` to
            /// `later.version`.
            pub fn merge(&mut self, later: RoomDelta) {
                debug_assert_eq!(self.version, later.base);
                $(if later.$field.is_some() { self.$field = later.$field; })*
                self.version = later.version;
            }

            /// Whether the delta carries no field at all.
            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }

            /// The full metadata of a creation delta, or `None` if a field is
            /// missing.
            pub fn to_metadata(&self) -> Option<RoomMetadata> {
                Some(RoomMetadata {
                    id: self.room_id.clone(),
                    version: self.version,
                    $($field: self.$field.clone()?,)*
                })
            }
        }
    };
}

room_delta! {
    description: Option<String>,
    frame_count: u64,
    locked: bool,
    hidden: bool,
    is_default: bool,
    metadata_locked: Option<LockMetadata>,
    presenter_sid: Option<String>,
    status: RoomStatus,
    host_user_id: Option<String>,
    host_name: Option<String>,
    member_count: u32,
    spectator_count: u32,
    connection_count: u32,
    max_members: u32,
    min_members: u32,
    allow_spectators: bool,
    created_at: f64,
}

/// What a client does with a delta, given the version it holds of the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply the fields and move to the delta's version.
    Apply,
    /// Insert the room from this creation delta.
    Create,
    /// Already seen (duplicate or older): drop it.
    Ignore,
    /// Something was missed: fetch the room again.
    Resync,
}

/// The delta rule of PROTOCOL.md section 3. `local` is the version the
/// client holds of the room, `None` when it does not know the room.
pub fn decide(local: Option<u64>, delta: &RoomDelta) -> Decision {
    match local {
        None if delta.created && delta.base == 0 => Decision::Create,
        None => Decision::Resync,
        Some(v) if v >= delta.version => Decision::Ignore,
        Some(v) if v < delta.base => Decision::Resync,
        Some(_) => Decision::Apply,
    }
}

/// Applies a delta to a map of rooms keyed by room id with the delta rule.
/// Returns the decision taken; on `Resync` the map is left unchanged and the
/// caller fetches the room.
pub fn apply_to(rooms: &mut HashMap<String, RoomMetadata>, delta: &RoomDelta) -> Decision {
    let local = rooms.get(&delta.room_id).map(|r| r.version);
    let decision = decide(local, delta);
    match decision {
        Decision::Apply => {
            if let Some(room) = rooms.get_mut(&delta.room_id) {
                delta.apply_fields(room);
            }
        }
        Decision::Create => match delta.to_metadata() {
            Some(room) => {
                rooms.insert(room.id.clone(), room);
            }
            None => return Decision::Resync,
        },
        Decision::Ignore | Decision::Resync => {}
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(version: u64) -> RoomMetadata {
        let mut r = RoomMetadata::new("ROOM-7KQ2MX".into(), 1_763_790_000.0);
        r.version = version;
        r
    }

    fn changed(from: &RoomMetadata, edit: impl FnOnce(&mut RoomMetadata)) -> RoomMetadata {
        let mut to = from.clone();
        edit(&mut to);
        to.version += 1;
        to
    }

    #[test]
    fn delta_carries_only_changed_fields_and_serializes_nulls() {
        let a = room(41);
        let mut b = changed(&a, |r| r.frame_count = 121);
        let d = RoomDelta::between(&a, &b);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json, serde_json::json!({"roomId":"ROOM-7KQ2MX","base":41,"version":42,"frameCount":121}));
        b.description = Some("x".into());
        let c = changed(&b, |r| r.description = None);
        let d = RoomDelta::between(&b, &c);
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"description\":null"), "{text}");
        let back: RoomDelta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.description, Some(None));
        assert_eq!(back, d);
    }

    #[test]
    fn null_for_a_non_nullable_field_is_rejected() {
        let bad = r#"{"roomId":"a","base":1,"version":2,"frameCount":null}"#;
        assert!(serde_json::from_str::<RoomDelta>(bad).is_err());
    }

    #[test]
    fn in_order_deltas_apply() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.hidden = true);
        let v3 = changed(&v2, |r| r.description = Some("hi".into()));
        let mut rooms = HashMap::from([(v1.id.clone(), v1.clone())]);
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v1, &v2)), Decision::Apply);
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v2, &v3)), Decision::Apply);
        assert_eq!(rooms[&v1.id], v3);
    }

    #[test]
    fn duplicates_are_ignored() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.frame_count = 5);
        let d = RoomDelta::between(&v1, &v2);
        let mut rooms = HashMap::from([(v1.id.clone(), v1.clone())]);
        assert_eq!(apply_to(&mut rooms, &d), Decision::Apply);
        assert_eq!(apply_to(&mut rooms, &d), Decision::Ignore);
        assert_eq!(rooms[&v1.id], v2);
    }

    #[test]
    fn older_delta_after_newer_is_ignored() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.frame_count = 5);
        let v3 = changed(&v2, |r| r.frame_count = 9);
        let mut rooms = HashMap::from([(v1.id.clone(), v1.clone())]);
        // A coalesced 1->3 arrives first, then the stale 1->2.
        let mut coalesced = RoomDelta::between(&v1, &v2);
        coalesced.merge(RoomDelta::between(&v2, &v3));
        assert_eq!(apply_to(&mut rooms, &coalesced), Decision::Apply);
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v1, &v2)), Decision::Ignore);
        assert_eq!(rooms[&v1.id], v3);
    }

    #[test]
    fn coalesced_delta_applies_over_a_partly_seen_range() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.hidden = true);
        let v3 = changed(&v2, |r| r.frame_count = 3);
        let mut coalesced = RoomDelta::between(&v1, &v2);
        coalesced.merge(RoomDelta::between(&v2, &v3));
        assert_eq!((coalesced.base, coalesced.version), (1, 3));
        // The client already holds v2; base 1 <= 2 < 3, so it applies.
        let mut rooms = HashMap::from([(v2.id.clone(), v2.clone())]);
        assert_eq!(apply_to(&mut rooms, &coalesced), Decision::Apply);
        assert_eq!(rooms[&v1.id], v3);
    }

    #[test]
    fn gap_asks_for_resync_and_leaves_state_alone() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.hidden = true);
        let v3 = changed(&v2, |r| r.frame_count = 3);
        let mut rooms = HashMap::from([(v1.id.clone(), v1.clone())]);
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v2, &v3)), Decision::Resync);
        assert_eq!(rooms[&v1.id], v1);
    }

    #[test]
    fn unknown_room_needs_creation_or_resync() {
        let v1 = room(1);
        let v2 = changed(&v1, |r| r.hidden = true);
        let mut rooms = HashMap::new();
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v1, &v2)), Decision::Resync);
        assert!(rooms.is_empty());
        assert_eq!(apply_to(&mut rooms, &RoomDelta::creation(&v1)), Decision::Create);
        assert_eq!(rooms[&v1.id], v1);
        // A duplicate creation after an update does not roll the room back.
        assert_eq!(apply_to(&mut rooms, &RoomDelta::between(&v1, &v2)), Decision::Apply);
        assert_eq!(apply_to(&mut rooms, &RoomDelta::creation(&v1)), Decision::Ignore);
        assert_eq!(rooms[&v1.id], v2);
    }

    #[test]
    fn creation_serializes_every_field() {
        let v1 = room(1);
        let json = serde_json::to_value(RoomDelta::creation(&v1)).unwrap();
        let obj = json.as_object().unwrap();
        assert_eq!(obj["created"], true);
        assert_eq!(obj["base"], 0);
        // roomId, created, base, version + 17 fields
        assert_eq!(obj.len(), 21);
        assert!(obj.contains_key("metadataLocked") && obj["metadataLocked"].is_null());
    }
}
