//! Merging a room's queued `room:update` with a newer one, for connections
//! that fall behind: the delta rule lets two consecutive deltas of a room
//! become one, from the older `base` to the newer `version`, with each
//! field at its newest value.

use app::protocol::{ServerEvent, ServerMessage};
use bytes::Bytes;

/// One delta for `old` followed by `new`, when both are `room:update`s of
/// the same room and `new` starts where `old` ends; else `None` (both are
/// then sent as they are).
pub fn merge_updates(old: &Bytes, new: &Bytes) -> Option<Bytes> {
    let mut merged = update(old)?;
    let later = update(new)?;
    if merged.room_id != later.room_id || merged.version != later.base {
        return None;
    }
    merged.merge(later);
    Some(Bytes::from(ServerEvent::RoomUpdate(merged).to_json()))
}

fn update(f: &Bytes) -> Option<app::delta::RoomDelta> {
    let text = std::str::from_utf8(f).ok()?;
    match ServerMessage::decode(text).ok()? {
        ServerMessage::Event(ServerEvent::RoomUpdate(delta)) => Some(delta),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use app::delta::RoomDelta;
    use app::model::RoomMetadata;

    use super::*;

    fn delta_frame(from: &RoomMetadata, to: &RoomMetadata) -> Bytes {
        Bytes::from(ServerEvent::RoomUpdate(RoomDelta::between(from, to)).to_json())
    }

    fn changed(room: &RoomMetadata, edit: impl FnOnce(&mut RoomMetadata)) -> RoomMetadata {
        let mut next = room.clone();
        edit(&mut next);
        next.version += 1;
        next
    }

    #[test]
    fn consecutive_deltas_become_one_from_the_first_base_to_the_last_version() {
        let v1 = RoomMetadata::new("r".into(), 1.0);
        let v2 = changed(&v1, |r| r.description = Some("a".into()));
        let v3 = changed(&v2, |r| r.frame_count = 7);
        let v4 = changed(&v3, |r| r.description = None);
        let merged = merge_updates(&delta_frame(&v1, &v2), &delta_frame(&v2, &v3)).expect("merges");
        let merged = merge_updates(&merged, &delta_frame(&v3, &v4)).expect("merges again");
        let text = std::str::from_utf8(&merged).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["event"], "room:update");
        assert_eq!(
            value["data"],
            serde_json::json!({ "roomId": "r", "base": v1.version, "version": v4.version, "description": null, "frameCount": 7 })
        );
        // Applied to v1, the one delta gives v4.
        let mut room = v1.clone();
        let ServerMessage::Event(ServerEvent::RoomUpdate(d)) = ServerMessage::decode(text).unwrap() else { panic!() };
        d.apply_fields(&mut room);
        assert_eq!(room, v4);
    }

    #[test]
    fn deltas_that_do_not_follow_each_other_or_are_not_updates_stay_apart() {
        let v1 = RoomMetadata::new("r".into(), 1.0);
        let v2 = changed(&v1, |r| r.hidden = true);
        let v3 = changed(&v2, |r| r.hidden = false);
        assert!(merge_updates(&delta_frame(&v1, &v2), &delta_frame(&v1, &v2)).is_none(), "not consecutive");
        assert!(merge_updates(&delta_frame(&v2, &v3), &delta_frame(&v1, &v2)).is_none(), "out of order");
        let other = RoomMetadata::new("s".into(), 1.0);
        let other2 = changed(&other, |r| r.hidden = true);
        assert!(merge_updates(&delta_frame(&v1, &v2), &delta_frame(&other, &other2)).is_none(), "another room");
        let chat = Bytes::from(r#"{"event":"presence:leave","data":{"roomId":"r","sid":"c_1"}}"#);
        assert!(merge_updates(&chat, &delta_frame(&v1, &v2)).is_none());
    }
}
