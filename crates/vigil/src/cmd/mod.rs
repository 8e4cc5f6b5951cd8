//! One module per subcommand.

pub mod agent;
pub mod bench;
pub mod bench_gen;
pub mod bench_ship;
pub mod content;
pub mod demo;
pub mod docs;
pub mod hunt;
pub mod incidents;
pub mod isolate;
pub mod lines;
pub mod ocsf;
pub mod quarantine;
pub mod query;
pub mod query_store;
pub mod query_views;
pub mod respond;
pub mod rollback;
pub mod rules;
pub mod scan;
pub mod server;
pub mod server_search;
