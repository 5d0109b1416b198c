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

/// The chart's scale: the smallest 1, 2 or 5 times a power of ten at or
/// above the highest sample (at least 2, so the middle line is whole).
fn nice_max(samples: &[Sample]) -> u64 {
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0).max(2);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The line in a plot of `w` x `h` (viewBox units; the plot is stretched
/// to its box), the newest sample at the right edge.
fn polyline(samples: &[Sample], top: u64, w: f64, h: f64) -> String {
    let step = w / (SAMPLES.saturating_sub(1)) as f64;
    let offset = SAMPLES.saturating_sub(samples.len());
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (x, y) = ((offset + i) as f64 * step, h - s.connections as f64 / top as f64 * h);
            format!("{},{}", tenths(x), tenths(y))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connections over the last five minutes: a plot that fills the page's
/// width, with its scale on the left and the time below in HTML, so the
/// labels keep their size on any screen.
#[component]
fn ConnectionsChart(samples: RwSignal<Vec<Sample>>) -> impl IntoView {
    let (w, h) = (1000.0, 100.0);
    let top = move || samples.with(|s| nice_max(s));
    view! {
        <figure class="chart-frame" data-testid="connections-chart">
            <div class="y-axis" aria-hidden="true">
                <span data-testid="chart-max">{move || top().to_string()}</span>
                <span>{move || (top() / 2).to_string()}</span>
                <span>"0"</span>
            </div>
            <svg class="chart" viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" role="img"
                aria-label="connections over the last five minutes">
                <rect x="0" y="0" width=w height=h class="plot-bg"></rect>
                <line class="grid" x1="0" y1=h / 2.0 x2=w y2=h / 2.0></line>
                <polyline class="line" points=move || samples.with(|s| polyline(s, top(), w, h))></polyline>
            </svg>
            <div class="x-axis" aria-hidden="true">
                <span>"5 min ago"</span><span>"4"</span><span>"3"</span><span>"2"</span><span>"1"</span><span>"now"</span>
            </div>
            <figcaption class="muted">"Open connections, sampled every 2 s"</figcaption>
        </figure>
    }
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
            <ConnectionsChart samples/>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(connections: &[u64]) -> Vec<Sample> {
        connections.iter().map(|&c| Sample { connections: c, ..Default::default() }).collect()
    }

    #[test]
    fn the_scale_rounds_up_to_one_two_or_five() {
        assert_eq!(nice_max(&[]), 2);
        assert_eq!(nice_max(&of(&[1])), 2);
        assert_eq!(nice_max(&of(&[3, 1])), 5);
        assert_eq!(nice_max(&of(&[7])), 10);
        assert_eq!(nice_max(&of(&[10])), 10);
        assert_eq!(nice_max(&of(&[11])), 20);
        assert_eq!(nice_max(&of(&[4_100])), 5_000);
    }

    #[test]
    fn the_newest_sample_is_at_the_right_edge() {
        let line = polyline(&of(&[0, 5, 10]), 10, 1000.0, 100.0);
        let points: Vec<&str> = line.split(' ').collect();
        assert_eq!(points.len(), 3);
        assert_eq!(points[2], "1000.0,0.0");
        assert_eq!(points[1].split(',').nth(1), Some("50.0"));
    }
}
