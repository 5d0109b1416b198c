//! Who is in the room, grouped by user: role, host marker, tab count. The
//! store holds the room's first page of presence; the rest is a count.

use leptos::prelude::*;

use crate::client::use_store;
use crate::model::{Role, RoomMetadata};

#[derive(Clone, PartialEq)]
struct Person {
    user_id: String,
    name: String,
    role: Role,
    tabs: usize,
}

#[component]
pub fn PresenceList(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let store = use_store();
    let id = room.with_untracked(|r| r.id.clone());
    let people = move || {
        let mut people: Vec<Person> = Vec::new();
        for p in store.presence(&id) {
            match people.iter_mut().find(|x| x.user_id == p.user_id) {
                Some(person) => person.tabs += 1,
                None => people.push(Person { user_id: p.user_id, name: p.user_name, role: p.role, tabs: 1 }),
            }
        }
        people
    };
    let host = move || room.with(|r| r.host_user_id.clone());
    let id = room.with_untracked(|r| r.id.clone());
    let more = move || {
        let listed = store.presence_len(&id) as u32;
        let all = room.with(|r| r.connection_count);
        (all > listed).then(|| {
            view! {
                <li class="muted" data-testid="presence-more">{format!("and {} more", all - listed)}</li>
            }
        })
    };
    view! {
        <ul class="presence" data-testid="presence">
            <For each=people key=|p| (p.user_id.clone(), p.name.clone(), p.tabs, p.role) let:person>
                <li data-user=person.name.clone() data-role=if person.role == Role::Member { "member" } else { "spectator" }>
                    {move || (host().as_deref() == Some(person.user_id.as_str())).then(|| view! { <span class="host-mark" title="host">"★ "</span> })}
                    {person.name.clone()}
                    <span class="muted">
                        {if person.role == Role::Member { " · member" } else { " · spectator" }}
                        {(person.tabs > 1).then(|| format!(" · {} tabs", person.tabs))}
                    </span>
                </li>
            </For>
            {more}
        </ul>
    }
}
