//! `/stats`: rooms, connections and users, with connections over the last
//! minutes drawn as an SVG line.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::rest;
use crate::components::svg::tenths;

const SAMPLE_EVERY_MS: u64 = 2000;
/// Five minutes of samples.
const SAMPLES: usize = 150;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    rooms: u64,
    connections: u64,
    users: u64,
}

fn polyline(samples: &[Sample], w: f64, h: f64) -> String {
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0).max(1) as f64;
    let step = w / (SAMPLES.saturating_sub(1)) as f64;
    let offset = SAMPLES.saturating_sub(samples.len());
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (x, y) = ((offset + i) as f64 * step, h - s.connections as f64 / max * (h - 4.0) - 2.0);
            format!("{},{}", tenths(x), tenths(y))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
pub fn StatsPage() -> impl IntoView {
    let samples = RwSignal::new(Vec::<Sample>::new());
    let error = RwSignal::new(None::<String>);
    let poll = move || {
        spawn_local(async move {
            match rest::stats().await {
                Ok(v) => {
                    let get = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
                    let sample = Sample { rooms: get("rooms"), connections: get("connections"), users: get("users") };
                    samples.update(|s| {
                        s.push(sample);
                        if s.len() > SAMPLES {
                            s.remove(0);
                        }
                    });
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    Effect::new(move |_| {
        poll();
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_millis(SAMPLE_EVERY_MS)) {
            on_cleanup(move || handle.clear());
        }
    });
    let last = move || samples.with(|s| s.last().copied());
    let show = move |f: fn(Sample) -> u64| move || last().map(|s| f(s).to_string()).unwrap_or_else(|| "–".into());
    let (w, h) = (600u32, 120u32);
    view! {
        <section class="stats-page">
            <h1>"Stats"</h1>
            <p class="error" role="alert">{move || error.get()}</p>
            <dl class="facts">
                <dt>"Rooms"</dt><dd data-testid="stat-rooms">{show(|s| s.rooms)}</dd>
                <dt>"Connections"</dt><dd data-testid="stat-connections">{show(|s| s.connections)}</dd>
                <dt>"Users"</dt><dd data-testid="stat-users">{show(|s| s.users)}</dd>
            </dl>
            <h2>"Connections, last 5 minutes"</h2>
            <svg class="chart" data-testid="connections-chart" viewBox=format!("0 0 {w} {h}") width=w height=h>
                <rect x="0" y="0" width=w height=h class="plot-bg"></rect>
                <polyline class="line" points=move || samples.with(|s| polyline(s, w.into(), h.into()))></polyline>
            </svg>
        </section>
    }
}
