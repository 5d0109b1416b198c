//! Property: whatever the order, delay, coalescing and duplication of a
//! room's deltas, a client applying the delta rule (and re-syncing when it
//! says so) ends with exactly the server's state.

use std::collections::HashMap;

use app::delta::{Decision, RoomDelta, apply_to};
use app::model::{LockMetadata, RoomMetadata, RoomStatus};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Describe(Option<String>),
    Frames(u64),
    Hide(bool),
    Connections(u32),
    TempLock(Option<String>),
    Status(u8),
    Host(Option<String>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::option::of("[a-z]{0,4}").prop_map(Op::Describe),
        (0u64..50).prop_map(Op::Frames),
        any::<bool>().prop_map(Op::Hide),
        (0u32..5).prop_map(Op::Connections),
        proptest::option::of("[a-z]{1,3}").prop_map(Op::TempLock),
        (0u8..3).prop_map(Op::Status),
        proptest::option::of("u_[a-z]{2}").prop_map(Op::Host),
    ]
}

fn apply(op: &Op, room: &mut RoomMetadata) {
    match op {
        Op::Describe(d) => room.description = d.clone(),
        Op::Frames(n) => room.frame_count = *n,
        Op::Hide(h) => room.hidden = *h,
        Op::Connections(c) => room.connection_count = *c,
        Op::TempLock(l) => {
            room.metadata_locked = l.as_ref().map(|user| LockMetadata {
                msg: Some("Uploading".into()),
                user_name: user.clone(),
                timestamp: 1.5,
            })
        }
        Op::Status(s) => room.status = [RoomStatus::Waiting, RoomStatus::Active, RoomStatus::Finished][*s as usize],
        Op::Host(h) => room.host_user_id = h.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_delivery_order_converges(
        ops in vec(op(), 1..40),
        merge in vec(any::<bool>(), 41),
        delays in vec(0usize..12, 41),
        duplicate in vec(proptest::option::of(0usize..15), 41),
        knows_room in any::<bool>(),
    ) {
        // The server's history of states, version 1 first.
        let mut states = vec![RoomMetadata::new("ROOM-7KQ2MX".into(), 1_763_790_000.0)];
        for op in &ops {
            let mut next = states.last().unwrap().clone();
            apply(op, &mut next);
            next.version += 1;
            states.push(next);
        }

        // The deltas it sends, some coalesced, each stamped with the time
        // (state index) it is sent at.
        let mut sent: Vec<(usize, RoomDelta)> = vec![(0, RoomDelta::creation(&states[0]))];
        for i in 1..states.len() {
            let delta = RoomDelta::between(&states[i - 1], &states[i]);
            match sent.last_mut() {
                Some((at, last)) if merge[i] && !last.created => {
                    last.merge(delta);
                    *at = i;
                }
                _ => sent.push((i, delta)),
            }
        }

        // Delivery: delayed, reordered, some twice.
        let mut deliveries: Vec<(usize, usize, RoomDelta)> = Vec::new();
        for (seq, (at, delta)) in sent.iter().enumerate() {
            deliveries.push((at + delays[seq % delays.len()], seq, delta.clone()));
            if let Some(extra) = duplicate[seq % duplicate.len()] {
                deliveries.push((at + extra, seq + 1000, delta.clone()));
            }
        }
        deliveries.sort_by_key(|(time, seq, _)| (*time, *seq));

        let last = states.len() - 1;
        let mut client: HashMap<String, RoomMetadata> = HashMap::new();
        if knows_room {
            client.insert(states[0].id.clone(), states[0].clone());
        }
        for (time, _, delta) in &deliveries {
            if apply_to(&mut client, delta) == Decision::Resync {
                // Re-sync returns what the server holds at that moment.
                let now = states[(*time).min(last)].clone();
                client.insert(now.id.clone(), now);
            }
        }
        prop_assert_eq!(client.get("ROOM-7KQ2MX"), Some(&states[last]));
    }

    #[test]
    fn a_delta_survives_json(ops in vec(op(), 1..10)) {
        let mut a = RoomMetadata::new("r".into(), 2.0);
        let mut b = a.clone();
        for op in &ops { apply(op, &mut b); }
        b.version = 2;
        let delta = RoomDelta::between(&a, &b);
        let back: RoomDelta = serde_json::from_str(&serde_json::to_string(&delta).unwrap()).unwrap();
        prop_assert_eq!(&back, &delta);
        back.apply_fields(&mut a);
        prop_assert_eq!(a, b);
    }
}
