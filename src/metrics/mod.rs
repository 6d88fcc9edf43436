//! What the server tells about itself: counters in shared memory written by
//! workers ([`counters`]), StatsD datagrams as gunicorn sends them
//! ([`statsd`]), and the Prometheus endpoint the master serves
//! ([`prometheus`]).

pub mod counters;
pub mod prometheus;
pub mod statsd;
