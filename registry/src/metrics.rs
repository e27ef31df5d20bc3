//! Prometheus metrics: the process's recorder (`metrics` with its Prometheus exporter, installed
//! once) and what the HTTP layer records (requests by class, method and status; latency until
//! the answer's last byte; bytes each way; requests in flight; connections). `GET /metrics` is
//! served by the `scrape` module, above this one. The store's own names are in [`depot_store::metrics`], garbage
//! collection's in [`depot_gc::METRICS`]; the README lists every one (a test keeps them in step).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use depot_store::metrics::{KeptCounters, Kind};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "depot_http_requests_total";
pub const HTTP_DURATION: &str = "depot_http_request_duration_seconds";
pub const HTTP_RECEIVED: &str = "depot_http_received_bytes_total";
pub const HTTP_SENT: &str = "depot_http_sent_bytes_total";
pub const HTTP_IN_FLIGHT: &str = "depot_http_requests_in_flight";
pub const CONNECTIONS: &str = "depot_http_connections";
pub const CONNECTIONS_REFUSED: &str = "depot_http_connections_refused_total";

/// What the HTTP layer records: name, kind, labels, help.
pub const METRICS: &[(&str, Kind, &str, &str)] = &[
    (
        HTTP_REQUESTS,
        Kind::Counter,
        "class, method, status",
        "Requests answered, by endpoint class (base, blob, upload, manifest, tags, referrers, catalog, token, api, health, metrics, other), method and status.",
    ),
    (
        HTTP_DURATION,
        Kind::Histogram,
        "class, method",
        "Time from a request's arrival until its answer's last byte was handed to the connection.",
    ),
    (
        HTTP_RECEIVED,
        Kind::Counter,
        "class",
        "Request body bytes received.",
    ),
    (
        HTTP_SENT,
        Kind::Counter,
        "class",
        "Response body bytes sent.",
    ),
    (
        HTTP_IN_FLIGHT,
        Kind::Gauge,
        "class",
        "Requests being served (until the answer's last byte).",
    ),
    (
        CONNECTIONS,
        Kind::Gauge,
        "",
        "Client connections open (at most --max-connections).",
    ),
    (
        CONNECTIONS_REFUSED,
        Kind::Counter,
        "",
        "Connections answered 503 because --max-connections were open.",
    ),
];

/// Latency buckets (seconds) for every histogram: a manifest answer takes well under a
/// millisecond, a large blob minutes.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// The process's recorder, installed on first use (a process serves one registry; a test
/// that builds several in one process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed: /metrics shows only its own");
        }
        depot_store::metrics::describe_all(METRICS);
        depot_store::metrics::describe();
        depot_gc::Metrics::describe();
        metrics::counter!(CONNECTIONS_REFUSED).increment(0);
        // Histograms keep their recent samples until upkeep folds them in.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawning the metrics upkeep thread");
        handle
    })
}

/// Every metric name this process can show, with its kind, labels and help (the README's list).
pub fn all() -> Vec<(&'static str, Kind, &'static str, &'static str)> {
    let gc = depot_gc::METRICS.iter().map(|&(name, help)| {
        let kind = if name.ends_with("_total") {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        (name, kind, "", help)
    });
    METRICS
        .iter()
        .chain(depot_store::metrics::METRICS)
        .copied()
        .chain(gc)
        .collect()
}

/// What `/metrics` keeps between scrapes.
#[derive(Debug, Default)]
pub struct Exporter {
    /// When the database gauges were last set.
    pub stats_at: Mutex<Option<Instant>>,
}

/// A method as a label: the standard ones by name, anything else as `other` (a client's
/// invented methods must not each become a series).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The series one kind of request records into, looked up once per (class, method) and kept:
/// building a labelled key and finding it in the recorder's map, four times for every request,
/// was a measurable share of a manifest GET's CPU. Classes and methods are closed sets of
/// `&'static str` (the server's path classes and [`method_label`]), so the table stays small.
#[derive(Debug)]
struct Series {
    in_flight: metrics::Gauge,
    received: metrics::Counter,
    sent: metrics::Counter,
    duration: metrics::Histogram,
    /// `depot_http_requests_total` by status, as statuses are first seen.
    requests: KeptCounters<u16>,
}

impl Series {
    fn of(class: &'static str, method: &'static str) -> &'static Series {
        type Table = RwLock<HashMap<(&'static str, &'static str), &'static Series>>;
        static TABLE: OnceLock<Table> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            // Handles bind to the recorder installed when they are made: install it first.
            handle();
            RwLock::default()
        });
        if let Some(series) = table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(class, method))
        {
            return series;
        }
        let mut table = table.write().unwrap_or_else(PoisonError::into_inner);
        table.entry((class, method)).or_insert_with(|| {
            // Leaked on purpose: one per (class, method) pair, for the life of the process.
            Box::leak(Box::new(Series {
                in_flight: metrics::gauge!(HTTP_IN_FLIGHT, "class" => class),
                received: metrics::counter!(HTTP_RECEIVED, "class" => class),
                sent: metrics::counter!(HTTP_SENT, "class" => class),
                duration: metrics::histogram!(HTTP_DURATION, "class" => class, "method" => method),
                requests: KeptCounters::new(),
            }))
        })
    }

    fn answered(&self, class: &'static str, method: &'static str, status: u16) {
        self.requests.increment(status, || {
            metrics::counter!(HTTP_REQUESTS, "class" => class, "method" => method, "status" => status.to_string())
        });
    }
}

/// A request being answered: in flight from now until its answer's body is done or dropped.
#[derive(Debug)]
pub struct Answering {
    class: &'static str,
    method: &'static str,
    started: Instant,
    series: &'static Series,
}

impl Answering {
    pub fn start(class: &'static str, method: &'static str, started: Instant) -> Self {
        let series = Series::of(class, method);
        series.in_flight.increment(1.0);
        Answering {
            class,
            method,
            started,
            series,
        }
    }

    /// Counts the request body's bytes as they are read (a body that is empty already costs
    /// nothing).
    pub fn count_received(&self, body: Body) -> Body {
        if body.is_end_stream() {
            return body;
        }
        Body::new(Metered {
            inner: body,
            bytes: self.series.received.clone(),
            finish: None,
        })
    }

    /// Wraps the answer's body: its bytes are counted as sent, and when it ends the request
    /// is counted with `status` and its duration.
    pub fn finish(self, status: u16, body: Body) -> Body {
        Body::new(Metered {
            inner: body,
            bytes: self.series.sent.clone(),
            finish: Some(Finish {
                answering: self,
                status,
            }),
        })
    }
}

#[derive(Debug)]
struct Finish {
    answering: Answering,
    status: u16,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let a = &self.answering;
        a.series.in_flight.decrement(1.0);
        a.series.answered(a.class, a.method, self.status);
        a.series.duration.record(a.started.elapsed().as_secs_f64());
    }
}

/// A body whose data bytes are added to a counter as they pass; with a [`Finish`], the
/// request is recorded when the body ends (or is dropped unfinished: a client gone mid-pull).
struct Metered {
    inner: Body,
    bytes: metrics::Counter,
    finish: Option<Finish>,
}

impl HttpBody for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(data) = f.data_ref() {
                    self.bytes.increment(data.len() as u64);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => drop(self.finish.take()),
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
