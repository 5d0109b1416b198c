//! Frames: a viewer (slider, previous/next, JSON or a scatter plot), the
//! presenter's controls and following, and uploading a JSON file under the
//! room's temporary lock.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::client::{UploadProgress, rest, use_actions, use_store};
use crate::components::error_text::error_text;
use crate::components::svg::tenths;
use crate::model::RoomMetadata;

/// Points of a frame shaped `{"points":[[x,y],...]}`.
fn points(frame: &Value) -> Option<Vec<(f64, f64)>> {
    let list = frame.get("points")?.as_array()?;
    list.iter()
        .map(|p| {
            let xy = p.as_array()?;
            Some((xy.first()?.as_f64()?, xy.get(1)?.as_f64()?))
        })
        .collect()
}

#[component]
fn Scatter(points: Vec<(f64, f64)>) -> impl IntoView {
    let (width, height) = (320u32, 240u32);
    let (w, h, pad) = (f64::from(width), f64::from(height), 12.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    let sx = move |x: f64| pad + (x - x0) / (x1 - x0).max(f64::EPSILON) * (w - 2.0 * pad);
    let sy = move |y: f64| h - pad - (y - y0) / (y1 - y0).max(f64::EPSILON) * (h - 2.0 * pad);
    let dots = points
        .into_iter()
        .map(|(x, y)| view! { <circle cx=tenths(sx(x)) cy=tenths(sy(y)) r="3"></circle> })
        .collect_view();
    view! {
        <svg class="scatter" data-testid="scatter" viewBox=format!("0 0 {width} {height}") width=width height=height>
            <rect x="0" y="0" width=width height=height class="plot-bg"></rect>
            {dots}
        </svg>
    }
}

#[component]
pub fn FrameViewer(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let store = use_store();
    let actions = use_actions();
    let id = room.with_untracked(|r| r.id.clone());
    let index = RwSignal::new(0u64);
    let following = RwSignal::new(true);
    let content = RwSignal::new(None::<Value>);
    let cache: StoredValue<HashMap<u64, Value>> = StoredValue::new(HashMap::new());
    let count = move || room.with(|r| r.frame_count);

    let my_sid = {
        let id = id.clone();
        move || store.my_sid(&id)
    };
    let presenter = move || room.with(|r| r.presenter_sid.clone());
    let presenting = {
        let my_sid = my_sid.clone();
        move || presenter().is_some() && presenter() == my_sid()
    };
    let presenter_name = {
        let id = id.clone();
        move || {
            let sid = presenter()?;
            store.presence(&id).into_iter().find(|p| p.sid == sid).map(|p| p.user_name)
        }
    };
    let others_present = {
        let presenting = presenting.clone();
        move || presenter().is_some() && !presenting()
    };

    // Follow the presenter's frame.
    {
        let id = id.clone();
        let others_present = others_present.clone();
        Effect::new(move |_| {
            if following.get()
                && others_present()
                && let Some(shared) = store.shared_frame(&id)
            {
                index.set(shared);
            }
        });
    }
    // Keep the index inside the frames there are.
    Effect::new(move |_| {
        let n = count();
        if n > 0 && index.get_untracked() >= n {
            index.set(n - 1);
        }
    });
    // Load the frame shown.
    {
        let id = id.clone();
        Effect::new(move |_| {
            let i = index.get();
            if i >= count() {
                content.set(None);
                return;
            }
            if let Some(v) = cache.with_value(|c| c.get(&i).cloned()) {
                content.set(Some(v));
                return;
            }
            let id = id.clone();
            spawn_local(async move {
                if let Ok(v) = rest::get_frame(&id, i).await {
                    cache.update_value(|c| {
                        c.insert(i, v.clone());
                    });
                    if index.get_untracked() == i {
                        content.set(Some(v));
                    }
                }
            });
        });
    }

    let go = {
        let id = id.clone();
        let presenting = presenting.clone();
        move |i: u64| {
            index.set(i);
            if presenting() {
                let room_id = id.clone();
                spawn_local(async move {
                    let _ = actions.show_frame(&room_id, i).await;
                });
            } else if presenter().is_some() {
                following.set(false);
            }
        }
    };
    let prev = {
        let go = go.clone();
        move |_| go(index.get_untracked().saturating_sub(1))
    };
    let next = {
        let go = go.clone();
        move |_| {
            let i = index.get_untracked() + 1;
            if i < count() {
                go(i);
            }
        }
    };
    let slide = {
        let go = go.clone();
        move |ev: leptos::ev::Event| {
            if let Ok(i) = event_target_value(&ev).parse::<u64>() {
                go(i);
            }
        }
    };
    let toggle_present = {
        let id = id.clone();
        let presenting = presenting.clone();
        move |_| {
            let room_id = id.clone();
            let start = !presenting();
            let frame = index.get_untracked();
            spawn_local(async move {
                let _ = if start {
                    actions.present(&room_id, (frame < count()).then_some(frame)).await
                } else {
                    actions.stop_presenting(&room_id).await
                };
            });
        }
    };

    view! {
        <section class="card frames" data-testid="frames">
            <h2>"Frames"</h2>
            <div class="row presenter-row">
                <button data-testid="present" on:click=toggle_present prop:disabled={
                    let others_present = others_present.clone();
                    move || others_present()
                }>
                    {let presenting = presenting.clone(); move || if presenting() { "Stop presenting" } else { "Present" }}
                </button>
                {let others_present = others_present.clone(); move || others_present().then(|| {
                    let name = presenter_name().unwrap_or_else(|| "the presenter".into());
                    view! {
                        <span class="badge following" data-testid="following">
                            {move || if following.get() { format!("following {name}") } else { format!("{name} is presenting") }}
                        </span>
                        <button class="link" data-testid="toggle-follow" on:click=move |_| following.update(|f| *f = !*f)>
                            {move || if following.get() { "stop following" } else { "follow" }}
                        </button>
                    }
                })}
            </div>
            {move || if count() == 0 {
                view! { <p class="muted">"No frames yet."</p> }.into_any()
            } else {
                view! {
                    <div class="row viewer-controls">
                        <button data-testid="prev-frame" aria-label="previous frame" on:click=prev.clone()>"◀"</button>
                        <input type="range" data-testid="frame-slider" aria-label="frame" min="0" max=move || count().saturating_sub(1)
                            prop:value=move || index.get().to_string() on:input=slide.clone()/>
                        <button data-testid="next-frame" aria-label="next frame" on:click=next.clone()>"▶"</button>
                        <span data-testid="frame-index">{move || format!("Frame {} / {}", index.get() + 1, count())}</span>
                    </div>
                    {move || content.get().map(|frame| match points(&frame) {
                        Some(pts) => view! { <Scatter points=pts/> }.into_any(),
                        None => view! {
                            <pre class="frame-json" data-testid="frame-json">{serde_json::to_string_pretty(&frame).unwrap_or_default()}</pre>
                        }.into_any(),
                    })}
                }.into_any()
            }}
            <Upload room/>
        </section>
    }
}

/// Reads the picked file's text (browser only).
async fn file_text(ev: &leptos::ev::Event) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let input: web_sys::HtmlInputElement = ev.target()?.dyn_into().ok()?;
        let file = input.files()?.get(0)?;
        let text = wasm_bindgen_futures::JsFuture::from(file.text()).await.ok()?;
        text.as_string()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

#[component]
fn Upload(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let actions = use_actions();
    let id = room.with_untracked(|r| r.id.clone());
    let progress = RwSignal::new(None::<UploadProgress>);
    let error = RwSignal::new(None::<String>);

    let on_file = move |ev: leptos::ev::Event| {
        let room_id = id.clone();
        progress.set(None);
        error.set(None);
        spawn_local(async move {
            let Some(text) = file_text(&ev).await else { return };
            // Frames stay JSON text: they reach the server byte for byte.
            let frames = match serde_json::from_str::<Vec<Box<RawValue>>>(&text) {
                Ok(frames) if !frames.is_empty() => frames,
                Ok(_) => return error.set(Some("The file holds an empty array: there are no frames to add.".into())),
                Err(e) => {
                    return error.set(Some(format!("The file must hold a JSON array of frames ({e}).")));
                }
            };
            let result = actions.upload_frames(&room_id, &frames, |p| progress.set(Some(p))).await;
            if let Err(e) = result {
                progress.set(None);
                error.set(Some(format!("Upload stopped: {}", error_text(&e))));
            }
        });
    };
    let locked = move || room.with(|r| r.locked || r.metadata_locked.is_some());

    view! {
        <div class="upload" data-testid="upload">
            <label class="button">
                "Add frames from a JSON file"
                <input type="file" class="visually-hidden" accept="application/json,.json" data-testid="upload-input"
                    on:change=on_file prop:disabled=locked/>
            </label>
            {move || progress.get().map(|UploadProgress { done, total }| view! {
                <progress data-testid="upload-progress" value=done max=total aria-label="upload progress"></progress>
                <span data-testid="upload-status">{format!("{done}/{total} frames")}</span>
            })}
            {move || (room.with(|r| r.locked)).then(|| view! {
                <p class="muted" data-testid="upload-locked">"This room is locked: no frames can be added."</p>
            })}
            <p class="error" role="alert" data-testid="upload-error">{move || error.get()}</p>
        </div>
    }
}
